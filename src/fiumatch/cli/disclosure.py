"""``fiumatch disclosure``: from a hit to a disclosure.

* ``request HIT_ID`` sends the hit's token (only) to the owner with purpose and case reference;
  ``--onward-recipient``/``--onward-purpose`` also ask for prior consent to pass the data on.
* ``decide ID --approve|--refuse --reason`` (a supervisor at the owner) releases the chosen
  ``--fields`` or refuses; ``--grant-onward`` also grants an onward dissemination asked for.
* ``onward ID --recipient --purpose`` (requester) asks for onward consent afterwards;
  ``onward-decide ID --grant|--refuse --reason`` (owner's supervisor) decides it.
* ``status ID`` fetches the owner's decisions; ``list`` shows requests.

Onward dissemination always needs the owner's prior consent; every request records whether it
was asked for, granted or refused, and each step is audited on both nodes.
"""

from __future__ import annotations

import argparse
from typing import Any

from fiumatch.client._cli import EXIT_OK, EXIT_USAGE, add_connection, print_json, run_api

__all__ = ["register"]

FIELDS = "name,local_ref,subject_type,birth_date,countries"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "disclosure", help="request, decide and follow disclosures", description=__doc__
    )
    sub = parser.add_subparsers(dest="disclosure_command", metavar="ACTION")

    p = sub.add_parser("request", help="ask the owner of a hit for the record behind it")
    p.add_argument("hit_id", help="the hit's id, as `fiumatch hits` shows it")
    p.add_argument("--purpose", required=True)
    p.add_argument("--case-ref", required=True)
    p.add_argument("--legal-basis", default="")
    p.add_argument("--onward-recipient", help="ask consent to pass the data on to ...")
    p.add_argument("--onward-purpose", help="... for this purpose")
    add_connection(p)
    p.set_defaults(func=run_api(_request))

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
    p.add_argument("--fields", default=FIELDS, help=f"fields to release (default {FIELDS})")
    p.add_argument(
        "--grant-onward", action="store_true", help="also grant the onward dissemination asked"
    )
    add_connection(p)
    p.set_defaults(func=run_api(_decide))

    p = sub.add_parser("onward", help="ask the owner's consent to pass released data on")
    p.add_argument("disclosure_id")
    p.add_argument("--recipient", required=True)
    p.add_argument("--purpose", required=True)
    add_connection(p)
    p.set_defaults(
        func=run_api(
            lambda a, c: _out(
                c.request_onward(a.disclosure_id, recipient=a.recipient, purpose=a.purpose)
            )
        )
    )

    p = sub.add_parser("onward-decide", help="supervisor: grant or refuse onward dissemination")
    p.add_argument("disclosure_id")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true")
    g.add_argument("--refuse", action="store_true")
    p.add_argument("--reason", required=True)
    add_connection(p)
    p.set_defaults(
        func=run_api(
            lambda a, c: _out(c.decide_onward(a.disclosure_id, grant=a.grant, reason=a.reason))
        )
    )

    p = sub.add_parser("status", help="fetch the owner's decisions on an outgoing request")
    p.add_argument("disclosure_id")
    add_connection(p)
    p.set_defaults(func=run_api(lambda a, c: _out(c.refresh_disclosure(a.disclosure_id))))
    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


def _request(args: argparse.Namespace, client: Any) -> int:
    return _out(
        client.request_disclosure(
            hit_id=args.hit_id,
            purpose=args.purpose,
            case_ref=args.case_ref,
            legal_basis=args.legal_basis,
            onward_recipient=args.onward_recipient,
            onward_purpose=args.onward_purpose,
        )
    )


def _decide(args: argparse.Namespace, client: Any) -> int:
    return _out(
        client.decide_disclosure(
            args.disclosure_id,
            approve=args.approve,
            reason=args.reason,
            fields=[f.strip() for f in args.fields.split(",") if f.strip()],
            onward_consent=args.grant_onward,
        )
    )


def _out(data: Any) -> int:
    print_json(data)
    return EXIT_OK
