"""Parameters of ``monthlycomposite`` (seed D5.2 section 3.2.3, Table 9), declared once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

from components.common.errors import InvalidParameter
from components.common.params import ServiceParams, param
from components.timesen2crop.legend import SEASON_START_YEAR

TILE_RE = re.compile(r"^T?(\d{2}[C-X][A-Z]{2})$")


@dataclass(frozen=True)
class MonthlyCompositeParams(ServiceParams):
    tile: Optional[str] = param(None, "UTM code of the tile, e.g. 33UVP: images of other tiles are ignored "
                                "(default: the only tile named in the input files)")
    season_start: int = param(SEASON_START_YEAR, "Year in which the agronomic year starts: September of this "
                              "year (A) to August of the next (B)", minimum=2015, maximum=2100)
    empty_months: Literal["error", "zero"] = param(
        "error", "A month without any acquisition: stop naming it, or write that composite as no data (0)")
    block_size: int = param(512, "Rows and columns processed at a time (bounds memory)", minimum=64, maximum=8192)

    def __post_init__(self):
        if self.tile is not None:
            match = TILE_RE.match(self.tile.strip().upper())
            if not match:
                raise InvalidParameter("tile", self.tile, "a Sentinel-2 tile code such as 33UVP")
            object.__setattr__(self, "tile", match[1])
        super().__post_init__()
