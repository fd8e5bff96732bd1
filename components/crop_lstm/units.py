"""The unit of the values the crop-type LSTM takes, and how a monthly composite's values are brought
to it.

The network is trained on **reflectance x 10000** (surface reflectance in TimeSen2Crop, what
``timesen2crop`` and ``worldcrops`` write and what ``monthlycomposite`` writes: uint16, scale tag
1e-4). train_lstm records the unit of its training values in the model file (``input_unit``), from
the values themselves: ``reflectance x 10000`` (99th percentile of the observations at least 100),
``reflectance`` (within about -0.5..2) or ``unknown`` (neither: percent, an index, ...). A model file
written before the unit was recorded is taken as reflectance x 10000.

tile_classifier brings each composite to the model's unit by the project's rule for Sentinel-2
reflectance rasters (:mod:`components.common.reflectance`): band scale/offset tags honoured (e.g.
offset -0.1 of processing baseline 04.00), integers without tags read as DN x 10000, floats within
about -0.5..2 as reflectance, anything else refused with one line. Converted values are rounded to
whole reflectance x 10000 and kept at least 1, as monthlycomposite writes them (0 is "no
observation"), so the same reflectance stored in any of these ways gives the same input, hence the
same map. A composite already in reflectance x 10000 (scale 1e-4 or no tag on DN) is read unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from components.common.errors import ServiceError
from components.common.reflectance import (DN_MIN_HIGH, DN_RANGE, DN_UNIT, PERCENTILES, REFLECTANCE_RANGE,
                                           REFLECTANCE_UNIT, UNIT_FACTORS, data_mask, reflectance_units)

log = logging.getLogger(__name__)

MODEL_UNIT = DN_UNIT  # what train_lstm's inputs are meant to hold
UNKNOWN = "unknown"
# per unit a model may have been trained on: the factor from reflectance x 10000 to it
FACTORS = UNIT_FACTORS
SAMPLE = 1_000_000  # training values looked at


def training_unit(x: np.ndarray) -> tuple[str, str]:
    """(unit, what was seen) of training samples ``x``, from the 1st and 99th percentiles of their
    observations (0 is no observation)."""
    flat = x.reshape(-1)
    if flat.size > 4 * SAMPLE:
        flat = flat[:: flat.size // SAMPLE]
    values = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
    if not values.size:
        return UNKNOWN, "no observation"
    lo, hi = (float(v) for v in np.percentile(values, PERCENTILES))
    seen = f"{lo:.6g}..{hi:.6g} (1st..99th percentile)"
    if DN_RANGE[0] <= lo and hi <= DN_RANGE[1] and hi >= DN_MIN_HIGH:
        return MODEL_UNIT, seen
    if REFLECTANCE_RANGE[0] <= lo and hi <= REFLECTANCE_RANGE[1]:
        return REFLECTANCE_UNIT, seen
    return UNKNOWN, seen


def model_factor(unit: str, model_name: str) -> float:
    """The factor from reflectance x 10000 to the unit the model was trained on; a model trained on
    values of another unit is refused."""
    if not unit:
        log.info("%s records no input unit (written before train_lstm recorded it): taken as %s, the unit of "
                 "timesen2crop's and worldcrops' arrays", model_name, MODEL_UNIT)
        return 1.0
    if unit not in FACTORS:
        raise ServiceError(f"{model_name} was trained on values of unit {unit!r} (input_unit), neither "
                           f"{MODEL_UNIT} nor reflectance: its predictions on composites would be meaningless; "
                           f"train it on {MODEL_UNIT} (as timesen2crop and worldcrops write)")
    return FACTORS[unit]


@dataclass(frozen=True)
class Conversion:
    """Per feature band: ``model value = round(value * scale + offset) * factor`` (at least 1 x
    factor) where the value is data (finite, not NoData, not 0); 0 elsewhere."""

    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()
    nodata: float | None = None
    factor: float = 1.0
    unit: str = "dn"  # how the values were read: tags, dn or reflectance (components.common.reflectance)
    note: str = ""  # what was decided and why

    @property
    def identity(self) -> bool:
        return self.factor == 1.0 and all(abs(s - 1.0) < 1e-9 for s in self.scale) and \
            all(abs(o) < 1e-9 for o in self.offset)

    def summary(self) -> str:
        """The conversion without the file name or the values seen: equal for composites converted alike."""
        if self.identity:
            return f"read unchanged as {MODEL_UNIT}"
        s, o = self.scale[0], self.offset[0]
        shift = f" {'-' if o < 0 else '+'} {abs(o):g}" if o else ""
        if self.factor == 1.0:
            return f"{MODEL_UNIT} = round(value x {s:g}{shift})"
        return f"reflectance (the model's unit) = round(value x {s:g}{shift}) / 10000"

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` [bands, n] as read to the model's unit, float32; no observation -> 0."""
        ok = data_mask(values, self.nodata) & (values != 0)
        if self.identity:
            out = values.astype(np.float32)
            out[~ok] = 0
            return out
        scale = np.asarray(self.scale, np.float64)[:, None]
        offset = np.asarray(self.offset, np.float64)[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            dn = np.maximum(np.floor(values * scale + offset + 0.5), 1.0)  # as monthlycomposite rounds
        if self.factor != 1.0:
            dn *= self.factor
        return np.where(ok, dn, 0.0).astype(np.float32)


def composite_conversion(ds, indexes: list[int], bands: list[str], label: str, factor: float) -> Conversion:
    """How to bring bands ``indexes`` (named ``bands``) of the composite ``ds`` to the model's unit
    (``factor`` from reflectance x 10000); a ServiceError naming ``label`` when its values fit no unit."""
    nodata = ds.nodatavals[indexes[0] - 1]
    units = reflectance_units(ds, indexes, bands, label, nodata)
    scale, offset = units.to_dn()
    return Conversion(tuple(float(s) for s in scale), tuple(float(o) for o in offset), nodata, factor, units.unit,
                      units.note)
