"""The command line of every service, generated from its parameter declaration.

Every flag of the dataclass is offered under its own name and the seed's spellings; a
failure is printed as one line with its exit status (:mod:`components.common.errors`: 2 for
what the user can fix, 3 for the environment, 128 + signal when stopped), as is any argument
error (status 2).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Callable

from .contract import run_guarded
from .logs import setup_logging
from .params import ServiceParams


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line and exit status 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a value such as "-5,-5" is a value, not an unknown flag (Python 3.13's rule; 3.11 takes
        # only "-5" and "-.5" for numbers)
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class _HelpFormatter(argparse.HelpFormatter):
    """Declared defaults in the help, except for required inputs and where the text names its own."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or action.default is argparse.SUPPRESS or "default" in text.lower():
            return text
        shown = "None" if action.default in ("", None) else action.default
        return f"{text} (default: {shown})"


def build_parser(prog: str, description: str, params_cls: type[ServiceParams],
                 inputs: list[tuple[tuple[str, ...], str]]) -> argparse.ArgumentParser:
    """``inputs``: (flags, help) of the required non-parameter arguments such as --input."""
    parser = OneLineParser(prog=prog, description=description,
                           formatter_class=_HelpFormatter)
    for flags, help_text in inputs:
        parser.add_argument(*flags, dest=flags[0].lstrip("-").replace("-", "_"), required=True, help=help_text)
    for spec in params_cls.specs():
        flags = [f"--{spec.name}"] + [f for f in spec.flags if f != f"--{spec.name}"]
        default = ",".join(map(str, spec.default)) if isinstance(spec.default, tuple) else spec.default
        help_text = spec.doc + (f" [choices: {', '.join(map(str, spec.choices))}]" if spec.choices else "")
        parser.add_argument(*flags, dest=spec.name, default=default, help=help_text,
                            metavar=spec.name.upper())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def run_cli(prog: str, description: str, params_cls: type[ServiceParams],
            inputs: list[tuple[tuple[str, ...], str]], run: Callable, argv: list[str] | None = None) -> int:
    """Parse, validate, run under the failure contract; returns the exit status."""
    parser = build_parser(prog, description, params_cls, inputs)
    args = vars(parser.parse_args(argv))
    setup_logging(logging.DEBUG if args.pop("verbose") else logging.INFO)
    input_names = [flags[0].lstrip("-").replace("-", "_") for flags, _ in inputs]

    def body():
        params = params_cls.from_strings({k: v for k, v in args.items() if k not in input_names})
        return run(*(args[n] for n in input_names), params)

    status, result = run_guarded(prog, body)
    if status:
        return status
    for name, value in vars(result).items() if hasattr(result, "__dict__") else []:
        if isinstance(value, str):
            print(f"{name}: {value}")
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            for item in value:  # a product of several files (monthlycomposite's 12 composites)
                print(f"{name}: {item}")
    return 0
