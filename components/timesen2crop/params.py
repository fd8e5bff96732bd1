"""Parameters of ``timesen2crop`` (seed D5.2 section 3.2.2, Table 8), declared once.

The seed publishes the dataset without a loader; these options turn the archive into the
``train.npy`` / ``y_train.npy`` arrays that ``train_lstm`` (section 3.2.4) reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.common.errors import InvalidParameter
from components.common.params import ServiceParams, param

from .legend import CLASSES, CONDITIONS, SEASON_START_YEAR


@dataclass(frozen=True)
class TimeSen2CropParams(ServiceParams):
    tiles: tuple[str, ...] = param((), "Comma-separated tiles for the training set; default: every tile of "
                                   "the archive not held out in val_tiles or test_tiles")
    val_tiles: tuple[str, ...] = param((), "Tiles held out as the validation set (written to val/: val.npy, "
                                       "y_val.npy)")
    test_tiles: tuple[str, ...] = param((), "Tiles held out as the test set (written to test/: test.npy, "
                                        "y_test.npy)")
    temporal: Literal["monthly", "acquisitions"] = param(
        "monthly", "monthly: 12 monthly medians, September to August, aligned with monthlycomposite; "
        "acquisitions: one step per date of dates.csv (the tiles must share their dates)")
    season_start: int = param(SEASON_START_YEAR, "Year in which the agronomic year starts (September); "
                              "Table 8: 2017", minimum=2015, maximum=2100)
    usable_conditions: tuple[str, ...] = param(
        ("0",), "Pixel conditions counted as usable observations: 0 clear, 1 cloud, 2 shadow, 3 snow",
        choices=tuple(str(c) for c in CONDITIONS))
    non_clear: Literal["mask", "drop", "keep"] = param(
        "mask", "Observations whose condition is not usable: mask = missing (0, left out of monthly "
        "medians); drop = as mask, and samples with a time step without any usable observation are "
        "dropped; keep = used as they are")
    classes: tuple[str, ...] = param((), "Class ids to keep (0-15, Table 8); default: all")
    bad_files: Literal["error", "skip"] = param(
        "error", "A sample CSV that cannot be read: stop naming it, or skip it (counted in run.json)")
    workers: int = param(0, "Reader processes (0: one per CPU)", minimum=0)

    def __post_init__(self):
        object.__setattr__(self, "tiles", tuple(t.strip().upper() for t in self.tiles))
        object.__setattr__(self, "val_tiles", tuple(t.strip().upper() for t in self.val_tiles))
        object.__setattr__(self, "test_tiles", tuple(t.strip().upper() for t in self.test_tiles))
        for name in ("tiles", "val_tiles", "test_tiles"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise InvalidParameter(name, ",".join(values), "each tile at most once")
        for a, b in (("val_tiles", "test_tiles"), ("tiles", "val_tiles"), ("tiles", "test_tiles")):
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if both:
                raise InvalidParameter(b, ",".join(getattr(self, b)), f"tiles that are not also in {a} "
                                       f"({', '.join(both)})")
        allowed = tuple(str(c) for c in CLASSES)
        for c in self.classes:
            if c.strip() not in allowed:
                raise InvalidParameter("classes", ",".join(self.classes), "class ids " + ", ".join(allowed))
        object.__setattr__(self, "classes", tuple(sorted({c.strip() for c in self.classes}, key=int)))
        super().__post_init__()
