"""Product files that are absent: the noise annotation is needed only for thermal noise removal,
and every missing-file error names the file."""

from __future__ import annotations


import pytest

from components.s1_preprocess.cli import main_grd
from tests.fixtures import s1_products

AOI = "POLYGON((12.49 41.98, 12.53 41.98, 12.53 42.00, 12.49 42.00, 12.49 41.98))"


@pytest.fixture(scope="module")
def gutted(real_grd, tmp_path_factory):
    """Copies of the VV-only GRD crop, each without one of its files: name -> (product, file)."""
    root = tmp_path_factory.mktemp("gutted")
    out = {}
    for kind, pattern in (("noise", "annotation/calibration/noise-*"),
                          ("calibration", "annotation/calibration/calibration-*"), ("measurement", "measurement/*")):
        product = s1_products.write_grd(root / kind, source=real_grd, pols=("VV",))
        victim = next(product.glob(pattern))
        victim.unlink()
        out[kind] = product, str(victim.relative_to(product))
    return out


def _run(product, out, *args):
    return main_grd(["--input", str(product), "--outdir", str(out), "--AoI", AOI, "--resolution", "40",
                     "--speckle", "None", *args])


def _error(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("S1-GRD-preprocess: error: "), lines
    return lines[0]


def test_noise_annotation_optional_without_thermal_noise_removal(gutted, tmp_path, capsys):
    product, noise = gutted["noise"]
    assert _run(product, tmp_path / "off", "--thermal_noise_removal", "false") == 0
    assert _run(product, tmp_path / "on") == 2
    line = _error(capsys)
    assert noise in line and "--thermal_noise_removal false" in line
    assert not (tmp_path / "on").exists()


@pytest.mark.parametrize("kind", ["calibration", "measurement"])
def test_missing_file_named(kind, gutted, tmp_path, capsys):
    product, name = gutted[kind]
    assert _run(product, tmp_path / "out", "--thermal_noise_removal", "false") == 2
    assert name in _error(capsys)
    assert not (tmp_path / "out").exists()
