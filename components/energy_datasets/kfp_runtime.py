"""What runs inside the energy-datasets component's container. Kept apart from
``component.py`` because KFP's executor exposes only the artifact types of ``kfp.dsl``."""

from __future__ import annotations

SERVICE = "energy-datasets"


def execute(name: str, dataset, report, values: dict) -> None:
    """Body of the component, importable and testable without KFP's executor. The artifact's
    folder receives ``<name>/`` (files and manifest.json)."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded(SERVICE):
        _execute(name, dataset, report, values)


def _execute(name: str, dataset, report, values: dict) -> None:
    import json
    from pathlib import Path

    from components.energy_datasets.params import StageParams
    from components.energy_datasets.stage import stage

    params = StageParams.from_strings(values)
    result = stage(name, dataset.path, params)
    manifest = json.loads(Path(result.manifest).read_text())
    info = manifest["dataset"]
    dataset.metadata.update({"dataset": name, "licence": info["licence"], "source": info["source"],
                             "format": info["format"], "access": info["access"],
                             "files": [f["name"] for f in manifest["files"]]})
    rows = "\n".join(f"| {f['name']} | {f['bytes']} | `{f['sha256'][:16]}…` | {f['verified'] or 'recorded'} |"
                     for f in manifest["files"])
    Path(report.path).write_text(
        f"# {info['title']}\n\n{info['description']}\n\n"
        f"* source: {info['source']}\n* licence: {info['licence']}\n* format: {info['format']}\n"
        f"* access: {info['access']}\n* homepage: {info['homepage']}\n\n"
        f"| file | bytes | sha256 | checksum |\n|---|---|---|---|\n{rows}\n\n{info['attribution']}\n")
