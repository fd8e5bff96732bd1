"""An L1C input with Sen2Cor installed: Sen2Cor gets the product's SAFE folder, named like the
product, whichever layout the reader accepts (a zip with its .SAFE top folder, with another top
folder or none, a .SAFE folder, a folder holding one, a renamed folder). A stand-in L2A_Process
on PATH refuses anything else, as Sen2Cor does, and otherwise writes a small L2A product."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from components.s2_preprocess.cli import main
from tests.fixtures.s2_products import write_s2_product

STAND_IN = '''#!{python}
import re, shutil, sys
from pathlib import Path
safe, out = Path(sys.argv[1]), Path(sys.argv[sys.argv.index("--output_dir") + 1])
mtd = safe / "MTD_MSIL1C.xml"
uri = re.search(r"<PRODUCT_URI>([^<]+)</PRODUCT_URI>", mtd.read_text()).group(1) if mtd.is_file() else None
if not safe.is_dir() or safe.name != uri:
    sys.exit(f"L2A_Process: {{safe}} is not a Level-1C SAFE folder named like its product ({{uri}})")
shutil.copytree({l2a!r}, out / Path({l2a!r}).name)
'''


def _zip(safe: Path, dest: Path, top: str | None) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(safe.rglob("*")):
            if p.is_file():
                rel = p.relative_to(safe).as_posix()
                z.write(p, f"{top}/{rel}" if top else rel)
    return dest


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("sen2cor")
    l2a = write_s2_product(root / "l2a", size_10m=60)
    l1c = write_s2_product(root / "holder", size_10m=60, level="L1C")  # holder/<name>.SAFE
    renamed = root / "my_download"
    shutil.copytree(l1c, renamed)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "L2A_Process"
    exe.write_text(STAND_IN.format(python=sys.executable, l2a=str(l2a)))
    exe.chmod(0o755)
    return {
        "SAFE folder": l1c,
        "folder holding the SAFE": root / "holder",
        "renamed folder": renamed,
        "zip with its .SAFE top folder": _zip(l1c, root / "with_top.zip", l1c.name),
        "zip without a top folder": _zip(l1c, root / "no_top.zip", None),
        "zip with another top folder": _zip(l1c, root / "renamed_top.zip", "download_1"),
        "bin": bin_dir, "l2a": l2a,
    }


@pytest.mark.parametrize("layout", ["SAFE folder", "folder holding the SAFE", "renamed folder",
                                    "zip with its .SAFE top folder", "zip without a top folder",
                                    "zip with another top folder"])
def test_sen2cor_gets_the_safe_folder(layouts, layout, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", f"{layouts['bin']}{os.pathsep}{os.environ.get('PATH', '')}")
    out = tmp_path / "out"
    code = main(["--input", str(layouts[layout]), "--resolution", "60", "--bands", "B2", "--outdir", str(out)])
    assert code == 0, capsys.readouterr().err.strip().splitlines()[-1:]
    record = json.loads((out / "run.json").read_text())
    assert record["outputs"]["product"].startswith(layouts["l2a"].name[:-len(".SAFE")])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the work folder is gone
