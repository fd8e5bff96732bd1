"""The calling thread's alternate signal stack, kept across calls into native code that replaces
it.

OpenVINO's CPU plugin installs a signal stack of its own on the thread that compiles or runs a
model and, when its objects go, puts back the one it found then. Two models freed in the order
they were made (the auto engine's probe makes several) leave the thread on a stack already freed;
Python runs its signal handlers on the alternate stack, so the next SIGTERM (how Kubernetes stops
a pod) or Ctrl-C kills the process with SIGSEGV (exit 139) instead of the contract's clean stop
(exit 128 + signal, nothing left behind). :func:`kept` puts the caller's stack back after each
such call, so every model finds, and later restores, the process's own. Linux only (the layout of
``stack_t`` is the platform's); elsewhere a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from typing import Iterator


class _StackT(ctypes.Structure):  # Linux: void *ss_sp; int ss_flags; size_t ss_size
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def current() -> tuple[int, int, int] | None:
    """(address, flags, size) of the calling thread's alternate signal stack; None off Linux."""
    if _LIBC is None:
        return None
    ss = _StackT()
    if _LIBC.sigaltstack(None, ctypes.byref(ss)) != 0:
        return None
    return ss.ss_sp or 0, ss.ss_flags, ss.ss_size


def _set(stack: tuple[int, int, int]) -> None:
    sp, flags, size = stack
    ss = _StackT(sp or None, flags & ~1, size)  # SS_ONSTACK (1) is a state, not a request
    _LIBC.sigaltstack(ctypes.byref(ss), None)


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Within the block native code may change the thread's alternate signal stack; at its end
    the one from before is back."""
    before = current()
    try:
        yield
    finally:
        if before is not None and current() != before:
            _set(before)
