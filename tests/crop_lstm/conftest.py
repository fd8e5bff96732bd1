"""The crop-type chain on small synthetic data in the real formats, built once per session:
TimeSen2Crop archive -> timesen2crop -> train_lstm (a real, tiny training run) and a REFBOA/LAI
time series of a tile -> monthlycomposite."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.crop_lstm.train_cli import main as train_main
from components.s2_harmonization.cli import main as composite_main
from components.timesen2crop.cli import main as loader_main
from tests.fixtures.timesen2crop_archive import write_archive, write_time_series

CLASSES = (2, 9, 12, 1)
TRAIN_ARGS = ["--n_epochs", "12", "--batch_size", "16", "--hidden_size", "24", "--learning_rate", "0.01"]


@dataclass
class Chain:
    root: Path
    archive: Path
    dataset: Path  # timesen2crop output (train.npy, y_train.npy, val/)
    model_dir: Path  # train_lstm output
    series: Path  # REFBOA/ + LAI/
    composites: Path  # monthlycomposite output
    mask: Path
    truth: object  # class id per pixel, -1 off the fields

    @property
    def h5(self) -> Path:
        return self.model_dir / "crop_lstm.h5"

    def input_dir(self, dst: Path, mask: bool = True) -> Path:
        """The seed's --input_dir of tile_classifier: the .h5 model and the crop mask."""
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.h5, dst)
        if mask:
            shutil.copy(self.mask, dst)
        return dst


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Chain:
    root = tmp_path_factory.mktemp("crop_chain")
    archive = write_archive(root / "archive", tiles=("33UVP", "33UWP", "33TVN"), classes=CLASSES, per_class=20, seed=11)
    dataset = root / "dataset"
    assert loader_main(["--input_dir", str(archive), "--output_dir", str(dataset), "--val_tiles", "33TVN"]) == 0
    model_dir = root / "model"
    assert train_main(["--input_dir", str(dataset), "--output_dir", str(model_dir), "--val", str(dataset / "val"),
                       *TRAIN_ARGS]) == 0
    series = root / "series"
    info = write_time_series(series, size=80, seed=12, classes=CLASSES)
    composites = root / "composites"
    assert composite_main(["--input_dir", str(series), "--output_dir", str(composites)]) == 0
    return Chain(root, archive, dataset, model_dir, series, composites, info["mask"], info["truth"])
