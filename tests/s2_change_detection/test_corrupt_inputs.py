"""Damaged inputs given to S2-CD: a band or SCL file of a product cut short, a pre-processed stack
cut short, a metadata value that is not a number. Each case: exit status 2, one line
``S2-CD: error: ...`` naming the file, no traceback, nothing in the output folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from components.s2_change_detection.cli import main
from components.s2_preprocess.cli import main as preprocess_main
from tests.fixtures.s2_products import write_s2_product


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdcorrupt")
    a = write_s2_product(root / "a", size_10m=60, sensing="20220601T112121")
    b = write_s2_product(root / "b", size_10m=60, sensing="20220820T112119", seed=2)
    stacks = {}
    for key, product in (("stack_a", a), ("stack_b", b)):
        assert preprocess_main(["--input", str(product), "--outdir", str(root / key)]) == 0
        stacks[key] = next((root / key).glob("*_10m.tif"))
    return {"a": a, "b": b, **stacks}


def cut(pattern: str, keep: float):
    def corrupt(path: Path) -> Path:
        f = path if path.is_file() else next(path.rglob(pattern))
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * keep)])
        return path
    return corrupt


def set_element(tag: str, value: str):
    def corrupt(safe: Path) -> Path:
        f = safe / "MTD_MSIL2A.xml"
        f.write_text(re.sub(rf"<{tag}([^>]*)>[^<]*</{tag}>", rf"<{tag}\1>{value}</{tag}>", f.read_text(), count=1))
        return safe
    return corrupt


CASES = [
    # (id, input1, input2, which input is corrupted, corruption, fragments)
    ("band of input2 cut", "a", "b", 2, cut("*_B04_10m.jp2", 0.5),
     ["T29UNU_20220820T112119_B04_10m.jp2", "truncated or corrupt JPEG 2000"]),
    ("SCL of input1 cut", "a", "b", 1, cut("*_SCL_20m.jp2", 0.5), ["SCL_20m.jp2", "truncated or corrupt JPEG 2000"]),
    ("quantification of input1 is text", "a", "b", 1, set_element("BOA_QUANTIFICATION_VALUE", "abc"),
     ["input1", "MTD_MSIL2A.xml", "BOA_QUANTIFICATION_VALUE", "'abc'"]),
    ("pre-processed stack cut", "stack_a", "stack_b", 2, cut("*.tif", 0.6),
     ["_10m.tif", "truncated or corrupt GeoTIFF"]),
]


@pytest.mark.parametrize("case_id, first, second, which, corrupt, fragments", CASES, ids=[c[0] for c in CASES])
def test_corrupt_input(case_id, first, second, which, corrupt, fragments, originals, tmp_path, capsys):
    inputs = []
    for n, key in enumerate((first, second), start=1):
        src = originals[key]
        copy = tmp_path / f"in{n}" / src.name
        copy.parent.mkdir()
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy)
        inputs.append(corrupt(copy) if n == which else copy)
    out = tmp_path / "out"
    code = main(["--input1", str(inputs[0]), "--input2", str(inputs[1]), "--output_path", str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("S2-CD: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.rglob(".*") if p.name.startswith((".s2p-", ".s2cd-"))]
