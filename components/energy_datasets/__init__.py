"""energy-datasets: the catalogue of the energy domain's labelled datasets (seed D5.2 section 4.2, Table 11)."""
