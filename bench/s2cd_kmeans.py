"""Time the S2-CD K-means fit (``classify.fit_polar_classes``) on a synthetic sample of changed
pixels the size the engine fits on (``engine.KMEANS_SAMPLES``), 4 classes, best of 3 runs.

    python bench/s2cd_kmeans.py [--classify path/to/classify.py] [--samples N]

``--classify`` times another version of the module (e.g. one written by ``git show
REV:components/s2_change_detection/classify.py``) on the same sample.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.s2_change_detection import classify  # noqa: E402
from components.s2_change_detection.engine import KMEANS_SAMPLES  # noqa: E402


def sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes and angles of four overlapping change populations."""
    rng = np.random.default_rng(seed)
    centres = [(0.05, 40.0), (0.12, 75.0), (0.2, 110.0), (0.08, 150.0)]
    part = rng.integers(len(centres), size=n)
    rho = np.abs(rng.normal([centres[i][0] for i in part], 0.03))
    theta = np.clip(rng.normal([centres[i][1] for i in part], 15.0), 0.0, 180.0)
    return rho.astype(np.float32), theta.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classify", type=Path, help="another classify.py to time instead")
    ap.add_argument("--samples", type=int, default=KMEANS_SAMPLES)
    args = ap.parse_args(argv)
    module = classify
    if args.classify:
        spec = importlib.util.spec_from_file_location("classify_other", args.classify)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    rho, theta = sample(args.samples)
    module.fit_polar_classes(rho[:1000], theta[:1000], 4)  # imports and first-call costs out of the timing
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fitted = module.fit_polar_classes(rho, theta, 4)
        times.append(time.perf_counter() - t)
    print(json.dumps({"module": str(args.classify or "components/s2_change_detection/classify.py"),
                      "samples": args.samples, "classes": fitted.k, "best_s": round(min(times), 3),
                      "centroids": np.round(fitted.centroids, 4).tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
