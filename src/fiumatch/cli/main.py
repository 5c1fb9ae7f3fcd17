"""The ``fiumatch`` command: a thin shell over the library.

Each sub-command lives in its own module under ``fiumatch.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed namespace and returning an exit code. Exit codes scripts can rely on:

* 0 success
* 1 the command ran but found a problem in its input (for example rejected records)
* 2 usage error (bad flags, missing files)
* 3 a remote node refused or could not be reached
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules, in the order their help is listed.
COMMAND_MODULES: tuple[str, ...] = (
    "fiumatch.cli.demo",
    "fiumatch.cli.synth",
    "fiumatch.cli.ingest",
    "fiumatch.cli.node",
    "fiumatch.cli.peers",
    "fiumatch.cli.agreements",
    "fiumatch.cli.query",
    "fiumatch.cli.disclosure",
    "fiumatch.cli.epoch",
    "fiumatch.cli.audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fiumatch",
        description="Privacy-preserving matching between Financial Intelligence Units.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
