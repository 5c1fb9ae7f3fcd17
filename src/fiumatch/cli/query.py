"""``fiumatch query`` and ``fiumatch hits``: run an analyst query that fans out to every peer
whose agreement permits it, and show a query's hits per peer.

While the query runs, a progress bar per peer shows the stage (opening, filter download,
evaluating, owner set, ...) and how many of our match keys the peer has evaluated so far.

Exit codes: 0 all peers answered; 3 at least one peer refused or was unreachable (the result
is partial and says so); 1 the query was still running at ``--timeout``; 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fiumatch.cli._util import shown
from fiumatch.client._cli import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_REMOTE,
    add_connection,
    key_types_text,
    readable_ref,
    run_api,
)

__all__ = ["register", "update_progress"]


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
        "--records",
        type=Path,
        help="JSON Lines of pasted identifier records (the CSV column names as keys)",
    )
    p.add_argument("--peer", action="append", default=[], help="limit to these peers")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_connection(p)
    p.set_defaults(func=run_api(_query))

    h = subparsers.add_parser("hits", help="show a query's hits per peer")
    h.add_argument("query_id")
    h.add_argument("--json", action="store_true")
    add_connection(h)
    h.set_defaults(func=run_api(_hits))


def update_progress(progress: Any, tasks: dict[str, Any], query: dict[str, Any]) -> None:
    """Bring one rich progress bar per peer up to date with a query as the node reports it."""
    for peer in query["peers"]:
        info = peer.get("progress") or {}
        total = info.get("total") or None  # unknown until the keys for this peer are counted
        done = int(info.get("done", 0))
        stage = peer["status"] if peer["done"] else str(info.get("stage", peer["status"]))
        if peer["done"]:
            total = total or 1
            done = total if peer["status"] == "ok" else done
        task = tasks.get(peer["peer"])
        if task is None:
            name = shown(peer["peer"])  # the columns render it as markup
            task = progress.add_task(name, total=total, peer=name, stage=shown(stage))
            tasks[peer["peer"]] = task
        progress.update(task, total=total, completed=done, stage=shown(stage))


def _query(args: argparse.Namespace, client: Any) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
    columns = (
        TextColumn("[bold]{task.fields[peer]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("keys  {task.fields[stage]}"),
        TimeElapsedColumn(),
    )
    with Progress(
        *columns, console=Console(stderr=True), transient=True, disable=args.json
    ) as progress:
        tasks: dict[str, Any] = {}
        update_progress(progress, tasks, q)
        deadline = time.monotonic() + args.timeout
        while q["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            q = client.query(q["id"])
            update_progress(progress, tasks, q)
    if q["status"] == "running":
        Console(stderr=True).print(
            f"[yellow]query {shown(q['id'])} is still running; "
            f"see `fiumatch hits {shown(q['id'])}`[/yellow]"
        )
        return EXIT_PROBLEM
    return _show(q, args.json)


def _show(q: dict[str, Any], as_json: bool) -> int:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        print(json.dumps(q))
    else:
        c = Console()
        title = f"query {shown(q['id'])} ({shown(q['case_ref'])})"
        t = Table("peer", "status", "hits", "detail", title=title)
        for p in q["peers"]:
            t.add_row(shown(p["peer"]), shown(p["status"]), str(p["hit_count"]), shown(p["reason"]))
        c.print(t)
        if q["hits"]:
            h = Table("hit id", "peer", "subject", "name", "key types matched", "strength")
            for hit in q["hits"]:
                h.add_row(
                    shown(hit["id"]),
                    shown(hit["peer"]),
                    shown(readable_ref(hit["local_ref"])),
                    shown(hit["name"]),
                    shown(key_types_text(hit["key_types"])),
                    shown(hit.get("strength_label", str(hit["strength"]))),
                )
            c.print(h)
            more = int(q.get("hit_total", len(q["hits"]))) - len(q["hits"])
            if more > 0:
                c.print(
                    f"{more} more hits not shown; the API pages them "
                    "(GET /api/v1/queries/ID?hits_offset=N&hits_limit=M)"
                )
            c.print("ask the owner for the record behind a hit: fiumatch disclosure request HIT_ID")
        if q["partial"]:
            c.print("[yellow]partial result: some peers refused or were unreachable[/yellow]")
    return EXIT_REMOTE if q["partial"] else EXIT_OK


def _hits(args: argparse.Namespace, client: Any) -> int:
    return _show(client.query(args.query_id), args.json)
