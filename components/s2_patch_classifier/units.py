"""The one unit of the band values this service trains on and classifies.

Every tile, for training and for prediction, is brought to **surface reflectance x 10000 without
offset** before anything is computed from it. That is what BigEarthNet v1 stores (uint16 Sentinel-2
L2A digital numbers of processing baselines before 04.00, no offset: its published band means are
340-2266), what the sen2ships "Raw" exports and most DN exports hold, and what every model trained
by earlier versions of this service on such tiles takes: their normalisation statistics are in it.

How a tile's values are brought there is decided per tile by the shared rule of
:mod:`components.common.reflectance` (scale/offset tags honoured, e.g. the ``offset -0.1`` of an
S2-preprocess product of baseline 04.00 or later; DN detected; float reflectance scaled; anything
else refused in one line), and for the band files of a Sentinel-2 SAFE product by its own
``BOA_QUANTIFICATION_VALUE`` and ``BOA_ADD_OFFSET`` (``MTD_MSIL2A.xml``; L1C: ``QUANTIFICATION_VALUE``,
``RADIO_ADD_OFFSET``). The same reflectance stored any of these ways gives the same patches and
the same class map.

Model files record the unit they take (``input_unit``) and patch indexes the unit of their
images (``unit``). Files of earlier versions record none: their statistics tell it, a model whose
every band's upper normalisation bound is within reflectance's range (2 at most) having been trained
on float reflectance tiles (0..1); prediction then brings tiles to reflectance for it.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from components.common.reflectance import DN_UNIT, REFLECTANCE_RANGE, REFLECTANCE_UNIT, UNIT_FACTORS

log = logging.getLogger(__name__)

UNIT = DN_UNIT
LEGACY_REFLECTANCE = REFLECTANCE_UNIT  # models and patch folders of earlier versions cut from float 0..1 tiles
FACTOR = UNIT_FACTORS  # values in UNIT times this


def of_stats(stats: dict) -> str:
    """The unit of values normalised by ``stats`` (files that do not record one)."""
    high = stats.get("high") if isinstance(stats, dict) else None
    if isinstance(high, (list, tuple)) and high and all(isinstance(v, (int, float)) and v <= REFLECTANCE_RANGE[1]
                                                        for v in high):
        return LEGACY_REFLECTANCE
    return UNIT


def of_meta(meta: dict, key: str = "input_unit") -> tuple[str, bool]:
    """(unit, recorded) of a model's or an encoder's metadata (``key``), or of a patch index
    (``key="unit"``): recorded, else told by its statistics."""
    if key in meta:
        return meta[key], True
    return of_stats(meta.get("stats")), False


def problem(value) -> str | None:
    """Why ``value`` is not a unit this version knows; None when it is one."""
    if value in FACTOR:
        return None
    return f"{value!r:.60} is not a unit this version knows ({', '.join(repr(u) for u in FACTOR)})"


def log_decisions(tiles, target: str = UNIT) -> None:
    """One line per way the tiles' values were read (its first tile's note and how many more)."""
    groups = defaultdict(list)
    for t in tiles:
        if t.unit_note:
            groups[t.unit_kind].append(t)
    for kind, same in groups.items():
        more = f" (and {len(same) - 1} more tile(s) read the same way)" if len(same) > 1 else ""
        log.info("%s%s; brought to %s", same[0].unit_note, more, target)
