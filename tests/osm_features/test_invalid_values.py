"""Values osm-features cannot use: a malformed coordinate in an .osm file (osmium raises
InvalidLocationError, not a RuntimeError) and `serve` limits outside what a socket or a
comparison can take. Each is one line naming the value, exit status 2, nothing written."""

from __future__ import annotations

import pytest

from components.osm_features.cli import main

NODE = ("<node id='1' lat='{lat}' lon='{lon}' version='1' timestamp='2020-01-01T00:00:00Z'>"
        "<tag k='aeroway' v='aerodrome'/></node>")


def _osm_xml(path, body: str):
    path.write_text(f"<?xml version='1.0'?><osm version='0.6'>{body}</osm>\n")
    return path


@pytest.fixture
def bad_node(tmp_path):
    return _osm_xml(tmp_path / "bad.osm", NODE.format(lat=95, lon=999))


@pytest.fixture
def bad_bounds(tmp_path):
    return _osm_xml(tmp_path / "bounds.osm", "<bounds minlat='1' minlon='999' maxlat='2' maxlon='3'/>"
                    + NODE.format(lat=1.5, lon=2))


def _one_error(capsys, prog: str) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("fixture", ["bad_node", "bad_bounds"])
def test_invalid_coordinate_is_one_line(fixture, request, tmp_path, capsys):
    osm = request.getfixturevalue(fixture)
    out = tmp_path / "out"
    assert main(["--input", str(osm), "--output", str(out)]) == 2
    line = _one_error(capsys, "osm-features")
    assert f"{osm.name} holds an invalid coordinate" in line and "'999'" in line
    assert "longitude within [-180, 180]" in line
    assert not out.exists() or not any(out.rglob("*"))


def test_serve_refuses_an_invalid_coordinate(bad_node, capsys):
    assert main(["serve", "--input", str(bad_node), "--port", "0"]) == 2
    assert "bad.osm holds an invalid coordinate" in _one_error(capsys, "osm-features serve")


@pytest.mark.parametrize("flag, value, allowed", [
    ("--port", "70000", "from 0 to 65535"),
    ("--port", "-1", "from 0 to 65535"),
    ("--max_aoi_km2", "nan", "a finite number > 0"),
    ("--max_aoi_km2", "inf", "a finite number > 0"),
    ("--max_aoi_km2", "0", "a finite number > 0"),
])
def test_serve_refuses_limits_before_reading_the_input(flag, value, allowed, tmp_path, capsys):
    # the input does not exist: the limits are refused before it is even fetched
    assert main(["serve", "--input", str(tmp_path / "none.osm.pbf"), flag, value]) == 2
    line = _one_error(capsys, "osm-features serve")
    assert f"parameter '{flag[2:]}'" in line and value in line and allowed in line
