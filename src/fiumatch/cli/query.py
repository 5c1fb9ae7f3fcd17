"""``fiumatch query`` and ``fiumatch hits``: run an analyst query that fans out to every peer
whose agreement permits it (progress per peer), and show a query's hits per peer.

Exit codes: 0 all peers answered; 3 at least one peer refused or was unreachable (the result
is partial and says so); 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fiumatch.client._cli import EXIT_OK, EXIT_REMOTE, add_connection, run_api

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "query", help="run an analyst query across peers", description=__doc__
    )
    p.add_argument(
        "--purpose",
        required=True,
        choices=("money_laundering", "terrorist_financing", "predicate_offence"),
    )
    p.add_argument("--legal-basis", required=True)
    p.add_argument("--case-ref", required=True)
    p.add_argument("--mode", default="filter", choices=("filter", "mutual", "cardinality"))
    p.add_argument("--subject", action="append", default=[], help="stored subject id (repeat)")
    p.add_argument("--all", action="store_true", help="all stored subjects (bulk)")
    p.add_argument(
        "--records", type=Path, help="JSON Lines of pasted identifier records (CSV column names)"
    )
    p.add_argument("--peer", action="append", default=[], help="limit to these peers")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_connection(p)
    p.set_defaults(func=run_api(_query))

    h = subparsers.add_parser("hits", help="show a query's hits per peer")
    h.add_argument("query_id")
    h.add_argument("--json", action="store_true")
    add_connection(h)
    h.set_defaults(func=run_api(_hits))


def _query(args: argparse.Namespace, client: Any) -> int:
    from rich.console import Console
    from rich.progress import Progress

    records = []
    if args.records:
        records = [
            json.loads(line) for line in args.records.read_text().splitlines() if line.strip()
        ]
    q = client.create_query(
        purpose=args.purpose,
        legal_basis=args.legal_basis,
        case_ref=args.case_ref,
        mode=args.mode,
        subject_ids=args.subject,
        all_subjects=args.all,
        records=records,
        peers=args.peer,
    )
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=args.json) as progress:
        tasks = {p["peer"]: progress.add_task(p["peer"], total=1) for p in q["peers"]}
        deadline = time.monotonic() + 600
        while q["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            q = client.query(q["id"])
            for p in q["peers"]:
                tid = tasks.get(p["peer"]) or progress.add_task(p["peer"], total=1)
                tasks[p["peer"]] = tid
                progress.update(
                    tid, description=f"{p['peer']}: {p['status']}", completed=1 if p["done"] else 0
                )
    return _show(q, args.json)


def _show(q: dict[str, Any], as_json: bool) -> int:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        print(json.dumps(q))
    else:
        c = Console()
        t = Table("peer", "status", "hits", "detail", title=f"query {q['id']} ({q['case_ref']})")
        for p in q["peers"]:
            t.add_row(p["peer"], p["status"], str(p["hit_count"]), p["reason"])
        c.print(t)
        if q["hits"]:
            h = Table("peer", "subject", "name", "key types", "strength", "hit token")
            for hit in q["hits"]:
                h.add_row(
                    hit["peer"],
                    hit["local_ref"],
                    hit["name"],
                    ", ".join(hit["key_types"]),
                    str(hit["strength"]),
                    hit["hit_token"][:16] + "…",
                )
            c.print(h)
        if q["partial"]:
            c.print("[yellow]partial result: some peers refused or were unreachable[/yellow]")
    return EXIT_REMOTE if q["partial"] else EXIT_OK


def _hits(args: argparse.Namespace, client: Any) -> int:
    return _show(client.query(args.query_id), args.json)
