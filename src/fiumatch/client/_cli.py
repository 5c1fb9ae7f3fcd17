"""Shared plumbing of the node-facing CLI commands: connection options and error mapping.

Every API command takes ``--dir NODE_DIR`` (reads the node's URL, certificate and admin token)
or ``--url``/``--token``/``--cacert`` (env ``FIUMATCH_URL``, ``FIUMATCH_TOKEN``,
``FIUMATCH_CACERT``). A remote refusal or an unreachable node exits 3.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fiumatch.client.api import ApiClient, ApiError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_REMOTE = 0, 1, 2, 3


def add_connection(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("connection")
    g.add_argument("--dir", type=Path, help="node directory (URL, certificate, admin token)")
    g.add_argument("--url", default=os.environ.get("FIUMATCH_URL"), help="node URL")
    g.add_argument("--token", default=os.environ.get("FIUMATCH_TOKEN"), help="bearer token")
    g.add_argument(
        "--cacert",
        default=os.environ.get("FIUMATCH_CACERT"),
        help="the node's TLS certificate (PEM) to verify against",
    )


def client_from(args: argparse.Namespace) -> ApiClient:
    url, token, cacert = args.url, args.token, args.cacert
    if args.dir is not None:
        raw = tomllib.loads((args.dir / "node.toml").read_text(encoding="utf-8"))
        url = url or raw["public_url"]
        cert = Path(raw["tls_cert"])
        cacert = cacert or str(cert if cert.is_absolute() else args.dir / cert)
        tok = args.dir / "secrets" / "admin.token"
        if token is None and tok.is_file():
            token = tok.read_text().strip()
    if not url:
        raise SystemExit("no node: give --dir or --url (or FIUMATCH_URL)")
    return ApiClient(url, token, cacert=cacert)


def run_api(
    func: Callable[[argparse.Namespace, ApiClient], int],
) -> Callable[[argparse.Namespace], int]:
    """Wrap an API command: connect, run, map errors to exit codes."""

    def runner(args: argparse.Namespace) -> int:
        from rich.console import Console

        try:
            with client_from(args) as client:
                return func(args, client)
        except ApiError as exc:
            Console(stderr=True).print(
                f"[red]refused[/red] ({exc.status} {exc.error_code}): {exc.reason}"
                + (f" {exc.error_details}" if exc.error_details else "")
            )
            return (
                EXIT_REMOTE
                if exc.status in (0, 401, 403, 404, 409, 429, 502, 503)
                else EXIT_PROBLEM
            )
        except (OSError, KeyError) as exc:
            Console(stderr=True).print(f"[red]error:[/red] {exc}")
            return EXIT_USAGE

    return runner


def print_json(data: Any) -> None:
    import json

    from rich.console import Console

    Console().print_json(json.dumps(data, default=str))
