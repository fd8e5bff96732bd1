"""Parameters of ``energy-datasets stage`` (seed D5.2 section 4.2), declared once. The dataset
name and the destination are the command's inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.params import ServiceParams, param


@dataclass(frozen=True)
class StageParams(ServiceParams):
    catalogue: Optional[str] = param(None, "Catalogue YAML replacing the built-in one (also: "
                                     "environment variable ENERGY_DATASETS_CATALOGUE)")
    start: Optional[str] = param(None, "ERA5: first day YYYY-MM-DD (default: first day of the "
                                 "previous month)")
    end: Optional[str] = param(None, "ERA5: last day YYYY-MM-DD (default: the start's month end)")
    aoi: Optional[str] = param(None, "ERA5: area of interest, WKT polygon (lon/lat) or vector file; "
                               "its bounds snapped outwards to the 0.25 degree grid (default: global)",
                               flags=("--AoI", "-p"))
    variables: tuple[str, ...] = param((), "ERA5: comma-separated CDS variable names (default: the "
                                       "catalogue's wind, temperature, radiation and pressure)")
    data_format: Literal["netcdf", "grib"] = param("netcdf", "ERA5: file format asked of the CDS")
    retries: int = param(3, "Download attempts after the first, each resuming where the last "
                         "stopped", minimum=0, maximum=20)
    # at most a day: a longer wait is a typo, and HTTP clients overflow on huge timeouts
    timeout_s: float = param(60.0, "Seconds without data before a download attempt is abandoned",
                             minimum=0, exclusive_minimum=True, maximum=86400)
    workdir: Optional[str] = param(None, "Folder for partial downloads, kept between runs for "
                                   "resume (default: $ENERGY_DATASETS_CACHE or "
                                   "~/.cache/energy-datasets)")
