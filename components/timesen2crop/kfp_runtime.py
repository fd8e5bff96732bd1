"""What runs inside the timesen2crop component's container. Kept apart from ``component.py``
because KFP's executor exposes only the artifact types of ``kfp.dsl``, not the decorators."""

from __future__ import annotations

EMPTY_MARKER = "EMPTY.txt"


def execute(archive_uri: str, dataset, val_dataset, test_dataset, metrics, values: dict) -> None:
    """Body of the component, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded("timesen2crop"):
        _execute(archive_uri, dataset, val_dataset, test_dataset, metrics, values)


def _execute(archive_uri: str, dataset, val_dataset, test_dataset, metrics, values: dict) -> None:
    import json
    import os
    from pathlib import Path

    from components.timesen2crop.params import TimeSen2CropParams
    from components.timesen2crop.service import run

    params = TimeSen2CropParams.from_strings(values)
    result = run(archive_uri, params, dataset.path)
    root = Path(dataset.path)
    summary = json.loads((root / "dataset.json").read_text())
    for split, artifact in (("val", val_dataset), ("test", test_dataset)):
        out = Path(artifact.path)
        out.mkdir(parents=True, exist_ok=True)
        folder = root / split
        if folder.is_dir():  # the held-out sets become their own artifacts
            for f in folder.iterdir():
                os.replace(f, out / f.name)
            folder.rmdir()
            artifact.metadata.update({"samples": summary["splits"][split]["samples"],
                                      "tiles": list(summary["splits"][split]["tiles"])})
        else:
            (out / EMPTY_MARKER).write_text(f"no {split} tiles were given\n")
            artifact.metadata["samples"] = 0
    dataset.metadata.update({"samples": summary["splits"]["train"]["samples"],
                             "shape": summary["splits"]["train"]["shape"], "timesteps": summary["timesteps"],
                             "bands": summary["bands"]})
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
