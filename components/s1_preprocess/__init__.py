"""Sentinel-1 GRD and SLC pre-processing (S1-GRD-preprocess, S1-SLC-preprocess) and the SNAP engine."""
