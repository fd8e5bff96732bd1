"""Logging and progress. Modules log through ``logging.getLogger(__name__)``; only entry points
(CLI, component) call :func:`setup_logging`. Steps are logged when they start and when they end,
with their duration, so pod logs show progress from the first second."""

from __future__ import annotations

import contextlib
import logging
import sys
import time

log = logging.getLogger(__name__)


def setup_logging(level: int = logging.INFO) -> None:
    """Our handler on the root logger, unless the process already has one: under KFP's executor
    the root logger already prints to the pod log, and a second handler would print every line
    twice."""
    root = logging.getLogger()
    root.setLevel(level)
    logging.getLogger("rasterio").setLevel(logging.WARNING)
    if any(_prints_to_console(h) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (test runners swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _prints_to_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream is not None and (stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
                                   or getattr(stream, "name", None) in ("<stdout>", "<stderr>"))


class Steps:
    """Times named steps; the durations go into run.json."""

    def __init__(self, logger: logging.Logger = log):
        self.timings: dict[str, float] = {}
        self._log = logger
        self._t0 = time.perf_counter()

    @contextlib.contextmanager
    def step(self, name: str):
        self._log.info("%s ...", name)
        t = time.perf_counter()
        yield
        dt = time.perf_counter() - t
        self.timings[name] = round(self.timings.get(name, 0.0) + dt, 3)
        self._log.info("%s done in %.1f s", name, dt)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


class Progress:
    """A bar on a terminal, one timestamped line per 10 % otherwise (KFP pod logs)."""

    def __init__(self, total: int, label: str, logger: logging.Logger = log):
        self.total, self.label, self.done = max(total, 1), label, 0
        self._tty = sys.stderr.isatty()
        self._log = logger
        self._last_decile = -1
        self._t0 = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.done += n
        frac = min(self.done / self.total, 1.0)
        if self._tty:
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac:4.0%} {time.perf_counter() - self._t0:5.1f}s")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
            return
        decile = int(frac * 10)
        if decile != self._last_decile:
            self._last_decile = decile
            self._log.info("%s %3d%% (%d/%d)", self.label, decile * 10, self.done, self.total)
