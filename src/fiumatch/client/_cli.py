"""Shared plumbing of the node-facing CLI commands: connection options and error mapping.

Every API command takes ``--dir NODE_DIR`` (reads the node's URL and certificate from its
``config.toml``, and the admin token from ``secrets/admin.token``)
or ``--url``/``--token``/``--cacert`` (env ``FIUMATCH_URL``, ``FIUMATCH_TOKEN``,
``FIUMATCH_CACERT``). A remote refusal or an unreachable node exits 3.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fiumatch.client.api import ApiClient, ApiError
from fiumatch.errors import FiumatchError

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
        from fiumatch.node.directory import ADMIN_TOKEN_FILE
        from fiumatch.node.settings import CONFIG_FILE, load_settings

        settings = load_settings(
            args.dir / CONFIG_FILE, os.environ, now=int(time.time()), check_files=False
        )
        url = url or settings.base_url
        if cacert is None and settings.tls_cert is not None:
            cacert = str(settings.tls_cert)
        tok = args.dir / ADMIN_TOKEN_FILE
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

        from fiumatch.cli._util import shown

        try:
            with client_from(args) as client:
                return func(args, client)
        except ApiError as exc:
            Console(stderr=True).print(
                f"[red]refused[/red] ({exc.status} {shown(exc.error_code)}): {shown(exc.reason)}"
                + (f" {shown(exc.error_details)}" if exc.error_details else "")
            )
            return (
                EXIT_REMOTE
                if exc.status in (0, 401, 403, 404, 409, 429, 502, 503)
                else EXIT_PROBLEM
            )
        except FiumatchError as exc:  # the node directory's settings are unusable
            Console(stderr=True).print(f"[red]{exc.code}:[/red] {shown(exc.reason)}")
            return EXIT_USAGE
        except (OSError, KeyError) as exc:
            Console(stderr=True).print(f"[red]error:[/red] {shown(exc)}")
            return EXIT_USAGE

    return runner


def readable_ref(local_ref: str) -> str:
    """An FIU's subject reference as a person reads it: a goAML path such as
    ``DE-SYNTH-11/activity/report_parties/report_party[2]/entity`` becomes
    ``DE-SYNTH-11 report party 2 (entity)``; plain references are kept."""
    parts = [p for p in local_ref.split("/") if p]
    if len(parts) <= 2:
        return local_ref
    name, _, index = parts[-2].partition("[")
    number = index.rstrip("]") or "1"
    return f"{parts[0]} {name.replace('_', ' ')} {number} ({parts[-1].replace('_', ' ')})"


KEY_TYPE_LABELS = {
    "iban": "IBAN",
    "account_bic": "account",
    "lei": "LEI",
    "passport": "passport",
    "national_id": "national id",
    "tax_id": "tax id",
    "wallet": "wallet",
    "email": "e-mail",
    "phone": "phone",
    "person_name_dob": "name+dob",
    "person_tokens_dob": "name parts+dob",
    "person_surname_initial_dob": "surname+dob",
    "person_phonetic_year": "sounds-like name+year",
    "org_name_country": "org name",
    "org_registration_country": "org reg. no.",
}


def key_types_text(key_types: list[str]) -> str:
    """Matched key types in short words, identifiers first (``passport, name+dob``)."""
    return ", ".join(KEY_TYPE_LABELS.get(t, t) for t in key_types)


def print_json(data: Any) -> None:
    import json

    from rich.console import Console

    Console().print_json(json.dumps(data, default=str))
