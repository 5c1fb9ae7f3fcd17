"""``fiumatch agreements``: record the MoU with a peer as data (modes, purposes, identifier
types, OPRF evaluation budget per epoch, largest set per session, validity) and list them."""

from __future__ import annotations

import argparse
import time
from typing import Any

from fiumatch.cli._util import shown
from fiumatch.client._cli import EXIT_OK, EXIT_USAGE, add_connection, run_api

__all__ = ["register"]

ALL_TYPES = (
    "iban,account_bic,lei,passport,national_id,tax_id,wallet,email,phone,person_name_dob,"
    "person_tokens_dob,person_surname_initial_dob,org_name_country,"
    "org_registration_country"
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agreements", help="record and list MoU agreements", description=__doc__
    )
    sub = parser.add_subparsers(dest="agreements_command", metavar="ACTION")
    p = sub.add_parser("add", help="add an agreement with a peer")
    p.add_argument("peer")
    p.add_argument("--modes", default="filter,mutual,cardinality")
    p.add_argument("--purposes", default="money_laundering,terrorist_financing,predicate_offence")
    p.add_argument("--id-types", default=ALL_TYPES, help="comma-separated match key types")
    p.add_argument("--budget", type=int, default=100_000, help="OPRF evaluations per epoch")
    p.add_argument("--max-set", type=int, default=10_000, help="largest set per session")
    p.add_argument("--valid-days", type=float, default=365.0)
    p.add_argument(
        "--no-proofs",
        dest="proofs",
        action="store_false",
        help="filter mode without VOPRF proofs (cheaper: about a third less work; the peer's "
        "agreement must say the same). Default: proofs on every evaluation",
    )
    add_connection(p)
    p.set_defaults(func=run_api(_add))
    p = sub.add_parser("list", help="list agreements")
    add_connection(p)
    p.set_defaults(func=run_api(_list))
    p = sub.add_parser(
        "revoke", help="revoke an agreement: no session opens under it from now on (audited)"
    )
    p.add_argument("agreement_id", metavar="AGREEMENT_ID", help="as `agreements list` shows it")
    add_connection(p)
    p.set_defaults(func=run_api(_revoke))
    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _add(args: argparse.Namespace, client: Any) -> int:
    now = int(time.time())
    a = client.add_agreement(
        peer=args.peer,
        modes=_split(args.modes),
        purposes=_split(args.purposes),
        identifier_types=_split(args.id_types),
        budget_per_epoch=args.budget,
        max_set_size=args.max_set,
        valid_from=now - 60,
        valid_until=now + int(args.valid_days * 86400),
        proofs=args.proofs,
    )
    print(a["id"])
    return EXIT_OK


def _revoke(args: argparse.Namespace, client: Any) -> int:
    a = client.revoke_agreement(args.agreement_id)
    print(f"{a['id']} with {a['peer']} revoked")
    return EXIT_OK


def _list(args: argparse.Namespace, client: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    t = Table("id", "peer", "modes", "purposes", "proofs", "budget", "max set", "valid until")
    for a in client.agreements():
        t.add_row(
            shown(a["id"]),
            shown(a["peer"]),
            shown(",".join(a["modes"])),
            shown(",".join(a["purposes"])),
            "on" if a.get("proofs", True) else "off",
            str(a["budget_per_epoch"]),
            str(a["max_set_size"]),
            time.strftime("%Y-%m-%d", time.gmtime(a["valid_until"])),
        )
    Console().print(t)
    return EXIT_OK
