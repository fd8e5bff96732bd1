"""A disk that fills up, a quota, a file-size limit: the run ends with exit status 3 and one line
naming the file it was writing, and leaves nothing behind.

The real failures come from a file-size limit (``RLIMIT_FSIZE``, what ``ulimit -f`` sets) in a
child process: its writes fail with EFBIG as they would with ENOSPC on a full disk, through
GDAL as well as through Python. ENOSPC itself comes from a write function that raises it, and
GDAL's own words for a full disk are checked on the exceptions rasterio raises with them."""

from __future__ import annotations

import errno
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio.errors

from components.common import outputs
from components.common.errors import EnvironmentFailure, ServiceError
from tests.fixtures.s2_products import write_s2_product

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    return write_s2_product(tmp_path_factory.mktemp("s2"), size_10m=120)


def _limited(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the default action kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


@pytest.fixture(scope="module")
def grd(tmp_path_factory):
    from tests.conftest import sample
    from tests.fixtures import s1_products

    source = next(sample(s1_products.GRD_SAMPLE).glob("*.SAFE"))
    return s1_products.write_grd(tmp_path_factory.mktemp("grd"), source=source, pols=("VV",))


@pytest.mark.parametrize("module, prog, source", [
    ("components.s2_preprocess.cli", "S2-preprocess", "product"),
    ("components.s1_preprocess.cli", "S1-GRD-preprocess", "grd"),
], ids=["S2-preprocess", "S1-GRD-preprocess"])
def test_file_size_limit_while_writing_is_exit_3(module, prog, source, tmp_path, request):
    """A 200 kB limit: GDAL fails on the first raster the run writes in its work folder (the S2
    assembled bands, 2 MB in 512 px blocks; the S1 calibrated radar image, 0.8 MB)."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", module, "--input", str(request.getfixturevalue(source)), "--outdir", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(200_000))
    lines = _error_lines(proc.stderr)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    assert "file-size limit" in lines[0] and ".tif" in lines[0], lines[0]
    assert not out.exists(), sorted(map(str, out.rglob("*")))


def test_no_space_while_writing_the_quicklook_is_exit_3(product, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from components.s2_preprocess.cli import main

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "out"
    status = main(["--input", str(product), "--outdir", str(out)])
    err = capsys.readouterr().err
    assert status == 3, err
    lines = _error_lines(err)
    assert len(lines) == 1 and "no space left on the device" in lines[0], err
    assert "_quicklook.png" in lines[0], lines[0]
    assert not out.exists()


def test_no_space_in_an_existing_folder_keeps_it_as_it_was(product, tmp_path, capsys, monkeypatch):
    from components.s2_preprocess.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.json, "dumps", full)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["--input", str(product), "--outdir", str(out)]) == 3
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and ".json" in lines[0] and "no space left" in lines[0], lines
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# GDAL's words for the machine's failures, as rasterio raises them
GDAL_MESSAGES = [
    ("/out/x.tif: Free disk space available is 5804150784 bytes, whereas 115815219200 are at least necessary. "
     "You can disable this check by defining the CHECK_DISK_FREE_SPACE configuration option to FALSE.",
     "not enough free space"),
    ("_tiffWriteProc:/out/x.tif: No space left on device", "no space left on the device"),
    ("/out/x.tif: Disk quota exceeded", "disk quota exceeded"),
    ("_tiffWriteProc: File too large", "file-size limit"),
]


@pytest.mark.parametrize("message, reason", GDAL_MESSAGES, ids=[m[1] for m in GDAL_MESSAGES])
def test_gdal_messages_of_a_full_disk_are_environment_failures(message, reason, tmp_path):
    for exc in (rasterio.errors.RasterioIOError(message), rasterio._err.CPLE_AppDefinedError(1, 1, message)):
        failure = outputs.write_failure(exc, tmp_path / "x.tif")
        assert isinstance(failure, EnvironmentFailure), (exc, failure)
        assert reason in failure.one_line() and "x.tif" in failure.one_line()


def test_a_bare_gdal_write_error_is_diagnosed_from_the_filesystem(tmp_path, monkeypatch):
    """GDAL says only "Write failed" when its writer thread met ENOSPC: the free space tells."""
    import collections

    cause = rasterio._err.CPLE_AppDefinedError(1, 1, "TIFFAppendToStrip:Write error at scanline 0")
    exc = rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")
    exc.__cause__ = cause
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9 - 4096, 4096))
    failure = outputs.write_failure(exc, tmp_path / "x.tif")
    assert isinstance(failure, EnvironmentFailure) and "no space left on the device" in failure.one_line()


def test_other_errors_are_not_taken_for_write_failures(tmp_path):
    """A reader's error (a corrupt input) keeps its own handling: not a write failure."""
    assert outputs.write_failure(rasterio.errors.RasterioIOError("x.jp2: not recognized as a supported file format"),
                                 tmp_path / "y.tif") is None
    assert outputs.write_failure(ValueError("bad"), tmp_path / "y.tif") is None
    refused = outputs.write_failure(PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "y.tif")),
                                    tmp_path / "y.tif")
    assert type(refused) is ServiceError and "Permission denied" in refused.one_line()
