"""A band file whose size disagrees with the resolution its folder declares is refused, not read
on the declared grid (where its pixels would fill a corner of the tile and the rest NoData):
the real T22HBD L2A of ../shared/data, every raster decimated to 100 x 100 px of 1098 m."""

from __future__ import annotations

from components.s2_preprocess.cli import main
from tests.conftest import sample


def test_decimated_product_is_refused_naming_the_file_and_its_size(tmp_path, capsys):
    safe = next(sample("s2-l2a-safe-t22hbd-decimated").glob("*.SAFE"))
    out = tmp_path / "out"
    assert main(["--input", str(safe), "--resolution", "60", "--bands", "B2,B3,B4", "--outdir", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(lines) == 1
    assert "T22HBD_20210122T133229_B02_10m.jp2" in lines[0] and "100 x 100 px of 1098 m" in lines[0], lines
    assert "10980 x 10980 px" in lines[0]
    assert not out.exists()
