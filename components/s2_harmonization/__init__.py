"""Monthly harmonisation of Sentinel-2 BOA time series (seed D5.2 section 3.2.3): ``monthlycomposite``."""
