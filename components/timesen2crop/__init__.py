"""The TimeSen2Crop crop-type dataset (seed D5.2 section 3.2.2): the ``timesen2crop`` loader."""
