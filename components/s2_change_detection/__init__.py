"""S2-CD: Sentinel-2 change detection by Change Vector Analysis (seed D5.2 section 2.2.5)."""
