"""``fiumatch epoch``: rotate OPRF key epochs on command (the new epoch's encoded sets are
precomputed while the old epoch serves; the old one is then retired and its key material
deleted), list epochs, and purge subjects past retention (they leave the next epoch)."""

from __future__ import annotations

from typing import Any

from fiumatch.client._cli import EXIT_OK, EXIT_USAGE, add_connection, print_json, run_api

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "epoch", help="rotate key epochs, list them, purge", description=__doc__
    )
    sub = parser.add_subparsers(dest="epoch_command", metavar="ACTION")
    p = sub.add_parser("rotate", help="rotate now (one peer or all)")
    p.add_argument("--peer")
    add_connection(p)
    p.set_defaults(func=run_api(lambda a, c: _out(c.rotate(a.peer))))
    p = sub.add_parser("list", help="list epochs per peer")
    add_connection(p)
    p.set_defaults(func=run_api(lambda a, c: _out(c.epochs())))
    p = sub.add_parser("purge", help="delete subjects past retention (audited)")
    p.add_argument("--today", help="YYYY-MM-DD (default: today)")
    add_connection(p)
    p.set_defaults(func=run_api(lambda a, c: _out(c.purge(a.today))))
    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


def _out(data: Any) -> int:
    print_json(data)
    return EXIT_OK
