"""Real Sentinel-1 products the reader must take as ESA delivers them: a slice across the
ascending node (its manifest gives start and stop orbits N and N+1), a product under any folder
or zip name (named by its own metadata, as ESA names it), a zip whose top folder is not *.SAFE;
a Sentinel-2 product given to S1 is refused as one; pieces of an S1C product get their track."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from components.common.errors import ServiceError
from components.s1_preprocess.cli import main_grd
from components.s1_preprocess.product import open_pieces, open_product
from tests.conftest import sample
from tests.fixtures.s2_products import write_s2_product


def _edit_manifest(safe: Path, *subs: tuple[str, str]) -> Path:
    manifest = safe / "manifest.safe"
    text = manifest.read_text()
    for old, new in subs:
        assert re.search(old, text), old
        text = re.sub(old, new, text)
    manifest.write_text(text)
    return safe


def _across_node(safe: Path, dest: Path, orbit_step: int = 1) -> Path:
    """A copy of ``safe`` whose stop orbit (absolute and relative) is ``orbit_step`` after its start."""
    copy = dest / safe.name
    shutil.copytree(safe, copy)
    text = (copy / "manifest.safe").read_text()
    orbit = int(re.search(r'<safe:orbitNumber type="start">(\d+)<', text).group(1))
    relative = int(re.search(r'<safe:relativeOrbitNumber type="start">(\d+)<', text).group(1))
    return _edit_manifest(copy, (r'(<safe:orbitNumber type="stop">)\d+<', rf"\g<1>{orbit + orbit_step}<"),
                          (r'(<safe:relativeOrbitNumber type="stop">)\d+<', rf"\g<1>{relative % 175 + orbit_step}<"))


def _zip(safe: Path, dest: Path, top: str | None) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(safe.rglob("*")):
            if p.is_file():
                rel = p.relative_to(safe).as_posix()
                z.write(p, f"{top}/{rel}" if top else rel)
    return dest


def _metadata_only(safe: Path, dest: Path) -> Path:
    """The manifest and annotations of a real product (no measurement): enough to open it."""
    dest.mkdir(parents=True)
    shutil.copy(safe / "manifest.safe", dest)
    shutil.copytree(safe / "annotation", dest / "annotation")
    return dest


def test_a_slice_across_the_ascending_node_is_read(grd_product, tmp_path):
    anx = _across_node(grd_product, tmp_path)
    product = open_product(anx, tmp_path / "work", expect="GRD")
    # the start orbits, as in ESA's product name and catalogue; the stop ones kept beside them
    assert (product.absolute_orbit, product.relative_orbit) == (30148, 22)
    assert (product.attrs["orbit_number_stop"], product.attrs["relative_orbit_number_stop"]) == (30149, 23)
    out = tmp_path / "out"
    assert main_grd(["--input", str(anx), "--resolution", "100", "--speckle", "None", "--outdir", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    stac = json.loads((out / record["outputs"]["stac"]).read_text())
    assert stac["properties"]["sat:relative_orbit"] == 22 and stac["properties"]["sat:absolute_orbit"] == 30148


def test_a_stop_orbit_that_is_not_the_next_one_is_refused(grd_product, tmp_path):
    bad = _across_node(grd_product, tmp_path, orbit_step=5)
    with pytest.raises(ServiceError, match="orbitNumber stop 30153 is neither the start orbit 30148 nor the next"):
        open_product(bad, tmp_path / "work")


@pytest.mark.parametrize("kind", ["GRD", "SLC"])
def test_products_are_named_by_their_metadata_whatever_the_folder(kind, real_grd, real_slc, tmp_path):
    """ESA's name, resolution class and CRC-16 unique id included, from a renamed folder, a zip
    without a top folder and a zip whose top folder is not *.SAFE."""
    real = real_grd if kind == "GRD" else real_slc
    renamed = _metadata_only(real, tmp_path / "my_s1_download")
    inputs = [renamed, _zip(renamed, tmp_path / "no_top.zip", None),
              _zip(renamed, tmp_path / "renamed_top.zip", "download_1")]
    for i, path in enumerate(inputs):
        assert open_product(path, tmp_path / f"work{i}").name == real.name[:-len(".SAFE")], path.name


def test_a_zip_under_another_top_folder_runs_with_the_product_name(grd_product, tmp_path):
    z = _zip(grd_product, tmp_path / "download.zip", "download_1")
    out = tmp_path / "out"
    assert main_grd(["--input", str(z), "--resolution", "100", "--speckle", "None", "--outdir", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["outputs"]["product"] == f"{grd_product.name[:-len('.SAFE')]}_VV_Sigma_100m.tif"
    assert record["inputs"][0]["id"] == grd_product.name[:-len(".SAFE")]


def test_a_sentinel2_product_given_to_s1_is_named_as_one(tmp_path, capsys):
    s2 = write_s2_product(tmp_path / "s2", size_10m=60)
    out = tmp_path / "out"
    assert main_grd(["--input", str(s2), "--outdir", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert err == [f"S1-GRD-preprocess: error: not a Sentinel-1 product: {s2.name} is a Sentinel-2A product"]
    assert not out.exists()


def test_relative_orbits_of_each_mission():
    from components.s1_preprocess.product import _relative_orbit

    # ESA's formula, (absolute - offset) mod 175 + 1: S1A and S1B examples from ESA's Mission
    # Performance Centre (STEP forum), S1C from a real product (orbit 1681, track 110) and the
    # June 2026 change of S1C's offset (172 up to orbit 8018, 99 after)
    assert _relative_orbit("S1A", 18302) == 30 and _relative_orbit("S1B", 7231) == 30
    assert _relative_orbit("S1C", 1681) == 110
    assert _relative_orbit("S1C", 8018) == 147 and _relative_orbit("S1C", 8019) == 46
    assert _relative_orbit("S1D", 2389) is None  # no published formula yet: no track rather than a wrong one


def test_pieces_of_an_s1c_product_have_a_track(tmp_path):
    crop = sample("s1-iw-slc-crop-real-terceira")
    pieces = tmp_path / "s1c"
    pieces.mkdir()
    for p in crop.glob("s1a-*"):
        dest = pieces / p.name.replace("s1a-", "s1c-")
        if p.suffix == ".xml":
            dest.write_text(p.read_text().replace("<missionId>S1A<", "<missionId>S1C<")
                            .replace("<absoluteOrbitNumber>45056<", "<absoluteOrbitNumber>1681<"))
        else:
            dest.symlink_to(p)
    product = open_pieces(pieces, calibration_constant=237.0)
    assert product.mission == "S1C" and product.relative_orbit == 110
