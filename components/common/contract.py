"""The failure contract of every front end: a failure is one line on stderr and an exit status
(see :mod:`components.common.errors`); SIGTERM and SIGINT are failures like any other.

    with guarded("S2-preprocess"):      # raises SystemExit(status) after printing the line
        run(...)

    return exit_status("S2-preprocess", lambda: run(...))   # 0, or the status after the line

The signals raise :class:`Interrupted` in the main thread, so the ``finally`` blocks and context
managers on the way (temporary folders, partial files, half-published prefixes) clean up before
the process ends.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, TypeVar

from .errors import _ENVIRONMENT_ERRNOS, EnvironmentFailure, Interrupted, ServiceError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
T = TypeVar("T")


class _Stop:
    """The first stop signal received, and how deep the code is in sections that must not be
    interrupted half-way (a thread being started and registered, a file being renamed)."""

    signum: int | None = None
    depth = 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` (main thread only: Python
    delivers signals there), at once or, inside :func:`uninterrupted`, at its end. A stop that
    was swallowed on the way (an exception in a finaliser is only printed) is raised again at
    the next :func:`checkpoint`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        for s in STOP_SIGNALS:  # a second signal must not interrupt the cleanup of the first
            signal.signal(s, signal.SIG_IGN)
        _Stop.signum = signum
        if _Stop.depth == 0:
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
        checkpoint()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _Stop.signum, _Stop.depth = None, 0


def checkpoint() -> None:
    """Raise :class:`Interrupted` if a stop signal came and was not acted upon yet."""
    if _Stop.signum is not None and _Stop.depth == 0:
        raise Interrupted(_Stop.signum)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A stop signal within the block takes effect at its end, not half-way through (e.g. in
    ``ThreadPoolExecutor.submit`` between starting a worker and registering it, which would
    leave a worker the executor does not wait for)."""
    _Stop.depth += 1
    try:
        yield
    finally:
        _Stop.depth -= 1
    checkpoint()


def failure_of(exc: BaseException) -> ServiceError | Interrupted | None:
    """The contract's failure for ``exc``, or None for a defect (which keeps its traceback)."""
    if isinstance(exc, (ServiceError, Interrupted)):
        return exc
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return EnvironmentFailure(f"{_ENVIRONMENT_ERRNOS[exc.errno]}{where}")
    if isinstance(exc, MemoryError):
        return EnvironmentFailure("out of memory: give the step more memory or process a smaller area")
    return None


@contextlib.contextmanager
def guarded(prog: str) -> Iterator[None]:
    """Run the block under the contract; a failure prints ``<prog>: error: <line>`` and raises
    ``SystemExit`` with its status."""
    try:
        with stop_on_signals():
            yield
    except BaseException as exc:  # noqa: BLE001 - sorted below; defects re-raised
        failure = failure_of(exc)
        if failure is None:
            raise
        # Release the locals of the frames the failure went through (open datasets, arrays) now:
        # kept alive by the traceback until interpreter exit, a GDAL dataset may then be freed
        # after GDAL itself, which crashes the process after the line was printed.
        traceback.clear_frames(exc.__traceback__)
        sys.stderr.write(f"{prog}: error: {failure.one_line()}\n")
        sys.stderr.flush()
        raise SystemExit(failure.exit_code) from None


def run_guarded(prog: str, body: Callable[[], T]) -> tuple[int, T | None]:
    """``body()`` under :func:`guarded`: (0, its result), or (the failure's exit status, None)."""
    try:
        with guarded(prog):
            return 0, body()
    except SystemExit as e:
        return int(e.code or 0), None


def exit_status(prog: str, body: Callable[[], object]) -> int:
    """``body()`` under :func:`guarded`; 0 on success, else the failure's exit status."""
    return run_guarded(prog, body)[0]
