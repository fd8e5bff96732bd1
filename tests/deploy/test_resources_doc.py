"""The resources table of docs/deploy.md says what the compiled pipelines ask of Kubernetes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipelines.compile import COMPILED

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _table() -> dict[str, dict]:
    text = DOC.read_text().split("## 7. Resources per service", 1)[1]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[0].startswith("`"):
            continue
        request, _, limit = cells[2].partition(" / ")
        for step in re.findall(r"`([\w-]+)`", cells[0]):
            rows[step] = {"pipelines": {p.strip() for p in cells[1].split(",")}, "request": request, "limit": limit,
                          "cpu": cells[3], "gpu": cells[4]}
    return rows


def test_every_step_is_in_the_table_with_its_compiled_resources():
    rows = _table()
    seen = set()
    for path in sorted(COMPILED.glob("*.yaml")):
        spec = next(yaml.safe_load_all(path.read_text()))
        for executor, body in spec["deploymentSpec"]["executors"].items():
            res = body["container"].get("resources")
            if not res:  # a step without settings (a quick check)
                continue
            step = re.sub(r"-\d+$", "", executor.removeprefix("exec-"))
            assert step in rows, f"docs/deploy.md §7 lacks the step {step} of {path.stem}"
            row = rows[step]
            seen.add(step)
            assert path.stem in row["pipelines"], (step, path.stem)
            assert row["request"] == res.get("resourceMemoryRequest", "-"), step
            assert row["limit"] == res.get("resourceMemoryLimit", "-"), step
            assert row["cpu"] == res.get("resourceCpuLimit", ""), step
            assert row["gpu"] == res.get("accelerator", {}).get("resourceCount", ""), step
    assert seen == set(rows), f"rows of steps no pipeline has: {set(rows) - seen}"
