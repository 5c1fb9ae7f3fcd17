"""``fiumatch disclosure``: from a hit to a disclosure. ``request`` sends the hit token (only) to
the owner with purpose and case reference; ``list`` shows requests; ``decide`` lets a supervisor
at the owner approve or refuse with a reason; ``status`` fetches the owner's decision.
Onward dissemination always needs the owner's prior consent; every request records it."""

from __future__ import annotations

from typing import Any

from fiumatch.client._cli import EXIT_OK, EXIT_USAGE, add_connection, print_json, run_api

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "disclosure", help="request, decide and follow disclosures", description=__doc__
    )
    sub = parser.add_subparsers(dest="disclosure_command", metavar="ACTION")
    p = sub.add_parser("request", help="ask the owner of a hit for the record behind it")
    p.add_argument("hit_token")
    p.add_argument("--purpose", required=True)
    p.add_argument("--case-ref", required=True)
    p.add_argument("--legal-basis", default="")
    add_connection(p)
    p.set_defaults(
        func=run_api(
            lambda a, c: _out(
                c.request_disclosure(
                    hit_token=a.hit_token,
                    purpose=a.purpose,
                    case_ref=a.case_ref,
                    legal_basis=a.legal_basis,
                )
            )
        )
    )
    p = sub.add_parser("list", help="list requests (--direction in|out)")
    p.add_argument("--direction", choices=("in", "out"))
    add_connection(p)
    p.set_defaults(func=run_api(lambda a, c: _out(c.disclosures(a.direction))))
    p = sub.add_parser("decide", help="supervisor: approve or refuse an incoming request")
    p.add_argument("disclosure_id")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--approve", action="store_true")
    g.add_argument("--refuse", action="store_true")
    p.add_argument("--reason", required=True)
    add_connection(p)
    p.set_defaults(
        func=run_api(
            lambda a, c: _out(
                c.decide_disclosure(a.disclosure_id, approve=a.approve, reason=a.reason)
            )
        )
    )
    p = sub.add_parser("status", help="fetch the owner's decision on an outgoing request")
    p.add_argument("disclosure_id")
    add_connection(p)
    p.set_defaults(func=run_api(lambda a, c: _out(c.refresh_disclosure(a.disclosure_id))))
    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


def _out(data: Any) -> int:
    print_json(data)
    return EXIT_OK
