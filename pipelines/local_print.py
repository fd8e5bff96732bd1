"""kfp.local runs that leave ``builtins.print`` as they found it.

kfp's local orchestrator runs independent tasks in threads, and each task swaps
``builtins.print`` for an indenting one and back (``kfp.local.logging_utils.indented_print``).
Interleaved, a thread can "restore" another thread's indenting print, which then stays installed
for the rest of the process: later output is indented, and Numba, when first imported after
that, fails to type the builtin ``print`` (S1 filters then fail). The print in place before the
run is put back after it.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def print_restored() -> Iterator[None]:
    original = builtins.print
    try:
        yield
    finally:
        builtins.print = original
