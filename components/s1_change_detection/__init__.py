"""Sentinel-1 change detection of an SLC pair (S1-CD): coherence, ACD/MTC composites, change mask."""
