"""``fiumatch node``: create a node directory (init), serve it (serve), load subjects into it
(load), add users (user-add) and show its identity (info).

``init`` writes ``config.toml``, sealed keys (Ed25519 identity, OPRF master secret), a
self-signed TLS certificate (or uses the operator's ``--cert``/``--key``), the SQLite database
and an admin token, and prints the fingerprint peers must check out of band. The sealing
passphrase is generated into ``secrets/passphrase`` (0600) unless ``--passphrase-env NAME``
names an environment variable that holds it. ``serve`` refuses to start on invalid settings,
a missing key, a default passphrase or a key file others can read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fiumatch.client._cli import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE

__all__ = ["register"]

MAX_REJECTS_LISTED = 20  # rejects printed; the report holds them all


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "node", help="create, serve and manage an FIU node", description=__doc__
    )
    sub = parser.add_subparsers(dest="node_command", metavar="ACTION")

    p = sub.add_parser("init", help="create a node directory: config, keys, TLS cert, database")
    p.add_argument("--dir", type=Path, required=True, help="node directory to create")
    p.add_argument("--node-id", required=True, help="this FIU's node id, e.g. FIU-DE")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free port)")
    p.add_argument("--public-url", help="URL peers use (default https://HOST:PORT)")
    p.add_argument("--cert", type=Path, help="operator-supplied TLS certificate (PEM)")
    p.add_argument("--key", type=Path, help="operator-supplied TLS private key (PEM, mode 0600)")
    p.add_argument(
        "--passphrase-env",
        metavar="NAME",
        help="read the sealing passphrase from this environment variable (default: generate "
        "one into secrets/passphrase)",
    )
    p.add_argument("--scrypt-log2n", type=int, default=15, help=argparse.SUPPRESS)
    p.set_defaults(func=_init)

    p = sub.add_parser("serve", help="serve the node over TLS (uvicorn)")
    p.add_argument("--dir", type=Path, required=True, help="node directory")
    p.add_argument("--log-level", default="warning")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes for the per-chunk cryptography (default: compute.workers, 0 = one per "
        "core; 1 = in the server process)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="encode epochs on this Dask scheduler, tcp://HOST:PORT or tls://HOST:PORT (default: "
        "compute.dask_scheduler; unset = this machine's process pool). Only the per-epoch key "
        "reaches the workers, never the master secret",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("load", help="ingest CSV/JSONL/FtM/goAML files into the node's store")
    p.add_argument("--dir", type=Path, required=True, help="node directory")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--format", choices=("csv", "jsonl", "ftm", "goaml"))
    p.add_argument("--source", help="source name in subject ids (default: file name)")
    p.add_argument(
        "--rejects",
        type=Path,
        default=None,
        help="reject report, JSON Lines as fiumatch ingest writes it (default: "
        "DIR/rejects/load-<UTC time>.jsonl, inside the node directory)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_load)

    p = sub.add_parser("user-add", help="add a user (analyst, supervisor, auditor, admin)")
    p.add_argument("--dir", type=Path, required=True, help="node directory")
    p.add_argument("name")
    p.add_argument("role", choices=("analyst", "supervisor", "auditor", "admin"))
    p.set_defaults(func=_user_add)

    p = sub.add_parser("info", help="show the node id, URL and key fingerprint")
    p.add_argument("--dir", type=Path, required=True, help="node directory")
    p.set_defaults(func=_info)
    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


def _init(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fiumatch.errors import FiumatchError
    from fiumatch.node.directory import create_node_dir
    from fiumatch.node.runner import free_port

    if (args.cert is None) != (args.key is None):
        Console(stderr=True).print("[red]--cert and --key go together[/red]")
        return EXIT_USAGE
    from fiumatch.cli._util import shown

    try:
        opened, result, _ = create_node_dir(
            args.dir,
            args.node_id,
            host=args.host,
            port=args.port or free_port(args.host),
            public_url=args.public_url,
            tls_cert=args.cert,
            tls_key=args.key,
            passphrase_env=args.passphrase_env,
            scrypt_log2_n=args.scrypt_log2n,
        )
    except FiumatchError as exc:
        Console(stderr=True).print(f"[red]{exc.code}:[/red] {shown(exc.reason)}")
        return EXIT_PROBLEM
    c = Console()
    c.print(f"node [bold]{shown(result.node_id)}[/bold] created in {shown(result.directory)}")
    c.print(f"url          {shown(opened.url)}")
    c.print(f"fingerprint  [bold]{result.fingerprint}[/bold]  (give this to peers out of band)")
    if result.tls_cert_sha256:
        c.print(f"tls cert     SHA256 {result.tls_cert_sha256}")
    c.print(f"admin token  {shown(opened.admin_token_file)}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fiumatch.cli._util import shown
    from fiumatch.errors import FiumatchError
    from fiumatch.node.runner import serve

    # The flags override the config file through the settings' own environment variables, so
    # they are validated (and refused with the setting's name) like any other setting.
    if args.workers is not None:
        os.environ["FIUMATCH_COMPUTE_WORKERS"] = str(args.workers)
    if args.dask:
        os.environ["FIUMATCH_COMPUTE_DASK_SCHEDULER"] = args.dask
    try:
        serve(args.dir, log_level=args.log_level)
    except FiumatchError as exc:
        Console(stderr=True).print(
            f"[red]refusing to start: {exc.code}[/red]: {shown(exc.reason)} "
            f"{shown(exc.details or '')}"
        )
        return EXIT_PROBLEM
    return EXIT_OK


def _open_store(node_dir: Path) -> Any:
    from fiumatch.node.directory import open_node_dir

    return open_node_dir(node_dir).open_store()


def _load(args: argparse.Namespace) -> int:
    import time
    from contextlib import ExitStack
    from datetime import date, timedelta

    from rich.console import Console

    from fiumatch.cli._util import not_regular_files, shown
    from fiumatch.cli.ingest import progress_bar, workers_for
    from fiumatch.errors import FiumatchError
    from fiumatch.ingest import (
        IngestError,
        IngestStats,
        Reject,
        RejectReport,
        detect_format,
        read,
    )
    from fiumatch.node.service import to_stored

    err = Console(stderr=True, soft_wrap=True)
    out = Console(soft_wrap=True)
    if args.rejects is None:
        # Reject reports name local records: keep them with the node's data, not in the cwd.
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        args.rejects = args.dir / "rejects" / f"load-{stamp}-{os.getpid()}.jsonl"
    # Refuse the whole load before the store is opened: nothing is read, nothing changes.
    refused = not_regular_files(args.files)
    for path, refusal in refused:
        err.print(f"[red]{shown(path)}:[/red] {refusal}")
    if refused:
        return EXIT_USAGE
    for path in args.files if args.format is None else ():
        try:
            detect_format(path)
        except IngestError as exc:
            err.print(f"[red]{shown(path)}:[/red] {exc.reason}")
            return EXIT_USAGE
    if args.rejects.resolve() in {p.resolve() for p in args.files}:
        err.print(f"[red]{shown(args.rejects)}:[/red] the reject report would overwrite an input")
        return EXIT_USAGE

    stats = IngestStats()
    listed = 0
    with ExitStack() as stack:
        try:
            args.rejects.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            report = stack.enter_context(RejectReport(args.rejects))
        except OSError as exc:
            err.print(f"[red]{shown(args.rejects)}:[/red] cannot write the reject report "
                      f"({shown(exc.strerror)})")  # fmt: skip
            return EXIT_USAGE
        store = _open_store(args.dir)
        stack.callback(store.close)
        # The bar of `fiumatch ingest`: bytes read, records, records/s and ETA.
        progress = stack.enter_context(progress_bar(disable=args.no_progress))
        for path in args.files:
            size = path.stat().st_size
            task = progress.add_task(f"loading {shown(path.name)}", total=size or None, records=0)
            stats.bytes_read = 0
            now = int(time.time())
            loaded, rejected = stats.subjects, stats.rejected_records
            before = stats.records
            try:

                def subjects(
                    path: Path = path, task: Any = task, before: int = before
                ) -> Iterator[Any]:
                    nonlocal listed
                    done = 0
                    for item in read(
                        path,
                        args.format,
                        default_retention=date.today() + timedelta(days=1826),
                        source=args.source,
                        stats=stats,
                        workers=workers_for(path, args.format, None),
                    ):
                        done += 1
                        if done % 2000 == 0:
                            progress.update(
                                task, completed=stats.bytes_read, records=stats.records - before
                            )
                        if isinstance(item, Reject):
                            report.add(item)
                            if listed < MAX_REJECTS_LISTED:
                                listed += 1
                                out.print(f"  rejected {_where(item)}")
                            continue
                        yield to_stored(item)

                # one file, all or nothing; stored a thousand subjects per statement
                store.subjects.upsert_many(subjects(), now=now)
                progress.update(task, completed=size, records=stats.records - before)
            except (IngestError, OSError) as exc:
                why: str | None = exc.reason if isinstance(exc, IngestError) else exc.strerror
                err.print(f"[red]{shown(path)}:[/red] {shown(why)}; nothing of it was loaded")
                return EXIT_USAGE
            except FiumatchError as exc:
                err.print(f"[red]{shown(path)}: {exc.code}:[/red] {shown(exc.reason)}; "
                          "nothing of it was loaded")  # fmt: skip
                return EXIT_PROBLEM
            out.print(
                f"{shown(path)}: loaded {stats.subjects - loaded} subjects, "
                f"{stats.rejected_records - rejected} records rejected"
            )
    if stats.rejects > listed:
        out.print(f"  ... and {stats.rejects - listed} more rejects in the report")
    out.print(
        f"loaded {stats.subjects} subjects, {stats.rejected_records} records rejected "
        f"({stats.rejects} reject entries -> {shown(args.rejects)})"
    )
    return EXIT_PROBLEM if stats.rejected_records else EXIT_OK


def _where(reject: Any) -> str:
    """Where a reject is and why, for the terminal (never the rejected value)."""
    from fiumatch.cli._util import shown

    line = f" line {reject.line}" if reject.line is not None else ""
    return (
        f"{shown(reject.file)}{line} (record {shown(reject.record)}): "
        f"{shown(reject.field)}: {shown(reject.reason)}"
    )


def _user_add(args: argparse.Namespace) -> int:
    import os
    import time

    from rich.console import Console

    from fiumatch.store import RecordConflictError, User, issue_token

    store = _open_store(args.dir)
    try:
        token = issue_token(os.urandom)
        store.users.add(
            User(
                name=args.name,
                role=args.role,
                token_id=token.token_id,
                token_hash=token.token_hash,
                created_at=int(time.time()),
            )
        )
    except RecordConflictError:
        Console(stderr=True).print("[red]a user with that name exists[/red]")
        return EXIT_PROBLEM
    finally:
        store.close()
    print(token.token)
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fiumatch.cli._util import shown
    from fiumatch.errors import FiumatchError
    from fiumatch.node.directory import open_node_dir

    try:
        opened = open_node_dir(args.dir)
        keys = opened.keys()
    except FiumatchError as exc:
        Console(stderr=True).print(f"[red]{exc.code}:[/red] {shown(exc.reason)}")
        return EXIT_PROBLEM
    Console().print(f"{shown(opened.node_id)}  {shown(opened.url)}  {keys.fingerprint}")
    return EXIT_OK
