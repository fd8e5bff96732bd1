"""What the benchmarks share: their cache folder, and running one command as a fresh child process
to read its own cost: wall seconds, CPU seconds and peak resident memory.

The peak is read by a small launcher process (this file run as a script) that starts the command
and waits for it with ``os.wait4``. Read directly by the benchmark, a child's ``ru_maxrss`` would
start at the benchmark's own resident size: Linux carries the parent's high-water mark across
fork and exec, so a ``python -c pass`` started from a 2 GB process reports 2 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Generated benchmark inputs, kept between runs: ``$EO_BENCH_CACHE`` or ``~/.cache/eo-kfp-bench``."""
    return Path(os.environ.get("EO_BENCH_CACHE", Path.home() / ".cache" / "eo-kfp-bench"))


def child_env(**extra: str) -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def measure(cmd: list[str], *, log: Path | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = REPO) -> dict:
    """{"seconds", "cpu_s", "peak_mib", "rc", "tail"}; output goes to ``log`` (else inherited)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as usage_file:
        fh = open(log, "wb") if log else None
        try:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, usage_file.name, *cmd], stdout=fh,
                           stderr=subprocess.STDOUT if fh else None, env=env or child_env(), cwd=cwd, check=False)
            wall = time.perf_counter() - t0
        finally:
            if fh:
                fh.close()
        usage = json.loads(Path(usage_file.name).read_text())
    tail = log.read_text(errors="replace")[-2000:] if log else ""
    return {"seconds": round(wall, 2), **usage, "tail": tail}


def _launch(usage_path: str, cmd: list[str]) -> int:
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    Path(usage_path).write_text(json.dumps({
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is KiB on Linux
        "rc": rc}))
    return rc


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1], sys.argv[2:]))
