"""``fiumatch peers``: pin a peer after an out-of-band fingerprint check, list peers, and show the
fingerprint a URL announces (``peers fingerprint URL``), as with SSH host keys.

``peers add`` asks the node to pin; the node fetches the key the URL announces and refuses,
storing nothing, unless its fingerprint is exactly ``--fingerprint``. A mismatch exits 1 with
both fingerprints shown; an unreachable node or peer exits 3."""

from __future__ import annotations

import argparse
from typing import Any

from fiumatch.cli._util import shown
from fiumatch.client._cli import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_REMOTE,
    EXIT_USAGE,
    add_connection,
    run_api,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("peers", help="pin and list peer nodes", description=__doc__)
    sub = parser.add_subparsers(dest="peers_command", metavar="ACTION")
    p = sub.add_parser("add", help="pin a peer: its fingerprint must match --fingerprint")
    p.add_argument("node_id")
    p.add_argument("peer_url")
    p.add_argument(
        "--fingerprint",
        required=True,
        help="the peer's key fingerprint, obtained out of band (SHA256:...)",
    )
    add_connection(p)
    p.set_defaults(func=run_api(_add))
    p = sub.add_parser("list", help="list pinned peers")
    add_connection(p)
    p.set_defaults(func=run_api(_list))
    p = sub.add_parser("fingerprint", help="show the fingerprint a peer URL announces")
    p.add_argument("peer_url")
    p.set_defaults(func=_fingerprint)
    parser.set_defaults(func=lambda a: (parser.print_help(), EXIT_USAGE)[1])


def _add(args: argparse.Namespace, client: Any) -> int:
    from rich.console import Console

    from fiumatch.client.api import ApiError

    try:
        p = client.add_peer(args.node_id, args.peer_url, args.fingerprint)
    except ApiError as exc:
        if exc.error_code != "fingerprint_mismatch":
            raise
        announced = shown(exc.error_details.get("announced", "?"))
        Console(stderr=True).print(
            f"[red]fingerprint mismatch: nothing was pinned.[/red]\n"
            f"  {shown(args.peer_url)} announces  {announced}\n"
            f"  you gave                   {shown(args.fingerprint)}\n"
            "Check the fingerprint with the peer's operator out of band (phone, signed letter). "
            "A different key can mean a typo, a re-initialised node, or someone in between."
        )
        return EXIT_PROBLEM
    Console().print(
        f"pinned {shown(p['node_id'])} at {shown(p['url'])} ({shown(p['fingerprint'])})"
    )
    return EXIT_OK


def _list(args: argparse.Namespace, client: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    t = Table("node id", "url", "fingerprint")
    for p in client.peers():
        t.add_row(shown(p["node_id"]), shown(p["url"]), shown(p["fingerprint"]))
    Console().print(t)
    return EXIT_OK


def _fingerprint(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fiumatch.client.peer import PeerError, fetch_well_known

    try:
        info = fetch_well_known(args.peer_url)
    except PeerError as exc:
        Console(stderr=True).print(f"[red]{shown(exc.reason)}[/red]")
        return EXIT_REMOTE
    Console().print(f"{shown(info.get('node_id'))}  {shown(info.get('fingerprint'))}")
    return EXIT_OK
