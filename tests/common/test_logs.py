"""Log lines print once, whoever configured logging first."""

from __future__ import annotations

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
