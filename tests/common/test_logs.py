"""Log lines print once, whoever configured logging first."""

from __future__ import annotations

import re
import subprocess
import sys


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout + proc.stderr


def test_one_line_per_record_under_the_kfp_executor():
    # KFP's executor_main calls logging.basicConfig(stream=sys.stdout) before our component body
    out = _run("import logging, sys; logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
               "from components.common.logs import setup_logging; setup_logging()\n"
               "logging.getLogger('components.x').info('step marker')")
    assert out.count("step marker") == 1, out


def test_our_handler_when_nothing_is_configured():
    out = _run("import logging\nfrom components.common.logs import setup_logging\n"
               "setup_logging(); setup_logging()\nlogging.getLogger('components.x').info('step marker')")
    assert out.count("step marker") == 1, out
    assert " INFO " in out


def test_level_set_even_when_a_handler_exists():
    out = _run("import logging, sys; logging.basicConfig(stream=sys.stdout, level=logging.WARNING)\n"
               "from components.common.logs import setup_logging; setup_logging(logging.INFO)\n"
               "logging.getLogger('components.x').info('step marker')")
    assert "step marker" in out



def test_a_password_logged_by_any_library_is_not_printed():
    # httpx logs every request's URL at INFO; under the KFP executor the root handler is KFP's
    for setup in ("", "import logging, sys; logging.basicConfig(stream=sys.stdout)\n"):
        out = _run(setup + "import logging\nfrom components.common.logs import setup_logging; setup_logging()\n"
                   "logging.getLogger('httpx').info('HTTP Request: GET %s', 'https://ann:s3cr3t-pw@data.example/x.nc')")
        assert "s3cr3t-pw" not in out and "ann" not in out, out
        assert "https://***@data.example/x.nc" in out, out


def test_a_python_warning_is_one_log_line():
    out = _run("import warnings\nfrom components.common.logs import setup_logging; setup_logging()\n"
               "warnings.warn('overflow encountered\\nin cast', RuntimeWarning)")
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].endswith(" WARNING RuntimeWarning: overflow encountered in cast"), out

_PROGRESS = ("import logging\nfrom components.common.logs import Progress, setup_logging\nsetup_logging()\n"
             "p = Progress({total}, 'tiles', logging.getLogger('components.x'))\n"
             "for _ in range({total}): p.advance()\n")


def test_progress_in_logs_at_most_one_line_per_10_percent_with_an_eta():
    out = _run(_PROGRESS.format(total=1000))  # stderr is a pipe, as in a pod
    lines = [line for line in out.splitlines() if "tiles" in line]
    assert [line.split("tiles")[1].split("%")[0].strip() for line in lines] == [str(10 * i) for i in range(1, 11)]
    # the log format of every other line: time, level, message; then elapsed time and ETA
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d INFO    tiles +\d+% \(\d+/1000\), \d\d:\d\d elapsed, ETA \d\d:\d\d",
                            line) for line in lines), lines
    assert lines[0].split("(")[1].startswith("100/1000")
    assert "\r" not in out


def test_progress_on_a_terminal_is_a_bar_redrawn_every_percent_with_an_eta():
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    # a terminal of 24 x 100 characters (a fresh pty has no size, and tqdm fits the bar to it)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", _PROGRESS.format(total=400)], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    frames = b"".join(chunks).decode().replace("\r\n", "\r").split("\r")
    percents = [int(m.group(1)) for f in frames if (m := re.match(r"tiles: +(\d+)%", f))]
    assert percents[-1] == 100 and sorted(set(percents)) == list(range(101)), percents
    assert len(percents) <= 102  # one redraw per 1 %, not one per item
    # elapsed<remaining: the ETA
    assert re.search(r"\| 200/400 \[\d\d:\d\d<\d\d:\d\d", "\r".join(frames))
