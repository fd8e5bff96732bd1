"""OSM files that are not a current extract, or that this reader cannot decode, each refused with
one line saying what the file is: a history file (several versions of objects, deleted ones
included), a change file (osmChange), a PBF whose blobs use a compression libosmium was built
without. And a way whose nodes are all absent from the extract is counted as missing nodes, not
as a degenerate line. Every input is written here, small, by pyosmium's own writer."""

from __future__ import annotations

import datetime as dt
import lzma
import struct

import osmium
import pytest
from osmium.osm.mutable import Node, Way

from components.osm_features import web
from components.osm_features.cli import main
from components.osm_features.dictionary import load_dictionary
from components.osm_features.extract import DEGENERATE_LINE, MISSING_LOCATION, ExtractStats, extract, read_header

T0 = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
POLICE = {"amenity": "police", "name": "Poliisi"}


def _node(id_: int, version: int = 1, visible: bool = True, tags=POLICE, lon: float = 26.95) -> Node:
    return Node(id=id_, version=version, visible=visible, changeset=1, timestamp=T0, uid=1, user="u",
                tags=tags, location=(lon, 60.53))


def _write(path, fmt: str, nodes=(), ways=(), history: bool = False):
    header = osmium.io.Header()
    header.has_multiple_object_versions = history
    writer = osmium.SimpleWriter(osmium.io.File(str(path), fmt), header=header, overwrite=True)
    try:
        for n in nodes:
            writer.add_node(n)
        for w in ways:
            writer.add_way(w)
    finally:
        writer.close()
    return path


def _history_nodes():
    """A police station that existed (v1) and was deleted (v2, visible=false, no tags, as in a
    real full-history file), and one that still exists."""
    return [_node(1, 1), _node(1, 2, visible=False, tags={}), _node(2, 1, lon=26.96)]


def _refused(capsys, args: list[str], fragment: str, prog: str = "osm-features") -> str:
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


def _cli_refuses(capsys, path, tmp_path, fragment: str) -> str:
    out = tmp_path / "out"
    line = _refused(capsys, ["--input", str(path), "--output", str(out)], fragment)
    assert not out.exists() or not any(out.rglob("*")), "partial output left"
    return line


HISTORY = "is an OSM history file (several versions of objects, deleted ones included), not a current extract"
CURRENT = "give a current extract (e.g. osmium time-filter"
CHANGE = "is an OSM change file (osmChange: objects created, modified and deleted), not an extract"


# -- 1. history files --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["history.osh.pbf", "renamed-history.osm.pbf"])
def test_history_pbf_is_refused_by_its_header(name, tmp_path, capsys):
    """The PBF header's required feature HistoricalInformation (has_multiple_object_versions)
    marks a history file, whatever its name."""
    path = _write(tmp_path / name, "osh.pbf", _history_nodes(), history=True)
    reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
    assert reader.header().has_multiple_object_versions
    reader.close()
    line = _cli_refuses(capsys, path, tmp_path, f"{name} {HISTORY}")
    assert CURRENT in line


def test_serve_refuses_a_history_file_before_listening(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path / "history.osh.pbf", "osh.pbf", _history_nodes(), history=True)

    def listen(*_):
        raise AssertionError("the history file was indexed and the service about to listen")

    monkeypatch.setattr(web, "_bind", listen)
    _refused(capsys, ["serve", "--input", str(path), "--port", "0"], f"history.osh.pbf {HISTORY}",
             "osm-features serve")


def test_xml_history_named_osh_is_refused(tmp_path, capsys):
    """XML has no header flag for history; the .osh suffix says it (as libosmium reads it)."""
    path = _write(tmp_path / "history.osh", "osh", _history_nodes())
    _cli_refuses(capsys, path, tmp_path, f"history.osh {HISTORY}")


def test_deleted_object_is_never_a_feature(tmp_path, capsys):
    """A file without the header flag (XML history renamed .osm) holding a deleted object
    (visible=false, tags kept as in an osmChange <delete>): refused, never written."""
    path = _write(tmp_path / "deleted.osm", "osh", [_node(1, 2, visible=False), _node(2, 1, lon=26.96)])
    assert 'visible="false"' in path.read_text()
    line = _cli_refuses(capsys, path, tmp_path, "deleted.osm holds a deleted object (node 1 has visible=false)")
    assert CURRENT in line


def test_second_version_of_an_object_is_refused(tmp_path, capsys):
    """Two visible versions of one tagged node in a file that says nothing of history."""
    path = _write(tmp_path / "versions.osm", "osh", [_node(1, 1), _node(1, 2), _node(2, 1, lon=26.96)])
    _cli_refuses(capsys, path, tmp_path, "versions.osm holds node 1 twice (several versions of one object)")


def test_way_given_twice_is_named_a_history_file(tmp_path, capsys):
    """libosmium's own check (a way given twice to the area assembler) is reported as what it
    means, not as a truncated or corrupt file."""
    nodes = [_node(i, tags={}, lon=26.95 + i * 1e-4) for i in (1, 2, 3)]
    building = dict(id=10, changeset=1, timestamp=T0, uid=1, user="u", nodes=[1, 2, 3, 1],
                    tags={"building": "yes"})
    ways = [Way(version=1, **building), Way(version=2, **building)]
    path = _write(tmp_path / "ways.osm", "osh", nodes, ways)
    line = _cli_refuses(capsys, path, tmp_path, f"ways.osm {HISTORY}")
    assert "truncated" not in line


def test_current_xml_extract_still_reads(tmp_path):
    path = _write(tmp_path / "current.osm", "osm", [_node(1), _node(2, lon=26.96)])
    assert main(["--input", str(path), "--output", str(tmp_path / "out"), "--features", "police"]) == 0


# -- 2. change files ---------------------------------------------------------------------------

def _change_nodes():
    return [_node(1, 2), _node(2, 3, visible=False, lon=26.96)]  # <modify> and <delete>


@pytest.mark.parametrize("name", ["diff.osc.gz", "diff.osc", "renamed-diff.osm.gz", "renamed-diff.osm"])
def test_change_file_is_refused(name, tmp_path, capsys):
    """Told by content (the XML root <osmChange>), plain or gzip, also under an .osm name."""
    fmt = "osc.gz" if name.endswith(".gz") else "osc"
    path = _write(tmp_path / name, fmt, _change_nodes())
    line = _cli_refuses(capsys, path, tmp_path, f"{name} {CHANGE}")
    assert "give an extract" in line


def test_serve_refuses_a_change_file(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path / "diff.osc.gz", "osc.gz", _change_nodes())
    monkeypatch.setattr(web, "_bind", lambda *_: (_ for _ in ()).throw(AssertionError("listening")))
    _refused(capsys, ["serve", "--input", str(path), "--port", "0"], f"diff.osc.gz {CHANGE}", "osm-features serve")


# -- 3. unsupported blob compression -----------------------------------------------------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        else:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        out.append((number, wire, value))
    return out


def _encode(fields) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _enc_varint(number << 3 | wire)
        out += _enc_varint(value) if wire == 0 else _enc_varint(len(value)) + value
    return bytes(out)


def _zstd_frame(data: bytes) -> bytes:
    """A valid zstd frame of raw (stored) blocks: magic, single-segment header with a 4-byte
    content size, blocks of at most 128 KiB."""
    out = bytearray(struct.pack("<IB", 0xFD2FB528, 0xA0) + struct.pack("<I", len(data)))
    chunks = [data[i:i + 131072] for i in range(0, len(data), 131072)] or [b""]
    for k, chunk in enumerate(chunks):
        last = k == len(chunks) - 1
        out += (int(last) | len(chunk) << 3).to_bytes(3, "little") + chunk
    return bytes(out)


def _recompress(src, dst, method: str):
    """Rewrite every OSMData blob of an uncompressed PBF with lzma (Blob field 4) or zstd (7)."""
    data, i, out = src.read_bytes(), 0, bytearray()
    while i < len(data):
        (size,) = struct.unpack(">I", data[i:i + 4])
        header = _fields(data[i + 4:i + 4 + size])
        i += 4 + size
        blob_size = next(v for n, _, v in header if n == 3)
        blob = dict((n, v) for n, _, v in _fields(data[i:i + blob_size]))
        i += blob_size
        if next(v for n, _, v in header if n == 1) == b"OSMData":
            raw = blob[1]
            packed = (4, lzma.compress(raw, format=lzma.FORMAT_XZ)) if method == "lzma" else (7, _zstd_frame(raw))
            new_blob = _encode([(2, 0, len(raw)), (packed[0], 2, packed[1])])
        else:
            new_blob = _encode([(1, 2, blob[1]), (2, 0, len(blob[1]))])
        new_header = _encode([(n, w, len(new_blob) if n == 3 else v) for n, w, v in header])
        out += struct.pack(">I", len(new_header)) + new_header + new_blob
    dst.write_bytes(bytes(out))
    return dst


@pytest.mark.parametrize("method", ["lzma", "zstd"])
def test_unsupported_blob_compression_says_so(method, tmp_path, capsys):
    raw = _write(tmp_path / "raw.osm.pbf", "pbf,pbf_compression=none", [_node(1), _node(2, lon=26.96)])
    path = _recompress(raw, tmp_path / f"{method}.osm.pbf", method)
    line = _cli_refuses(capsys, path, tmp_path, f"{method}.osm.pbf uses {method} blob compression")
    assert "re-encode with zlib" in line and "pbf_compression=zlib" in line
    assert "truncated" not in line


def test_zstd_frame_is_real_zstd():
    """The hand-made frame above is what the zstd tool decodes (when the tool is installed)."""
    import shutil
    import subprocess

    if not shutil.which("zstd"):
        pytest.skip("zstd tool not installed")
    data = bytes(range(256)) * 700
    got = subprocess.run(["zstd", "-d", "-c"], input=_zstd_frame(data), capture_output=True, check=True).stdout
    assert got == data


# -- 3. ways whose nodes are all absent from the extract ---------------------------------------

def test_way_with_every_node_missing_is_missing_nodes_not_degenerate(tmp_path):
    present = [_node(i, tags={}, lon=26.95 + i * 1e-4) for i in (1, 2)] + [_node(3, tags={}, lon=26.9501)]
    common = dict(version=1, changeset=1, timestamp=T0, uid=1, user="u")
    ways = [
        Way(id=10, nodes=[101, 102, 103], tags={"highway": "residential"}, **common),  # none present
        Way(id=11, nodes=[101, 102], tags={"highway": "residential"}, **common),       # none present
        Way(id=12, nodes=[1, 3], tags={"highway": "residential"}, **common),           # one point twice
        Way(id=13, nodes=[1, 2], tags={"highway": "residential"}, **common),           # a line
    ]
    path = _write(tmp_path / "missing.osm.pbf", "pbf", present, ways)
    stats = ExtractStats()
    features = list(extract(read_header(path), load_dictionary(), ("road_local",), stats=stats))
    assert [f.osm_id for f in features] == [13]
    assert dict(stats.skipped["road_local"]) == {MISSING_LOCATION: 2, DEGENERATE_LINE: 1}
