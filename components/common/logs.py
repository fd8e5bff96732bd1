"""Logging and progress. Modules log through ``logging.getLogger(__name__)``; only entry points
(CLI, component) call :func:`setup_logging`. Steps are logged when they start and when they end,
with their duration, so pod logs show progress from the first second."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import warnings

from .redaction import RedactingFilter

log = logging.getLogger(__name__)


def setup_logging(level: int = logging.INFO) -> None:
    """Our handler on the root logger, unless the process already has one: under KFP's executor
    the root logger already prints to the pod log, and a second handler would print every line
    twice."""
    root = logging.getLogger()
    root.setLevel(level)
    logging.getLogger("rasterio").setLevel(logging.WARNING)
    console = [h for h in root.handlers if _prints_to_console(h)]
    if not console:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        console = [handler]
    for handler in console:  # whichever library logs a URL with a password in it (httpx logs each request's)
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    warnings.showwarning = _warning_as_log_line


def _warning_as_log_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (NumPy's overflow, rasterio's NotGeoreferencedWarning) as one log line,
    not the two lines of source that Python prints beside a service's own lines."""
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, " ".join(str(message).split()))


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
    """Progress of ``total`` work items. On a terminal a tqdm bar with the elapsed time and the
    estimated time left, redrawn at every 1 %; otherwise (KFP pod logs, files) at most one log
    line per 10 %, in the format of every other log line, with the same estimate."""

    def __init__(self, total: int, label: str, logger: logging.Logger = log, *, stream=None):
        self.total, self.label, self.done = max(total, 1), label, 0
        stream = sys.stderr if stream is None else stream
        self._log = logger
        self._last_decile = 0
        self._t0 = time.perf_counter()
        self._bar = None
        if _is_tty(stream):
            from tqdm import tqdm

            # redraw every 1 % of the items, however fast they come (no time throttle)
            self._bar = tqdm(total=self.total, desc=label, file=stream, mininterval=0,
                             miniters=max(1, math.ceil(self.total / 100)), leave=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(min(n, self.total - self._bar.n))
            if self.done >= self.total:
                self._bar.close()
            return
        decile = int(min(self.done / self.total, 1.0) * 10)
        if decile > self._last_decile:
            self._last_decile = decile
            elapsed = time.perf_counter() - self._t0
            left = elapsed * (self.total - min(self.done, self.total)) / self.done
            self._log.info("%s %3d%% (%d/%d), %s elapsed, ETA %s", self.label, decile * 10, self.done,
                           self.total, _interval(elapsed), _interval(left))


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _interval(seconds: float) -> str:
    """mm:ss or h:mm:ss, as the bar writes it."""
    from tqdm import tqdm

    return tqdm.format_interval(seconds)
