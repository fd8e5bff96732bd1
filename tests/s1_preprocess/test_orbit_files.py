"""Orbit (EOF) files: the state vectors must bracket the acquisition (two before its start, two
after its stop, no gap over 30 s between them) and be of the product's mission; a folder gives the
file that does (POEORB before RESORB); a zipped EOF is read. Vectors ending 30-80 s before the
acquisition, or a gap over it, used to geolocate 20-170 m off without a word."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from components.common.errors import ServiceError
from components.s1_preprocess import geocoding as G
from components.s1_preprocess.cli import main_grd

REAL_EOF = "s1-iw-slc-crop-real-terceira"


def write_eof(path: Path, image, keep=lambda t: True, mission="Sentinel-1B", file_type="AUX_RESORB",
              header=True) -> Path:
    """An EOF file (ESA's Earth Explorer layout) holding the annotation's state vectors for which
    ``keep(seconds from the product start)`` is true."""
    orbit = image.orbit
    start = image.product.start_time
    osv = []
    for i, t in enumerate(orbit.azimuth_time.values):
        if not keep((t - start) / np.timedelta64(1, "s")):
            continue
        p, v = orbit.position.values[:, i], orbit.velocity.values[:, i]
        osv.append(f"<OSV><TAI>TAI={str(t)[:26]}</TAI><UTC>UTC={str(t)[:26]}</UTC>"
                   "<Absolute_Orbit>+30148</Absolute_Orbit>"
                   f"<X unit=\"m\">{p[0]:.6f}</X><Y unit=\"m\">{p[1]:.6f}</Y><Z unit=\"m\">{p[2]:.6f}</Z>"
                   f"<VX unit=\"m/s\">{v[0]:.6f}</VX><VY unit=\"m/s\">{v[1]:.6f}</VY>"
                   f"<VZ unit=\"m/s\">{v[2]:.6f}</VZ><Quality>NOMINAL</Quality></OSV>")
    head = (f"<Earth_Explorer_Header><Fixed_Header><File_Name>{path.stem}</File_Name><Mission>{mission}</Mission>"
            f"<File_Type>{file_type}</File_Type><Source><Creation_Date>UTC=2022-01-12T00:00:00</Creation_Date>"
            f"</Source></Fixed_Header></Earth_Explorer_Header>") if header else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<?xml version=\"1.0\"?><Earth_Explorer_File>{head}<Data_Block type=\"xml\">"
                    f"<List_of_OSVs count=\"{len(osv)}\">{''.join(osv)}</List_of_OSVs></Data_Block>"
                    "</Earth_Explorer_File>")
    return path


def _name(kind="RESORB", created="20211223T070000", mission="S1B"):
    return f"{mission}_OPER_AUX_{kind}_OPOD_{created}_V20211223T045000_20211223T053500.EOF"


def _read(image, path, mission="S1B"):
    p = image.product
    return G.read_eof(path, mission, p.start_time, p.stop_time, image.first_line_time)


def test_the_annotation_vectors_cover_the_acquisition(grd_image, tmp_path):
    """The real GRD's 16 vectors (10 s apart, 05:10:21-05:12:51) bracket 05:11:22-05:11:47."""
    eof = write_eof(tmp_path / _name(), grd_image)
    orbit = _read(grd_image, eof)
    assert orbit.source == eof.name and orbit.t.size == 16


@pytest.mark.parametrize("keep, fragments", [
    # vectors up to 05:11:01: 22 s before the start (the old check took any 4 within 2 minutes)
    (lambda t: t <= -20, ["does not cover the acquisition", "end at 2021-12-23T05:11:01", "22 s before it starts"]),
    # vectors from 05:12:01: after the stop
    (lambda t: t >= 38, ["does not cover the acquisition", "begin at 2021-12-23T05:12:01", "after it ends"]),
    # one vector before the start (05:11:21): the interpolation needs two
    (lambda t: t >= -2, ["with a margin", "1 state vector(s) up to the start", "2 are needed"]),
    # 70 s gap over the acquisition (05:11:11 to 05:12:01 missing)
    (lambda t: not -12 < t < 48, ["gap of 70 s", "05:11:01 to 2021-12-23T05:12:11", "at most 30 s"]),
])
def test_vectors_that_do_not_bracket_the_acquisition_are_refused(keep, fragments, grd_image, tmp_path):
    eof = write_eof(tmp_path / _name(), grd_image, keep)
    with pytest.raises(ServiceError) as e:
        _read(grd_image, eof)
    line = e.value.one_line()
    assert line.startswith(f"orbit file {eof.name} ")
    for fragment in fragments:
        assert fragment in line, line


def test_an_orbit_of_the_other_unit_is_refused(grd_image, tmp_path):
    """An S1A orbit file (or one renamed S1B_...) for an S1B product: its header says whose it is."""
    eof = write_eof(tmp_path / _name(), grd_image, mission="Sentinel-1A")
    with pytest.raises(ServiceError, match=f"^orbit file {eof.name} is an orbit file of Sentinel-1A; "
                                           f"the product is from Sentinel-1B$"):
        _read(grd_image, eof)


def test_a_folder_gives_the_file_that_covers_the_acquisition(grd_image, tmp_path):
    """The first file by name ends before the acquisition; a later one covers it."""
    folder = tmp_path / "orbits"
    write_eof(folder / _name(created="20211223T060000"), grd_image, lambda t: t <= -20)
    good = write_eof(folder / _name(created="20211223T070000"), grd_image)
    write_eof(folder / _name(created="20211223T080000"), grd_image, lambda t: not -12 < t < 48)
    write_eof(folder / _name(mission="S1A", kind="POEORB"), grd_image, mission="Sentinel-1A")
    assert _read(grd_image, folder).source == good.name
    # POEORB (precise) before RESORB (restituted), whatever their names and dates
    poe = write_eof(folder / _name(kind="POEORB", created="20200101T000000"), grd_image, file_type="AUX_POEORB")
    assert _read(grd_image, folder).source == poe.name


def test_a_folder_without_a_covering_file_names_each_and_why(grd_image, tmp_path):
    folder = tmp_path / "orbits"
    write_eof(folder / _name(created="20211223T060000"), grd_image, lambda t: t <= -20)
    write_eof(folder / _name(created="20211223T080000"), grd_image, mission="Sentinel-1A")
    with pytest.raises(ServiceError) as e:
        _read(grd_image, folder)
    line = e.value.one_line()
    assert line.startswith(f"no orbit file in {folder} covers S1B 2021-12-23T05:11:22 to 2021-12-23T05:11:47: ")
    assert f"{_name(created='20211223T060000')} does not cover" in line
    assert f"{_name(created='20211223T080000')} is an orbit file of Sentinel-1A" in line


def test_a_zipped_eof_is_read(grd_image, tmp_path):
    eof = write_eof(tmp_path / "plain" / _name(kind="POEORB"), grd_image, file_type="AUX_POEORB")
    archive = tmp_path / "zipped" / f"{eof.name}.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(eof, eof.name)
    assert _read(grd_image, archive).source == archive.name
    assert _read(grd_image, archive.parent).source == archive.name  # in a folder too
    empty = tmp_path / "empty.EOF.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "no orbit")
    with pytest.raises(ServiceError, match="^orbit file empty.EOF.zip holds no .EOF files: one expected$"):
        _read(grd_image, empty)


def test_the_real_restituted_orbit_file_passes(tmp_path):
    """ESA's RESORB in the shared data: S1A, 10 s vectors over 3 h 17 min."""
    from tests.conftest import sample

    path = next(sample(REAL_EOF).glob("*.EOF"))
    eof = G.parse_eof(path)
    assert (eof.mission, eof.file_type, eof.times.size) == ("S1A", "AUX_RESORB", 1186)
    assert set(np.diff(eof.times) / np.timedelta64(1, "s")) == {10.0}
    start, stop = eof.times[600] + np.timedelta64(3, "s"), eof.times[603]
    assert G.eof_problem(eof, "S1A", start, stop) is None
    assert "Sentinel-1A" in G.eof_problem(eof, "S1B", start, stop)


def test_a_run_with_an_orbit_file_ending_before_the_acquisition_is_one_line(grd_product, grd_image, tmp_path,
                                                                             capsys):
    eof = write_eof(tmp_path / _name(), grd_image, lambda t: t <= -30)
    out = tmp_path / "out"
    code = main_grd(["--input", str(grd_product), "--outdir", str(out), "--resolution", "40", "--speckle", "None",
                     "--orbit", str(eof)])
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1, lines
    assert f"orbit file {eof.name} does not cover the acquisition" in lines[0]
    assert not out.exists()
    good = write_eof(tmp_path / "good" / _name(), grd_image)
    assert main_grd(["--input", str(grd_product), "--outdir", str(out), "--resolution", "40", "--speckle", "None",
                     "--orbit", str(good.parent)]) == 0
    assert json.loads((out / "run.json").read_text())["outputs"]["metrics"]["orbit"] == f"EOF file {good.name}"
