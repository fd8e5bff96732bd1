"""The failure contract of the command lines, case by case: every failure ends in exactly one
line ``<prog>: error: <reason>`` on stderr (no traceback), the exit status of its class (2 the
user can fix, 3 the machine failed), and no output left behind: a folder the run created is
removed again, a folder that was there keeps exactly what it held.

Commands run in this process (their ``main`` returns the status as the installed command
exits with it); the S2 and S1 products are the small synthetic ones of ``tests/fixtures``."""

from __future__ import annotations

import collections
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.s2_products import write_s2_product

PROC_DIR = "/proc/eo-kfp-out"  # /proc is a folder root may "write" (access()), yet mkdir fails
SYS_DIR = "/sys/eo-kfp-out"  # sysfs refuses new folders even to root
KEEP = "keep.txt"


def _main(command: str):
    """The function an installed command runs, by command name."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == command]
    return script.load()


@dataclass
class Case:
    id: str
    command: str
    argv: list[str]
    status: int
    fragment: str
    prog: str = ""
    setup: str = ""  # "small_disk" | "existing_out" | "" (see _apply)
    needs: set = field(default_factory=set)  # fixtures beyond the S2 product: "s1"

    def __post_init__(self):
        self.prog = self.prog or self.command


S2 = ["--input", "{s2}"]
CASES = [
    # --- S2-preprocess: output folders
    Case("s2 outdir under /proc", "S2-preprocess", S2 + ["--outdir", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    Case("s2 outdir under /sys", "S2-preprocess", S2 + ["--outdir", SYS_DIR], 2,
         f"cannot create output folder {SYS_DIR}"),
    Case("s2 outdir is a file", "S2-preprocess", S2 + ["--outdir", "{file}"], 2, "is not a folder"),
    Case("s2 outdir below a file", "S2-preprocess", S2 + ["--outdir", "{file}/out"], 2, "a_file"),
    Case("s2 outdir not writable", "S2-preprocess", S2 + ["--outdir", "{unwritable}"], 2, "not writable"),
    # --- S2-preprocess: output size
    Case("s2 resolution far too fine", "S2-preprocess", S2 + ["--resolution", "0.001", "--outdir", "{out}"], 2,
         "--resolution 0.001 gives an output grid of"),
    Case("s2 output larger than the free space", "S2-preprocess", S2 + ["--resolution", "1", "--outdir", "{out}"],
         3, "not enough free space", setup="small_disk"),
    Case("s2 output larger than the free space, folder kept", "S2-preprocess", S2 + ["--outdir", "{out}"],
         3, "--resolution 10", setup="small_disk existing_out"),
    # --- S2-preprocess: parameters and inputs
    Case("s2 unknown band", "S2-preprocess", S2 + ["--bands", "B13", "--outdir", "{out}"], 2, "parameter 'bands'"),
    Case("s2 missing input", "S2-preprocess", ["--input", "{tmp}/absent.SAFE", "--outdir", "{out}"], 2,
         "input not found"),
    Case("s2 min_valid_percent out of range", "S2-preprocess", S2 + ["--min_valid_percent", "101", "--outdir", "{out}"],
         2, "parameter 'min_valid_percent'"),
    Case("s2 fewer valid pixels than asked", "S2-preprocess",
         S2 + ["--min_valid_percent", "99.9", "--outdir", "{out}"], 2, "below --min_valid_percent 99.9"),
    Case("s2 fewer valid pixels than asked, folder kept", "S2-preprocess",
         S2 + ["--min_valid_percent", "99.9", "--outdir", "{out}"], 2, "valid", setup="existing_out"),
    Case("s2 unknown flag", "S2-preprocess", S2 + ["--colour", "red", "--outdir", "{out}"], 2,
         "unrecognized arguments"),
    # --- S1-GRD-preprocess / S1-SLC-preprocess
    Case("s1 outdir under /proc", "S1-GRD-preprocess", ["--input", "{grd}", "--outdir", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}", needs={"s1"}),
    Case("s1 resolution far too fine", "S1-GRD-preprocess",
         ["--input", "{grd}", "--resolution", "0.001", "--outdir", "{out}"], 2, "resolution", needs={"s1"}),
    Case("s1 output larger than the free space", "S1-GRD-preprocess",
         ["--input", "{grd}", "--outdir", "{out}"], 3, "not enough free space", setup="small_disk", needs={"s1"}),
    Case("s1 fewer valid pixels than asked", "S1-GRD-preprocess",
         ["--input", "{grd}", "--min_valid_percent", "100", "--outdir", "{out}"], 2, "below --min_valid_percent 100",
         needs={"s1"}),
    Case("slc outdir under /proc", "S1-SLC-preprocess", ["--input", "{tmp}/absent.SAFE", "--outdir", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    # --- the other services: output folders
    Case("s1-cd outdir under /proc", "S1-CD", ["--input1", "{tmp}/a.SAFE", "--input2", "{tmp}/b.SAFE",
                                               "--outdir", PROC_DIR], 2, f"cannot create output folder {PROC_DIR}"),
    Case("s2-cd outdir under /proc", "S2-CD", ["--input1", "{s2}", "--input2", "{s2}", "--output_path", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    Case("osm outdir under /proc", "osm-features", ["--input", "{tmp}/absent.osm.pbf", "--features", "airport",
                                                    "--AoI", "POLYGON((9.5 47.1,9.6 47.1,9.6 47.2,9.5 47.1))",
                                                    "--output", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    Case("monthlycomposite outdir under /proc", "monthlycomposite", ["--input_dir", "{tmp}", "--output_dir", PROC_DIR],
         2, f"cannot create output folder {PROC_DIR}"),
    Case("timesen2crop outdir under /sys", "timesen2crop", ["--input_dir", "{tmp}", "--output_dir", SYS_DIR], 2,
         f"cannot create output folder {SYS_DIR}"),
    Case("train_lstm outdir under /proc", "train_lstm", ["--input_dir", "{tmp}", "--output_dir", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    Case("tile_classifier outdir is a file", "tile_classifier",
         ["--input_dir", "{tmp}", "--mc_dir", "{tmp}", "--output_dir", "{file}"], 2, "is not a folder"),
    Case("tile_classifier outdir under /proc", "tile_classifier",
         ["--input_dir", "{tmp}", "--mc_dir", "{tmp}", "--output_dir", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    Case("patch classifier outdir under /proc", "s2-patch-classifier",
         ["--input", "{tmp}", "--action", "extract_data", "--outdir", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}"),
    Case("energy stage under /proc", "energy-datasets", ["stage", "emodnet-wind-farms", "--to", PROC_DIR], 2,
         f"cannot create output folder {PROC_DIR}", prog="energy-datasets stage"),
    Case("energy unknown sub-command", "energy-datasets", ["fetch"], 2, "unknown sub-command"),
    Case("aqgan-predict output under /proc", "aqgan-predict",
         ["{tmp}/absent.nc", "--model-file", "{tmp}/absent.pt", "--output", PROC_DIR + "/o.nc"], 2,
         f"cannot create output folder {PROC_DIR}"),
    # --- an empty output folder or input (an unset pipeline parameter): refused, never the current folder
    Case("s2 outdir empty", "S2-preprocess", S2 + ["--outdir", ""], 2, "output folder not given (an empty path)"),
    Case("s2 input empty", "S2-preprocess", ["--input", " ", "--outdir", "{out}"], 2, "input not given (an empty path)"),
    Case("s1-cd outdir empty", "S1-CD", ["--input1", "{tmp}/a.SAFE", "--input2", "{tmp}/b.SAFE", "--outdir", ""], 2,
         "output folder not given"),
    Case("osm output empty", "osm-features", ["--input", "{tmp}/absent.osm.pbf", "--features", "airport", "--AoI",
                                              "POLYGON((9.5 47.1,9.6 47.1,9.6 47.2,9.5 47.1))", "--output", ""], 2,
         "output folder not given"),
    Case("monthlycomposite outdir empty", "monthlycomposite", ["--input_dir", "{tmp}", "--output_dir", ""], 2,
         "output folder not given"),
    Case("timesen2crop outdir empty", "timesen2crop", ["--input_dir", "{tmp}", "--output_dir", ""], 2,
         "output folder not given"),
    Case("train_lstm outdir empty", "train_lstm", ["--input_dir", "{tmp}", "--output_dir", ""], 2,
         "output folder not given"),
    Case("tile_classifier outdir empty", "tile_classifier", ["--input_dir", "{tmp}", "--mc_dir", "{tmp}",
                                                             "--output_dir", ""], 2, "output folder not given"),
    Case("patch classifier outdir empty", "s2-patch-classifier", ["--input", "{tmp}", "--action", "extract_data",
                                                                  "--outdir", ""], 2, "output folder not given"),
    Case("energy stage to nowhere", "energy-datasets", ["stage", "emodnet-wind-farms", "--to", ""], 2,
         "output folder not given", prog="energy-datasets stage"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    s2 = write_s2_product(root / "s2", size_10m=60)
    a_file = root / "a_file"
    a_file.write_text("x")
    return {"s2": s2, "file": a_file, "root": root}


@pytest.fixture(scope="module")
def grd(tmp_path_factory):
    from tests.conftest import sample
    from tests.fixtures import s1_products

    source = next(sample(s1_products.GRD_SAMPLE).glob("*.SAFE"))
    return s1_products.write_grd(tmp_path_factory.mktemp("grd"), source=source, pols=("VV",))


def _unwritable(tmp: Path) -> str:
    """A folder that exists but takes no new file: for root (who writes anywhere the permissions
    say no) sysfs, else a folder without write permission."""
    if os.geteuid() == 0:
        return "/sys"
    folder = tmp / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_failure_is_one_line_with_its_status(case: Case, inputs, tmp_path, capsys, monkeypatch, request):
    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    values = {"s2": inputs["s2"], "file": inputs["file"], "tmp": tmp_path, "out": tmp_path / "out"}
    if "s1" in case.needs:
        values["grd"] = request.getfixturevalue("grd")
    if "{unwritable}" in " ".join(case.argv):
        values["unwritable"] = _unwritable(tmp_path)
    out = tmp_path / "out"
    if "existing_out" in case.setup:
        out.mkdir()
        (out / KEEP).write_text("from an earlier run")
    if "small_disk" in case.setup:
        usage = collections.namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 6, 10 ** 6 - 50_000, 50_000))
    before = _snapshot(tmp_path)
    argv = [a.format(**{k: str(v) for k, v in values.items()}) for a in case.argv]

    try:
        status = _main(case.command)(argv)
    except SystemExit as e:  # argument errors: argparse exits
        status = e.code
    err = capsys.readouterr().err

    assert status == case.status, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{case.prog}: error: "), err
    assert err.rstrip().splitlines()[-1] == lines[0], "the error line is the last line"
    assert case.fragment in lines[0], lines[0]
    # nothing left behind: the folders the run may have created are gone, an existing one is as it was
    assert _snapshot(tmp_path) == before, sorted(_snapshot(tmp_path) - before)
    assert not any(p.name.startswith(".") for p in inputs["root"].rglob("*") if p.is_dir())


@pytest.fixture(scope="module")
def offshore(tmp_path_factory):
    """A cloud-free tile of open sea (170 km off the Irish west coast): --landseamask Sea removes
    every pixel."""
    return write_s2_product(tmp_path_factory.mktemp("sea"), size_10m=60, ulx=300000, uly=5900040,
                            nodata_corner=False, clouds=False)


def test_empty_product_is_written_with_a_warning(offshore, tmp_path, capsys):
    status = _main("S2-preprocess")(["--input", str(offshore), "--landseamask", "Sea", "--outdir",
                                     str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 0, err
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "no valid pixel" in warnings[0], err
    assert len(list((tmp_path / "out").glob("*_10m.tif"))) == 1


def test_empty_product_fails_when_a_valid_share_is_required(offshore, tmp_path, capsys):
    status = _main("S2-preprocess")(["--input", str(offshore), "--landseamask", "Sea", "--min_valid_percent",
                                     "0.01", "--outdir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "0 % of the pixels are valid, below --min_valid_percent 0.01" in lines[0], err
    assert not (tmp_path / "out").exists()
