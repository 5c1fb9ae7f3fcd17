"""Node settings: a TOML file plus ``FIUMATCH_*`` environment overrides, validated once at start
into a frozen :class:`Settings`; and :func:`node_init`, which creates a node directory.

This module owns the configuration format and the refusal to start on a dangerous setup. It
never logs, returns in an error, or stores in :class:`Settings` a passphrase: the file names
*where* the passphrase comes from (an environment variable or a key file), never the passphrase.

File format (``config.toml``; relative paths are relative to the file's directory, whether they
come from the file or the environment)::

    [node]
    id = "fiu-a"                          # [A-Za-z0-9][A-Za-z0-9-]{1,62}, e.g. "FIU-DE"
    base_url = "https://fiu-a.example:8443"
    data_dir = "data"                     # default "data"
    db_path = "data/fiumatch.db"          # default <data_dir>/fiumatch.db
    keys_dir = "keys"                     # default "keys"

    [listen]
    host = "127.0.0.1"
    port = 8443

    [tls]
    enabled = true
    cert = "tls/cert.pem"
    key = "tls/key.pem"

    [secrets]                             # exactly one of:
    passphrase_env = "FIUMATCH_PASSPHRASE"
    # passphrase_file = "/run/secrets/fiumatch"

    [epochs]
    rotation_seconds = 604800             # at least 3600

    [retention]
    check_seconds = 3600                  # how often subjects past retention are purged

    [sessions]
    max_open_per_peer = 4
    idle_timeout_seconds = 300
    max_set_size = 1000000
    max_body_bytes = 67108864

    [signatures]
    skew_seconds = 30
    max_lifetime_seconds = 300

    [peers]
    timeout_seconds = 30                  # a peer silent longer: the query's result is partial
    connect_retries = 2                   # retries (with backoff) when a peer refuses to connect

    [limits]
    requests_per_second = 200             # per bearer token / peer key id (token bucket); 429
    burst = 1000

    [audit]
    checkpoint_every = 1000               # sign a checkpoint at least every N entries
    checkpoint_seconds = 10               # and this long after an entry none covers yet

    [log]
    level = "info"

Every setting ``section.key`` can be overridden by ``FIUMATCH_<SECTION>_<KEY>`` (upper case),
e.g. ``FIUMATCH_LISTEN_PORT=9443``. Unknown keys in the file are refused (a typo must not pass
silently); unknown ``FIUMATCH_*`` variables are ignored (the passphrase variable is one).

:func:`load_settings` refuses to start, with a :class:`SettingsError` naming the setting, when:
a value is missing or malformed; the file holds a passphrase inline; the passphrase source is
missing, empty, shorter than 12 characters or a default/example value ("changeme",
"fiumatch", ...); a key file (sealed node keys, passphrase file, TLS key) is missing or
readable by group or others; TLS is on and its files are missing, mismatched or expired.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fiumatch.node.errors import ConflictError, SealingError, SettingsError
from fiumatch.node.keys import IDENTITY_FILE, MASTER_FILE, NodeKeys
from fiumatch.node.sealing import DEFAULT_LOG2_N, check_private_file
from fiumatch.node.tls import (
    check_tls_files,
    generate_tls_key,
    self_signed_certificate,
    write_tls_files,
)
from fiumatch.store import Database

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PASSPHRASE_ENV",
    "MIN_PASSPHRASE_LEN",
    "NodeInitResult",
    "Settings",
    "check_passphrase",
    "load_settings",
    "node_init",
    "read_passphrase",
]

CONFIG_FILE = "config.toml"
DEFAULT_PASSPHRASE_ENV = "FIUMATCH_PASSPHRASE"
ENV_PREFIX = "FIUMATCH_"
MIN_PASSPHRASE_LEN = 12
LOG_LEVELS = ("debug", "info", "warning", "error")

# Node ids are what peers pin and what signatures name as keyid; upper case is allowed because
# FIUs name themselves that way ("FIU-DE").
_NODE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,62}")
_ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# Values operators copy from examples. Compared after lower-casing and dropping everything but
# letters and digits; a passphrase made only of repetitions of one of them is refused too.
_WEAK_WORDS = (
    "changeme",
    "fiumatch",
    "password",
    "passphrase",
    "secret",
    "example",
    "default",
    "admin",
    "letmein",
    "test",
    "qwerty",
    "123456",
    "correcthorsebatterystaple",
    "yourpassphrasehere",
)
_WEAK_FRAGMENTS = ("changeme", "example", "placeholder", "yourpassphrase", "replaceme")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated node settings. Holds no secret."""

    config_path: Path
    node_id: str
    base_url: str
    data_dir: Path
    db_path: Path
    keys_dir: Path
    listen_host: str
    listen_port: int
    tls_enabled: bool
    tls_cert: Path | None
    tls_key: Path | None
    passphrase_env: str | None
    passphrase_file: Path | None
    epoch_rotation_seconds: int
    retention_check_seconds: int
    session_max_open_per_peer: int
    session_idle_timeout_seconds: int
    max_set_size: int
    max_body_bytes: int
    signature_skew_seconds: int
    signature_max_lifetime_seconds: int
    log_level: str
    peer_timeout_seconds: int = 30
    peer_connect_retries: int = 2
    rate_per_second: int = 200
    rate_burst: int = 1000
    audit_checkpoint_every: int = 1000
    audit_checkpoint_seconds: int = 10
    compute_workers: int = 0
    compute_parallel_min_elements: int = 4096
    compute_dask_scheduler: str | None = None


# --- the schema: (section, key) -> (kind, default) ---------------------------------------

_REQUIRED = object()
_SCHEMA: dict[tuple[str, str], tuple[str, object]] = {
    ("node", "id"): ("str", _REQUIRED),
    ("node", "base_url"): ("str", _REQUIRED),
    ("node", "data_dir"): ("path", "data"),
    ("node", "db_path"): ("path", None),
    ("node", "keys_dir"): ("path", "keys"),
    ("listen", "host"): ("str", "127.0.0.1"),
    ("listen", "port"): ("int", 8443),
    ("tls", "enabled"): ("bool", True),
    ("tls", "cert"): ("path", None),
    ("tls", "key"): ("path", None),
    ("secrets", "passphrase_env"): ("str", None),
    ("secrets", "passphrase_file"): ("path", None),
    ("epochs", "rotation_seconds"): ("int", 7 * 86400),
    ("retention", "check_seconds"): ("int", 3600),
    ("sessions", "max_open_per_peer"): ("int", 4),
    ("sessions", "idle_timeout_seconds"): ("int", 300),
    ("sessions", "max_set_size"): ("int", 1_000_000),
    ("sessions", "max_body_bytes"): ("int", 64 * 1024 * 1024),
    ("signatures", "skew_seconds"): ("int", 30),
    ("signatures", "max_lifetime_seconds"): ("int", 300),
    ("log", "level"): ("str", "info"),
    ("peers", "timeout_seconds"): ("int", 30),
    ("peers", "connect_retries"): ("int", 2),
    ("limits", "requests_per_second"): ("int", 200),
    ("limits", "burst"): ("int", 1000),
    ("audit", "checkpoint_every"): ("int", 1000),
    ("audit", "checkpoint_seconds"): ("int", 10),
    ("compute", "workers"): ("int", 0),
    ("compute", "parallel_min_elements"): ("int", 4096),
    ("compute", "dask_scheduler"): ("str", None),
}
_INT_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("listen", "port"): (1, 65535),
    ("epochs", "rotation_seconds"): (3600, 366 * 86400),
    ("retention", "check_seconds"): (60, 7 * 86400),
    ("sessions", "max_open_per_peer"): (1, 1000),
    ("sessions", "idle_timeout_seconds"): (5, 86400),
    ("sessions", "max_set_size"): (1, 100_000_000),
    ("sessions", "max_body_bytes"): (1024, 1 << 34),
    ("signatures", "skew_seconds"): (0, 600),
    ("signatures", "max_lifetime_seconds"): (1, 3600),
    ("peers", "timeout_seconds"): (1, 3600),
    ("peers", "connect_retries"): (0, 10),
    ("limits", "requests_per_second"): (1, 1_000_000),
    ("limits", "burst"): (1, 1_000_000),
    ("audit", "checkpoint_every"): (1, 1_000_000),
    ("audit", "checkpoint_seconds"): (1, 86400),
    ("compute", "workers"): (0, 1024),
    ("compute", "parallel_min_elements"): (1, 1 << 30),
}


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _convert(kind: str, raw: object, setting: str, base: Path, from_env: bool) -> object:
    where = "environment" if from_env else "config file"
    if kind == "str":
        if not isinstance(raw, str):
            raise SettingsError(f"{setting} must be a string (in the {where})", setting=setting)
        return raw.strip()
    if kind == "int":
        if from_env and isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,12}", raw.strip()):
            raw = int(raw.strip())
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise SettingsError(f"{setting} must be an integer (in the {where})", setting=setting)
        return raw
    if kind == "bool":
        if from_env and isinstance(raw, str):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if not isinstance(raw, bool):
            raise SettingsError(
                f"{setting} must be true or false (in the {where})", setting=setting
            )
        return raw
    if kind == "path":
        if not isinstance(raw, str) or not raw.strip():
            raise SettingsError(f"{setting} must be a path (in the {where})", setting=setting)
        path = Path(raw.strip()).expanduser()
        return path if path.is_absolute() else base / path
    raise AssertionError(kind)  # pragma: no cover


def _collect(doc: Mapping[str, Any], env: Mapping[str, str], base: Path) -> dict[str, object]:
    for section, table in doc.items():
        if section == "passphrase":
            raise SettingsError(
                "the passphrase must never be written in the config file", setting="passphrase"
            )
        if not isinstance(table, dict):
            raise SettingsError(f"[{section}] must be a table", setting=section)
        for key in table:
            if key == "passphrase" or (section, key) == ("secrets", "passphrase"):
                raise SettingsError(
                    "the passphrase must never be written in the config file; set "
                    "secrets.passphrase_env (an environment variable name) or "
                    "secrets.passphrase_file (a 0600 key file) instead",
                    setting=f"{section}.{key}",
                )
            if (section, key) not in _SCHEMA:
                raise SettingsError(f"unknown setting {section}.{key}", setting=f"{section}.{key}")
    values: dict[str, object] = {}
    for (section, key), (kind, default) in _SCHEMA.items():
        setting = f"{section}.{key}"
        env_name = _env_name(section, key)
        if env_name in env:
            values[setting] = _convert(kind, env[env_name], setting, base, from_env=True)
        elif key in doc.get(section, {}):
            values[setting] = _convert(kind, doc[section][key], setting, base, from_env=False)
        elif default is _REQUIRED:
            raise SettingsError(
                f"{setting} is required (config file or {env_name})", setting=setting
            )
        else:
            values[setting] = (
                _convert(kind, default, setting, base, from_env=False)
                if kind == "path" and default is not None
                else default
            )
    return values


def check_passphrase(passphrase: bytes | str, *, setting: str) -> None:
    """Refuse an empty, short, default or example passphrase (:class:`SettingsError`)."""
    text = (
        passphrase.decode("utf-8", errors="replace")
        if isinstance(passphrase, bytes)
        else passphrase
    )
    if len(text) < MIN_PASSPHRASE_LEN:
        raise SettingsError(
            f"the passphrase is empty or shorter than {MIN_PASSPHRASE_LEN} characters",
            setting=setting,
        )
    folded = "".join(ch for ch in text.lower() if ch.isalnum())
    weak = any(
        folded == word * (len(folded) // len(word)) and folded for word in _WEAK_WORDS
    ) or any(fragment in folded for fragment in _WEAK_FRAGMENTS)
    if weak or len(set(text)) < 6:
        raise SettingsError(
            "the passphrase is a default or example value, or too repetitive; "
            "generate a random one",
            setting=setting,
        )


def _read_key_file(path: Path, setting: str) -> bytes:
    try:
        check_private_file(path)
        data = path.read_bytes()
    except SealingError as exc:
        raise SettingsError(f"{setting}: {exc.reason}", setting=setting) from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return data


def read_passphrase(settings: Settings, env: Mapping[str, str]) -> bytes:
    """The passphrase from its configured source, checked. Never store or log the result."""
    if settings.passphrase_file is not None:
        setting = "secrets.passphrase_file"
        data = _read_key_file(settings.passphrase_file, setting)
    else:
        setting = "secrets.passphrase_env"
        name = settings.passphrase_env or DEFAULT_PASSPHRASE_ENV
        value = env.get(name)
        if value is None:
            raise SettingsError(
                f"the environment variable {name} (the passphrase source) is not set",
                setting=setting,
            )
        data = value.encode("utf-8")
    check_passphrase(data, setting=setting)
    return data


def load_settings(
    config_path: Path | str, env: Mapping[str, str], *, now: int, check_files: bool = True
) -> Settings:
    """Read, merge and validate the settings; with ``check_files`` (the default, and what a
    starting node must use) also check the passphrase source, the sealed keys and the TLS files.
    """
    config_path = Path(config_path).resolve()
    try:
        with config_path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError("the config file does not exist", setting="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"the config file is not valid TOML: {exc}", setting="config") from None
    v = _collect(doc, env, config_path.parent)

    node_id = str(v["node.id"])
    if not _NODE_ID_RE.fullmatch(node_id):
        raise SettingsError(
            "node.id must be 2..63 characters of [A-Za-z0-9-], starting alphanumeric",
            setting="node.id",
        )
    tls_enabled = bool(v["tls.enabled"])
    base_url = str(v["node.base_url"]).rstrip("/")
    _check_url(base_url, tls_enabled)
    for key, (low, high) in _INT_RANGES.items():
        name = f"{key[0]}.{key[1]}"
        value = v[name]
        assert isinstance(value, int)
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}", setting=name)
    level = str(v["log.level"]).lower()
    if level not in LOG_LEVELS:
        raise SettingsError(
            f"log.level must be one of {', '.join(LOG_LEVELS)}", setting="log.level"
        )
    if not str(v["listen.host"]):
        raise SettingsError("listen.host must not be empty", setting="listen.host")

    passphrase_env = v["secrets.passphrase_env"]
    passphrase_file = v["secrets.passphrase_file"]
    if passphrase_env is not None and passphrase_file is not None:
        raise SettingsError(
            "set only one of secrets.passphrase_env and secrets.passphrase_file",
            setting="secrets.passphrase_env",
        )
    if passphrase_env is None and passphrase_file is None:
        passphrase_env = DEFAULT_PASSPHRASE_ENV
    if passphrase_env is not None and not _ENV_NAME_RE.fullmatch(str(passphrase_env)):
        raise SettingsError(
            "secrets.passphrase_env must name an environment variable (A-Z, 0-9, _)",
            setting="secrets.passphrase_env",
        )

    data_dir = _as_path(v["node.data_dir"])
    db_path = (
        _as_path(v["node.db_path"]) if v["node.db_path"] is not None else data_dir / "fiumatch.db"
    )
    settings = Settings(
        config_path=config_path,
        node_id=node_id,
        base_url=base_url,
        data_dir=data_dir,
        db_path=db_path,
        keys_dir=_as_path(v["node.keys_dir"]),
        listen_host=str(v["listen.host"]),
        listen_port=_as_int(v["listen.port"]),
        tls_enabled=tls_enabled,
        tls_cert=_opt_path(v["tls.cert"]),
        tls_key=_opt_path(v["tls.key"]),
        passphrase_env=None if passphrase_env is None else str(passphrase_env),
        passphrase_file=_opt_path(passphrase_file),
        epoch_rotation_seconds=_as_int(v["epochs.rotation_seconds"]),
        retention_check_seconds=_as_int(v["retention.check_seconds"]),
        session_max_open_per_peer=_as_int(v["sessions.max_open_per_peer"]),
        session_idle_timeout_seconds=_as_int(v["sessions.idle_timeout_seconds"]),
        max_set_size=_as_int(v["sessions.max_set_size"]),
        max_body_bytes=_as_int(v["sessions.max_body_bytes"]),
        signature_skew_seconds=_as_int(v["signatures.skew_seconds"]),
        signature_max_lifetime_seconds=_as_int(v["signatures.max_lifetime_seconds"]),
        log_level=level,
        peer_timeout_seconds=_as_int(v["peers.timeout_seconds"]),
        peer_connect_retries=_as_int(v["peers.connect_retries"]),
        rate_per_second=_as_int(v["limits.requests_per_second"]),
        rate_burst=_as_int(v["limits.burst"]),
        audit_checkpoint_every=_as_int(v["audit.checkpoint_every"]),
        audit_checkpoint_seconds=_as_int(v["audit.checkpoint_seconds"]),
        compute_workers=_as_int(v["compute.workers"]),
        compute_parallel_min_elements=_as_int(v["compute.parallel_min_elements"]),
        compute_dask_scheduler=_dask_address(v["compute.dask_scheduler"]),
    )
    if settings.tls_enabled and (settings.tls_cert is None or settings.tls_key is None):
        missing = "tls.cert" if settings.tls_cert is None else "tls.key"
        raise SettingsError(f"TLS is enabled but {missing} is not set", setting=missing)
    if check_files:
        _check_files(settings, env, now)
    return settings


def _dask_address(value: object) -> str | None:
    """A Dask scheduler address (``tcp://host:port`` or ``tls://host:port``), or None."""
    if value is None or value == "":
        return None
    text = str(value)
    if not re.fullmatch(r"(tcp|tls)://[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}", text):
        raise SettingsError(
            "compute.dask_scheduler must be tcp://HOST:PORT or tls://HOST:PORT",
            setting="compute.dask_scheduler",
        )
    return text


def _as_path(value: object) -> Path:
    assert isinstance(value, Path)
    return value


def _opt_path(value: object) -> Path | None:
    return None if value is None else _as_path(value)


def _as_int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _check_url(url: str, tls_enabled: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(
            "node.base_url must be an http(s) URL with a host", setting="node.base_url"
        )
    if tls_enabled and parts.scheme != "https":
        raise SettingsError(
            "node.base_url must use https when TLS is enabled", setting="node.base_url"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise SettingsError(
            "node.base_url must not carry credentials, a query or a fragment",
            setting="node.base_url",
        )


def _check_files(settings: Settings, env: Mapping[str, str], now: int) -> None:
    read_passphrase(settings, env)
    for name in (IDENTITY_FILE, MASTER_FILE):
        try:
            check_private_file(settings.keys_dir / name)
        except SealingError as exc:
            raise SettingsError(
                f"sealed node key {name}: {exc.reason} (run node init first?)",
                setting="node.keys_dir",
            ) from None
    if not settings.db_path.parent.is_dir():
        raise SettingsError("the database directory does not exist", setting="node.db_path")
    if settings.tls_enabled:
        assert settings.tls_cert is not None and settings.tls_key is not None
        check_tls_files(settings.tls_cert, settings.tls_key, now=now)


# --- node init ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NodeInitResult:
    directory: Path
    config_path: Path
    node_id: str
    fingerprint: str  # "SHA256:..." of the Ed25519 identity key: read it to peers out of band
    public_key: bytes
    tls_cert_sha256: str | None


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def node_init(
    directory: Path | str,
    node_id: str,
    url: str,
    passphrase: bytes | str,
    rng: Callable[[int], bytes],
    now: int,
    *,
    listen_host: str = "127.0.0.1",
    listen_port: int | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    passphrase_env: str | None = DEFAULT_PASSPHRASE_ENV,
    passphrase_file: Path | None = None,
    scrypt_log2_n: int = DEFAULT_LOG2_N,
) -> NodeInitResult:
    """Create a node directory: ``config.toml``, sealed keys (0600), a TLS certificate (a
    self-signed P-256 one unless ``tls_cert``/``tls_key`` are given) and a migrated database.

    ``directory`` must not exist or be empty; on failure everything created is removed. The
    passphrase seals the keys; the config records only its source (``passphrase_env`` or
    ``passphrase_file``). Returns the identity fingerprint for the operator to share.
    """
    directory = Path(directory).resolve()
    if not _NODE_ID_RE.fullmatch(node_id):
        raise SettingsError(
            "node.id must be 2..63 characters of [A-Za-z0-9-], starting alphanumeric",
            setting="node.id",
        )
    url = url.rstrip("/")
    _check_url(url, tls_enabled=True)
    check_passphrase(passphrase, setting="passphrase")
    if (tls_cert is None) != (tls_key is None):
        raise SettingsError("give both tls_cert and tls_key, or neither", setting="tls.cert")
    if passphrase_file is not None:
        passphrase_env = None
    if passphrase_env is not None and not _ENV_NAME_RE.fullmatch(passphrase_env):
        raise SettingsError(
            "passphrase_env must name an environment variable", setting="secrets.passphrase_env"
        )
    if tls_cert is not None and tls_key is not None:
        check_tls_files(Path(tls_cert), Path(tls_key), now=now)
    created_dir = not directory.exists()
    if not created_dir and any(directory.iterdir()):
        raise ConflictError("the node directory is not empty; refusing to touch it")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return _populate(
            directory,
            node_id=node_id,
            url=url,
            passphrase=passphrase,
            rng=rng,
            now=now,
            listen_host=listen_host,
            listen_port=listen_port if listen_port is not None else urlsplit(url).port or 8443,
            tls_cert=tls_cert,
            tls_key=tls_key,
            passphrase_env=passphrase_env,
            passphrase_file=passphrase_file,
            scrypt_log2_n=scrypt_log2_n,
        )
    except BaseException:
        if created_dir:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _populate(
    directory: Path,
    *,
    node_id: str,
    url: str,
    passphrase: bytes | str,
    rng: Callable[[int], bytes],
    now: int,
    listen_host: str,
    listen_port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    passphrase_env: str | None,
    passphrase_file: Path | None,
    scrypt_log2_n: int,
) -> NodeInitResult:
    keys = NodeKeys.generate(rng)
    keys.save(directory / "keys", passphrase, rng, log2_n=scrypt_log2_n)

    if tls_cert is None or tls_key is None:
        tls_cert, tls_key = directory / "tls" / "cert.pem", directory / "tls" / "key.pem"
        host = urlsplit(url).hostname or "localhost"
        tls_private = generate_tls_key(rng)
        cert = self_signed_certificate(
            tls_private, node_id=node_id, hosts=[host, "localhost", "127.0.0.1"], now=now, rng=rng
        )
        write_tls_files(tls_cert, tls_key, cert, tls_private)
    tls_info = check_tls_files(Path(tls_cert), Path(tls_key), now=now)

    data_dir = directory / "data"
    data_dir.mkdir(mode=0o700)
    Database.open(data_dir / "fiumatch.db", clock=lambda: now).close()

    secrets_line = (
        f"passphrase_file = {_toml_string(str(passphrase_file))}"
        if passphrase_file is not None
        else f"passphrase_env = {_toml_string(passphrase_env or DEFAULT_PASSPHRASE_ENV)}"
    )
    config = "\n".join(
        [
            f"# fiumatch node {node_id}: written by `fiumatch node init`.",
            "# Relative paths are relative to this file. Never put the passphrase here.",
            "",
            "[node]",
            f"id = {_toml_string(node_id)}",
            f"base_url = {_toml_string(url)}",
            'data_dir = "data"',
            'db_path = "data/fiumatch.db"',
            'keys_dir = "keys"',
            "",
            "[listen]",
            f"host = {_toml_string(listen_host)}",
            f"port = {int(listen_port)}",
            "",
            "[tls]",
            "enabled = true",
            f"cert = {_toml_string(_relative(Path(tls_cert), directory))}",
            f"key = {_toml_string(_relative(Path(tls_key), directory))}",
            "",
            "[secrets]",
            secrets_line,
            "",
        ]
    )
    config_path = directory / CONFIG_FILE
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(config)
        fh.flush()
        os.fsync(fh.fileno())
    return NodeInitResult(
        directory=directory,
        config_path=config_path,
        node_id=node_id,
        fingerprint=keys.fingerprint,
        public_key=keys.public_key_raw,
        tls_cert_sha256=tls_info.cert_sha256,
    )
