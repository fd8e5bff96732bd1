"""Parameters of S1-CD (seed D5.2 section 2.2.4, Table 5), declared once. The radiometric,
filter, grid, mask and engine parameters are those of the S1 pre-processing services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.params import param
from components.s1_preprocess.params import S1CommonParams


@dataclass(frozen=True)
class S1CDParams(S1CommonParams):
    dem: Optional[str] = param(None, "DEM file: heights of the co-registration (Back-Geocoding) and of the "
                               "topographic phase removed before the coherence, terrain correction and the "
                               "land/sea mask; without it the ellipsoid at the annotation geolocation-grid heights "
                               "(run.json says which)")
    calibration: Literal["Sigma", "Gamma", "Beta"] = param(
        "Sigma", "Backscatter convention of the two backscatter products", flags=("--calibration_output",))
    coherence_window_rg: int = param(10, "Coherence estimation window in range samples (SNAP cohWinRg)",
                                     minimum=1, maximum=90)
    coherence_window_az: int = param(10, "Coherence estimation window in azimuth lines (SNAP cohWinAz)",
                                     minimum=1, maximum=90)
    percentile_low: float = param(2.5, "Lower percentile of the backscatter byte stretch of the RGBs",
                                  minimum=0, maximum=100)
    percentile_high: float = param(97.5, "Upper percentile of the backscatter byte stretch (the seed's "
                                   "'7.5' read as 97.5)", minimum=0, maximum=100)
    change_db: float = param(3.0, "Change mask: minimum |10 log10(b2/b1)| in dB", minimum=0)
    change_coherence: float = param(0.5, "Change mask: maximum coherence of a changed pixel", minimum=0, maximum=1)
    subswaths: tuple[str, ...] = param(("IW1", "IW2", "IW3"), "IW sub-swaths to process (ignored for SM)",
                                       choices=("IW1", "IW2", "IW3"))
    refine_coregistration: bool = param(True, "Refine the orbit co-registration by amplitude cross-correlation")
    thermal_noise_removal: bool = param(True, "Subtract the annotated thermal noise from the backscatter")

    def __post_init__(self):
        super().__post_init__()
        from components.common.errors import InvalidParameter

        if self.percentile_low >= self.percentile_high:
            raise InvalidParameter("percentile_low", self.percentile_low,
                                   f"a number below percentile_high ({self.percentile_high})")
