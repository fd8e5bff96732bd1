"""Runs sarsen's terrain correction for ``bench/s1.py`` in sarsen's own interpreter (sarsen is
not in the project's environment: it would move pinned versions).

    SARSEN_PYTHON bench/sarsen_tc.py PRODUCT.SAFE DEM.tif OUT.tif [gamma_bilinear]
"""

import sys

from sarsen import apps, sentinel1


def main() -> None:
    product, dem, out = sys.argv[1:4]
    radiometry = sys.argv[4] if len(sys.argv) > 4 else None
    sar = sentinel1.Sentinel1SarProduct(product, measurement_group="IW/VV")
    apps.terrain_correction(sar, dem, out, correct_radiometry=radiometry, interp_method="linear")


if __name__ == "__main__":
    main()
