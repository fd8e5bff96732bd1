"""SIGTERM (how Kubernetes stops a pod) and SIGINT (Ctrl-C) in the middle of a run: the run
stops with exit status 128 + signal and one line "stopped by SIG...", and leaves nothing behind:
no work folder, no assembled raster, no partial product; an output folder it created is removed,
one that was there keeps what it held. Checked on the real command and on the body of the KFP
component, each in its own process, on a product big enough to take a few seconds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fixtures.s2_products import write_s2_product

REPO = Path(__file__).resolve().parents[2]
STARTED = "resample and mask bands ..."
WRITING = "write COG ..."

# the body of the S2-preprocess component with plain stand-ins for KFP's artifacts
COMPONENT_BODY = textwrap.dedent("""
    import json, sys
    from components.s2_preprocess.kfp_runtime import execute

    class Artifact:
        def __init__(self, path):
            self.path, self.metadata = path, {}

        def log_metric(self, key, value):
            self.metadata[key] = value

    product, out = sys.argv[1], sys.argv[2]
    execute(product, "", Artifact(out + "/product"), Artifact(out + "/quicklook"), Artifact(out + "/metrics"),
            {"resolution": 10.0})
""")


@pytest.fixture(scope="module")
def big_product(tmp_path_factory):
    """A 1980 x 1980 px L2A tile: about two seconds of band resampling, half a second of COG."""
    return write_s2_product(tmp_path_factory.mktemp("big"), size_10m=1980, include_60m=False, bands_20m=["SCL"])


def _run_and_stop(cmd: list[str], wait_for: str, signum: int, timeout: float = 120) -> tuple[int, str]:
    """Start ``cmd``, send ``signum`` once a stderr line contains ``wait_for``; (status, stderr)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen, deadline = [], time.monotonic() + timeout
    try:
        for line in proc.stderr:
            seen.append(line)
            if wait_for in line:
                proc.send_signal(signum)
                break
            assert time.monotonic() < deadline, "".join(seen)
        else:
            pytest.fail(f"the run ended before {wait_for!r}:\n{''.join(seen)}")
        rest = proc.stderr.read()
        status = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return status, "".join(seen) + rest


def _command(product: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "components.s2_preprocess.cli", "--input", str(product), "--outdir", str(out)]


def _component(product: Path, out: Path) -> list[str]:
    out.mkdir(exist_ok=True)
    return [sys.executable, "-c", COMPONENT_BODY, str(product), str(out)]


def _check(status: int, err: str, signum: int) -> None:
    name = signal.Signals(signum).name
    assert status == 128 + signum, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert lines == [f"S2-preprocess: error: stopped by {name}"], err
    assert err.rstrip().splitlines()[-1] == lines[0]


@pytest.mark.parametrize("signum, step", [(signal.SIGTERM, STARTED), (signal.SIGTERM, WRITING),
                                          (signal.SIGINT, STARTED)],
                         ids=["SIGTERM while resampling", "SIGTERM while writing the COG", "SIGINT while resampling"])
def test_command_stopped_leaves_no_output_folder(big_product, tmp_path, signum, step):
    out = tmp_path / "out"
    status, err = _run_and_stop(_command(big_product, out), step, signum)
    _check(status, err, signum)
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert not any(p.name.startswith(".s2p-") for p in big_product.parent.rglob("*"))


def test_command_stopped_keeps_an_existing_folder_as_it_was(big_product, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier product")
    status, err = _run_and_stop(_command(big_product, out), STARTED, signal.SIGTERM)
    _check(status, err, signal.SIGTERM)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_component_stopped_leaves_empty_artifacts(big_product, tmp_path, signum):
    out = tmp_path / "artifacts"
    status, err = _run_and_stop(_component(big_product, out), STARTED, signum)
    _check(status, err, signum)
    assert not [str(p) for p in out.rglob("*") if p.is_file()], json.dumps(sorted(map(str, out.rglob("*"))))


def test_a_stop_inside_an_uninterrupted_section_takes_effect_at_its_end():
    import os

    from components.common.contract import stop_on_signals, uninterrupted
    from components.common.errors import Interrupted

    reached = []
    with pytest.raises(Interrupted) as exc, stop_on_signals():
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here, between bytecodes
            reached.append("end of section")
        reached.append("after the section")
    assert reached == ["end of section"] and exc.value.exit_code == 143


def test_a_stop_swallowed_by_a_finaliser_is_raised_at_the_next_checkpoint():
    """Python only prints an exception raised in ``__del__``: the stop must not be lost."""
    import gc
    import os

    from components.common.contract import checkpoint, stop_on_signals
    from components.common.errors import Interrupted

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    with pytest.raises(Interrupted) as exc, stop_on_signals():
        Finaliser()
        gc.collect()
        checkpoint()
    assert exc.value.exit_code == 130
