"""kfp.local's indenting print is not thread-safe; local runs put the original back."""

import builtins
import threading

from kfp.local import logging_utils

from pipelines.local_print import print_restored


def _interleaved_tasks():
    """Two tasks as kfp's orchestrator threads run them: A enters, B enters, A leaves, B leaves."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def task_a():
        with logging_utils.indented_print():
            a_in.set()
            b_in.wait()
        a_out.set()

    def task_b():
        a_in.wait()
        with logging_utils.indented_print():  # saves A's indenting print as "the original"
            b_in.set()
            a_out.wait()

    threads = [threading.Thread(target=task_a), threading.Thread(target=task_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_interleaved_kfp_tasks_leave_an_indenting_print_unless_restored():
    original = builtins.print
    try:
        _interleaved_tasks()
        leaked = builtins.print
    finally:
        builtins.print = original
    assert leaked is not original and leaked.__name__ == "indented_print_function"  # the upstream race
    with print_restored():
        _interleaved_tasks()
    assert builtins.print is original
