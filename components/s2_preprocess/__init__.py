"""S2-preprocess: Sentinel-2 pre-processing (seed section 2.2.3)."""
