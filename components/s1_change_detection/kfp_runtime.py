"""What runs inside the S1-CD component's container (kept apart from ``component.py``, whose
decorators are not importable inside KFP's executor)."""

from __future__ import annotations


def execute(input1: str, input2: str, products, quicklook, metrics, values: dict) -> None:
    """Body of the component, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded("S1-CD"):
        _execute(input1, input2, products, quicklook, metrics, values)


def _execute(input1: str, input2: str, products, quicklook, metrics, values: dict) -> None:
    from pathlib import Path

    from components.common.errors import ServiceError
    from components.s1_change_detection.params import S1CDParams
    from components.s1_change_detection.service import run
    from components.s1_preprocess.kfp_runtime import thumbnail_html

    if not input1 or not input2:
        raise ServiceError("give input1_uri and input2_uri (or the input1/input2 datasets)")
    params = S1CDParams.from_strings(values)
    result = run(input1, input2, params, products.path)
    products.metadata.update({role: Path(p).name for role, p in result.products.items()})
    for key in ("change_percent", "coherence_valid_percent", "temporal_baseline_days"):
        if key in result.metrics:
            metrics.log_metric(key, result.metrics[key])
    mtc = result.products.get("mtc")
    if mtc:
        png = str(Path(mtc).with_name(Path(mtc).stem + "_quicklook.png"))
        rows = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}
        Path(quicklook.path).write_text(thumbnail_html(Path(mtc).name, png, rows))
    else:
        Path(quicklook.path).write_text("<html><body><p>SNAP graphs written</p></body></html>")
