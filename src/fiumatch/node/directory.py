"""A node directory as ``fiumatch node init`` makes it, and opening it again.

Layout (everything but ``config.toml`` and the certificate is mode 0600 / 0700)::

    <dir>/config.toml             settings (fiumatch.node.settings); never holds a secret
    <dir>/keys/*.sealed           Ed25519 identity and OPRF master secret, sealed
    <dir>/tls/cert.pem, key.pem   self-signed P-256 certificate (unless --cert/--key given)
    <dir>/data/fiumatch.db        the SQLite store (WAL)
    <dir>/secrets/passphrase      the sealing passphrase, when init generated it
    <dir>/secrets/admin.token     the first admin's bearer token

Settings are read and checked by :func:`fiumatch.node.settings.load_settings` only, so every
way of starting a node (``serve``, the demo, tests) meets the same refusals: a missing key, a
default passphrase, a key file others can read.

This module never prints, logs or puts into an error the passphrase or a token.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fiumatch.node.keys import NodeKeys
from fiumatch.node.sealing import DEFAULT_LOG2_N
from fiumatch.node.settings import (
    CONFIG_FILE,
    NodeInitResult,
    Settings,
    load_settings,
    node_init,
    read_passphrase,
)
from fiumatch.store import Store, User, issue_token

__all__ = ["ADMIN_TOKEN_FILE", "PASSPHRASE_FILE", "NodeDir", "create_node_dir", "open_node_dir"]

PASSPHRASE_FILE = Path("secrets") / "passphrase"
ADMIN_TOKEN_FILE = Path("secrets") / "admin.token"


@dataclass(frozen=True, kw_only=True)
class NodeDir:
    """An opened node directory: validated settings and the passphrase that opens its keys."""

    settings: Settings
    passphrase: bytes = field(repr=False)

    @property
    def root(self) -> Path:
        return self.settings.config_path.parent

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    @property
    def url(self) -> str:
        return self.settings.base_url

    @property
    def admin_token_file(self) -> Path:
        return self.root / ADMIN_TOKEN_FILE

    def keys(self) -> NodeKeys:
        return NodeKeys.load(self.settings.keys_dir, self.passphrase)

    def open_store(self) -> Store:
        return Store.open(self.settings.db_path)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def create_node_dir(
    directory: Path | str,
    node_id: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    public_url: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    passphrase_env: str | None = None,
    env: Mapping[str, str] | None = None,
    scrypt_log2_n: int = DEFAULT_LOG2_N,
    rng: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], float] = time.time,
) -> tuple[NodeDir, NodeInitResult, str]:
    """Create a node directory (:func:`fiumatch.node.settings.node_init`) plus the first admin.

    With ``passphrase_env`` the passphrase is read from that environment variable and only its
    name is recorded; otherwise a random passphrase is generated into ``secrets/passphrase``
    (0600). Returns the opened directory, what init reports (fingerprint) and the admin token
    (also saved 0600 in ``secrets/admin.token``).
    """
    env = dict(os.environ if env is None else env)
    directory = Path(directory).resolve()
    now = int(clock())
    url = (public_url or f"https://{host}:{port}").rstrip("/")
    if passphrase_env is not None:
        passphrase: bytes = env.get(passphrase_env, "").encode("utf-8")
    else:
        passphrase = base64.urlsafe_b64encode(rng(24))
    result = node_init(
        directory,
        node_id,
        url,
        passphrase,
        rng,
        now,
        listen_host=host,
        listen_port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        passphrase_env=passphrase_env,
        passphrase_file=None if passphrase_env is not None else PASSPHRASE_FILE,
        scrypt_log2_n=scrypt_log2_n,
    )
    if passphrase_env is None:
        _write_private(directory / PASSPHRASE_FILE, passphrase)
    opened = open_node_dir(directory, env, now=now)
    token = issue_token(rng)
    with opened.open_store() as store:
        store.users.add(
            User(
                name="admin",
                role="admin",
                token_id=token.token_id,
                token_hash=token.token_hash,
                created_at=now,
            )
        )
    _write_private(directory / ADMIN_TOKEN_FILE, token.token.encode("ascii"))
    return opened, result, token.token


def open_node_dir(
    directory: Path | str,
    env: Mapping[str, str] | None = None,
    *,
    now: int | None = None,
) -> NodeDir:
    """Load and validate ``<directory>/config.toml`` (refusing unsafe starts) and read the
    passphrase from its configured source."""
    env = dict(os.environ if env is None else env)
    settings = load_settings(
        Path(directory) / CONFIG_FILE,
        env,
        now=int(time.time()) if now is None else now,
    )
    return NodeDir(settings=settings, passphrase=read_passphrase(settings, env))
