"""S1-CD pairs a slice across the ascending node (its manifest gives start and stop orbits N and
N+1, relative orbits too) like any other: its track is the start relative orbit, and a pair
whose relative orbits meet at the node is one track."""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest

from components.common.errors import ServiceError
from components.s1_change_detection.cli import main
from components.s1_change_detection.pair import peek, validate_pair
from tests.fixtures.s2_products import write_s2_product


def _across_node(safe, dest):
    copy = dest / safe.name
    shutil.copytree(safe, copy)
    manifest = copy / "manifest.safe"
    text = manifest.read_text()
    orbit = int(re.search(r'<safe:orbitNumber type="start">(\d+)<', text).group(1))
    relative = int(re.search(r'<safe:relativeOrbitNumber type="start">(\d+)<', text).group(1))
    text = re.sub(r'(<safe:orbitNumber type="stop">)\d+<', rf"\g<1>{orbit + 1}<", text)
    manifest.write_text(re.sub(r'(<safe:relativeOrbitNumber type="stop">)\d+<', rf"\g<1>{relative % 175 + 1}<", text))
    return copy, relative


def test_peek_reads_a_slice_across_the_node(slc_pair, tmp_path):
    b, relative = _across_node(slc_pair[1], tmp_path)
    zipped = tmp_path / "b.zip"
    with zipfile.ZipFile(zipped, "w") as z:  # no top folder
        for p in sorted(b.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(b).as_posix())
    for path in (b, zipped):
        attrs = peek(path)
        assert (attrs["relative_orbit_number"], attrs["relative_orbit_number_stop"]) == (relative, relative % 175 + 1)
    assert validate_pair(peek(slc_pair[0]), peek(b), "VV") == pytest.approx(12)


def test_a_pair_with_a_slice_across_the_node_runs(slc_pair, tmp_path):
    a, b = slc_pair
    anx, _ = _across_node(b, tmp_path)
    out = tmp_path / "out"
    assert main(["--input1", str(a), "--input2", str(anx), "--outdir", str(out), "--engine", "snap",
                 "--graph_only", "true"]) == 0


def _attrs(relative, stop=None, start="2021-04-01T05:26:22"):
    return {"source": f"p{relative}", "product_type": "SLC", "mode": "IW", "pass": "ASCENDING",
            "relative_orbit_number": relative, "relative_orbit_number_stop": relative if stop is None else stop,
            "transmitter_receiver_polarisations": ["VV"], "start_time": start}


def test_relative_orbits_that_meet_at_the_node_are_one_track():
    later = "2021-04-13T05:26:22"
    # one slice starts before the node, the other after it: the same track under two numbers
    assert validate_pair(_attrs(22, 23), _attrs(23, start=later), "VV") == pytest.approx(12)
    assert validate_pair(_attrs(175, 1), _attrs(1, start=later), "VV") == pytest.approx(12)
    with pytest.raises(ServiceError, match="not from the same track: relative orbits 22 and 24"):
        validate_pair(_attrs(22, 23), _attrs(24, start=later), "VV")


def test_a_sentinel2_product_is_named_as_one(tmp_path):
    s2 = write_s2_product(tmp_path / "s2", size_10m=60)
    with pytest.raises(ServiceError, match=f"^not a Sentinel-1 product: {s2.name} is a Sentinel-2A product$"):
        peek(s2)
