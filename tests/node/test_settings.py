"""Settings (TOML + environment) and node directory initialisation."""

from __future__ import annotations

import shutil
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fiumatch.node.errors import ConflictError, SettingsError
from fiumatch.node.keys import IDENTITY_FILE, MASTER_FILE, NodeKeys
from fiumatch.node.settings import (
    CONFIG_FILE,
    NodeInitResult,
    Settings,
    check_passphrase,
    load_settings,
    node_init,
    read_passphrase,
)
from fiumatch.store import Database, latest_version
from tests.node.helpers import det_rng

NOW = 1_760_000_000
PASSPHRASE = "Tq8#vL2m-Rw9zKx4"
ENV = {"FIUMATCH_PASSPHRASE": PASSPHRASE}


def _init(directory: Path, **kw: Any) -> NodeInitResult:
    kwargs: dict[str, Any] = {
        "node_id": "fiu-a",
        "url": "https://fiu-a.example:9443",
        "passphrase": PASSPHRASE,
        "rng": det_rng(),
        "now": NOW,
        "scrypt_log2_n": 10,
    }
    kwargs.update(kw)
    return node_init(directory, **kwargs)


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("nodes") / "fiu-a"
    _init(directory)
    return directory


def _load(config: Path, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    return load_settings(config, ENV if env is None else env, now=NOW, **kw)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


MINIMAL = """
[node]
id = "fiu-x"
base_url = "https://fiu-x.example"
[tls]
enabled = false
"""


# --- node init ----------------------------------------------------------------------------


def test_init_creates_a_node_that_loads(node_dir: Path) -> None:
    settings = _load(node_dir / CONFIG_FILE)
    assert settings.node_id == "fiu-a"
    assert settings.base_url == "https://fiu-a.example:9443"
    assert settings.listen_port == 9443
    assert settings.listen_host == "127.0.0.1"
    assert settings.db_path == node_dir / "data" / "fiumatch.db"
    assert settings.keys_dir == node_dir / "keys"
    assert settings.tls_enabled and settings.tls_cert == node_dir / "tls" / "cert.pem"
    assert settings.passphrase_env == "FIUMATCH_PASSPHRASE"
    keys = NodeKeys.load(settings.keys_dir, read_passphrase(settings, ENV))
    assert keys.fingerprint.startswith("SHA256:")
    with Database.open(settings.db_path) as db:
        assert db.schema_version() == latest_version()


def test_init_returns_the_identity_fingerprint(tmp_path: Path) -> None:
    result = _init(tmp_path / "n")
    keys = NodeKeys.load(tmp_path / "n" / "keys", PASSPHRASE)
    assert result.fingerprint == keys.fingerprint
    assert result.public_key == keys.public_key_raw
    assert result.tls_cert_sha256 is not None and len(result.tls_cert_sha256) == 95
    assert result.config_path == (tmp_path / "n" / CONFIG_FILE).resolve()


def test_init_writes_private_files_and_no_passphrase(node_dir: Path) -> None:
    for rel in ("keys/" + IDENTITY_FILE, "keys/" + MASTER_FILE, "tls/key.pem", CONFIG_FILE):
        assert stat.S_IMODE((node_dir / rel).stat().st_mode) == 0o600, rel
    assert stat.S_IMODE(node_dir.stat().st_mode) == 0o700
    for path in node_dir.rglob("*"):
        if path.is_file():
            assert PASSPHRASE.encode() not in path.read_bytes(), path
    config = tomllib.loads((node_dir / CONFIG_FILE).read_text())
    assert config["secrets"] == {"passphrase_env": "FIUMATCH_PASSPHRASE"}
    assert config["tls"]["cert"] == "tls/cert.pem"  # relative: the directory can move


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "something").write_text("x")
    with pytest.raises(ConflictError):
        _init(tmp_path / "n")
    assert [p.name for p in (tmp_path / "n").iterdir()] == ["something"]


def test_init_accepts_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    _init(tmp_path / "n")
    assert (tmp_path / "n" / CONFIG_FILE).exists()


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"passphrase": "changeme"}, "passphrase"),
        ({"passphrase": "fiumatchfiumatch"}, "passphrase"),
        ({"node_id": "Bad Id"}, "node.id"),
        ({"url": "http://fiu-a.example"}, "node.base_url"),
        ({"url": "fiu-a.example"}, "node.base_url"),
        ({"passphrase_env": "lower-case"}, "secrets.passphrase_env"),
        ({"tls_cert": Path("/x.pem")}, "tls.cert"),
    ],
)
def test_init_refuses_bad_input_before_writing(
    tmp_path: Path, kwargs: dict[str, Any], setting: str
) -> None:
    with pytest.raises(SettingsError) as info:
        _init(tmp_path / "n", **kwargs)
    assert info.value.setting == setting
    assert not (tmp_path / "n").exists()


def test_a_failure_half_way_removes_what_init_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("fiumatch.node.settings.Database.open", boom)
    with pytest.raises(RuntimeError):
        _init(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError):
        _init(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_init_with_operator_tls_files_and_a_passphrase_file(tmp_path: Path) -> None:
    first = _init(tmp_path / "first")
    cert, key = first.directory / "tls" / "cert.pem", first.directory / "tls" / "key.pem"
    pass_file = tmp_path / "pass"
    pass_file.write_text(PASSPHRASE + "\n")
    pass_file.chmod(0o600)
    _init(tmp_path / "second", tls_cert=cert, tls_key=key, passphrase_file=pass_file)
    assert not (tmp_path / "second" / "tls").exists()
    settings = _load(tmp_path / "second" / CONFIG_FILE, env={})
    assert settings.tls_cert == cert and settings.passphrase_file == pass_file
    assert settings.passphrase_env is None
    assert read_passphrase(settings, {}) == PASSPHRASE.encode()


# --- load_settings -----------------------------------------------------------------------


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    s = _load(_write(tmp_path, MINIMAL), check_files=False)
    assert s.data_dir == tmp_path.resolve() / "data"
    assert s.db_path == tmp_path.resolve() / "data" / "fiumatch.db"
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 8443)
    assert s.epoch_rotation_seconds == 7 * 86400
    assert (s.signature_skew_seconds, s.signature_max_lifetime_seconds) == (30, 300)
    assert s.passphrase_env == "FIUMATCH_PASSPHRASE" and s.passphrase_file is None
    assert s.tls_cert is None
    with pytest.raises(AttributeError):
        s.node_id = "other"  # type: ignore[misc]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        **ENV,
        "FIUMATCH_LISTEN_PORT": "9999",
        "FIUMATCH_LISTEN_HOST": "0.0.0.0",
        "FIUMATCH_NODE_DATA_DIR": "/srv/fiumatch",
        "FIUMATCH_LOG_LEVEL": "DEBUG",
        "FIUMATCH_SESSIONS_MAX_OPEN_PER_PEER": "9",
        "FIUMATCH_UNRELATED": "ignored",
    }
    s = _load(_write(tmp_path, MINIMAL), env, check_files=False)
    assert (s.listen_port, s.listen_host) == (9999, "0.0.0.0")
    assert s.data_dir == Path("/srv/fiumatch")
    assert s.db_path == Path("/srv/fiumatch/fiumatch.db")
    assert s.log_level == "debug"
    assert s.session_max_open_per_peer == 9


def test_audit_checkpoint_settings(tmp_path: Path) -> None:
    s = _load(_write(tmp_path, MINIMAL), check_files=False)
    assert (s.audit_checkpoint_every, s.audit_checkpoint_seconds) == (1000, 10)
    text = MINIMAL + "[audit]\ncheckpoint_every = 50\ncheckpoint_seconds = 2\n"
    s = _load(_write(tmp_path, text), check_files=False)
    assert (s.audit_checkpoint_every, s.audit_checkpoint_seconds) == (50, 2)
    env = {**ENV, "FIUMATCH_AUDIT_CHECKPOINT_EVERY": "7"}
    assert _load(_write(tmp_path, text), env, check_files=False).audit_checkpoint_every == 7


def test_compute_settings(tmp_path: Path) -> None:
    s = _load(_write(tmp_path, MINIMAL), check_files=False)
    assert (s.compute_workers, s.compute_parallel_min_elements) == (0, 4096)
    assert s.compute_dask_scheduler is None
    text = MINIMAL + '[compute]\nworkers = 1\ndask_scheduler = "tls://10.0.0.5:8786"\n'
    s = _load(_write(tmp_path, text), check_files=False)
    assert (s.compute_workers, s.compute_dask_scheduler) == (1, "tls://10.0.0.5:8786")


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("0", False), ("yes", True)])
def test_boolean_environment_values(tmp_path: Path, value: str, expected: bool) -> None:
    env = {**ENV, "FIUMATCH_TLS_ENABLED": value}
    text = MINIMAL.replace("enabled = false", 'cert = "c.pem"\nkey = "k.pem"')
    assert _load(_write(tmp_path, text), env, check_files=False).tls_enabled is expected


@pytest.mark.parametrize(
    ("text", "env", "setting"),
    [
        (MINIMAL + '[secrets]\npassphrase = "Tq8#vL2m-Rw9zKx4"\n', {}, "secrets.passphrase"),
        ('passphrase = "x"\n' + MINIMAL, {}, "passphrase"),
        (MINIMAL + "[listen]\nprot = 1\n", {}, "listen.prot"),
        (MINIMAL + "[nonsense]\nx = 1\n", {}, "nonsense.x"),
        (MINIMAL.replace('id = "fiu-x"', ""), {}, "node.id"),
        (MINIMAL.replace('"fiu-x"', '"FIU X"'), {}, "node.id"),
        (MINIMAL, {"FIUMATCH_LISTEN_PORT": "eighty"}, "listen.port"),
        (MINIMAL, {"FIUMATCH_LISTEN_PORT": "70000"}, "listen.port"),
        (MINIMAL, {"FIUMATCH_TLS_ENABLED": "maybe"}, "tls.enabled"),
        (MINIMAL, {"FIUMATCH_TLS_ENABLED": "true"}, "tls.cert"),
        (MINIMAL + "[listen]\nport = true\n", {}, "listen.port"),
        (MINIMAL + '[listen]\nport = "80"\n', {}, "listen.port"),
        (MINIMAL + "[log]\nlevel = 'loud'\n", {}, "log.level"),
        (MINIMAL + "[epochs]\nrotation_seconds = 60\n", {}, "epochs.rotation_seconds"),
        (MINIMAL + "[audit]\ncheckpoint_every = 0\n", {}, "audit.checkpoint_every"),
        (MINIMAL, {"FIUMATCH_AUDIT_CHECKPOINT_SECONDS": "0"}, "audit.checkpoint_seconds"),
        (MINIMAL + "[audit]\ncheckpoint_seconds = 1.5\n", {}, "audit.checkpoint_seconds"),
        (MINIMAL + "[audit]\nevery = 10\n", {}, "audit.every"),
        (MINIMAL + "[compute]\nworkers = -1\n", {}, "compute.workers"),
        (MINIMAL, {"FIUMATCH_COMPUTE_PARALLEL_MIN_ELEMENTS": "0"}, "compute.parallel_min_elements"),
        (MINIMAL, {"FIUMATCH_COMPUTE_DASK_SCHEDULER": "http://x:1"}, "compute.dask_scheduler"),
        (MINIMAL + '[compute]\ndask_scheduler = "tcp://x"\n', {}, "compute.dask_scheduler"),
        (MINIMAL.replace("https://fiu-x.example", "ftp://x"), {}, "node.base_url"),
        (MINIMAL.replace("https://fiu-x.example", "https://u:p@x"), {}, "node.base_url"),
        (
            MINIMAL + '[secrets]\npassphrase_env = "A"\npassphrase_file = "f"\n',
            {},
            "secrets.passphrase_env",
        ),
        (MINIMAL + '[secrets]\npassphrase_env = "not valid"\n', {}, "secrets.passphrase_env"),
        ("[node\n", {}, "config"),
    ],
)
def test_invalid_settings_are_refused_by_name(
    tmp_path: Path, text: str, env: dict[str, str], setting: str
) -> None:
    with pytest.raises(SettingsError) as info:
        _load(_write(tmp_path, text), {**ENV, **env}, check_files=False)
    assert info.value.setting == setting
    assert info.value.code == "settings_error"
    assert "Tq8#vL2m" not in str(info.value)


def test_https_is_required_only_with_tls(tmp_path: Path) -> None:
    text = MINIMAL.replace("https://", "http://")
    assert _load(_write(tmp_path, text), check_files=False).base_url == "http://fiu-x.example"
    tls_on = text.replace("enabled = false", 'cert = "c"\nkey = "k"')
    with pytest.raises(SettingsError) as info:
        _load(_write(tmp_path, tls_on), check_files=False)
    assert info.value.setting == "node.base_url"


def test_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        _load(tmp_path / "absent.toml")
    assert info.value.setting == "config"


# --- the file checks a starting node runs --------------------------------------------------


def _copy_node(node_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "node"
    shutil.copytree(node_dir, target)
    return target


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({}, "secrets.passphrase_env"),
        ({"FIUMATCH_PASSPHRASE": ""}, "secrets.passphrase_env"),
        ({"FIUMATCH_PASSPHRASE": "changeme"}, "secrets.passphrase_env"),
        ({"FIUMATCH_PASSPHRASE": "short-Pw1"}, "secrets.passphrase_env"),
    ],
)
def test_a_missing_or_weak_passphrase_refuses_start(
    node_dir: Path, env: dict[str, str], setting: str
) -> None:
    with pytest.raises(SettingsError) as info:
        _load(node_dir / CONFIG_FILE, env)
    assert info.value.setting == setting


def test_missing_or_exposed_key_files_refuse_start(node_dir: Path, tmp_path: Path) -> None:
    node = _copy_node(node_dir, tmp_path)
    config = node / CONFIG_FILE
    assert _load(config).node_id == "fiu-a"

    (node / "keys" / MASTER_FILE).chmod(0o640)
    with pytest.raises(SettingsError) as info:
        _load(config)
    assert info.value.setting == "node.keys_dir"
    assert "chmod 600" in info.value.reason
    (node / "keys" / MASTER_FILE).chmod(0o600)

    (node / "keys" / IDENTITY_FILE).rename(node / "moved")
    with pytest.raises(SettingsError) as info:
        _load(config)
    assert info.value.setting == "node.keys_dir"
    (node / "moved").rename(node / "keys" / IDENTITY_FILE)

    (node / "tls" / "key.pem").chmod(0o644)
    with pytest.raises(SettingsError) as info:
        _load(config)
    assert info.value.setting == "tls.key"
    (node / "tls" / "key.pem").chmod(0o600)

    (node / "tls" / "cert.pem").unlink()
    with pytest.raises(SettingsError) as info:
        _load(config)
    assert info.value.setting == "tls.cert"
    assert _load(config, check_files=False).node_id == "fiu-a"


def test_a_passphrase_file_must_exist_be_private_and_strong(node_dir: Path, tmp_path: Path) -> None:
    node = _copy_node(node_dir, tmp_path)
    config = node / CONFIG_FILE
    pass_file = tmp_path / "pass"
    env = {"FIUMATCH_SECRETS_PASSPHRASE_FILE": str(pass_file)}
    with pytest.raises(SettingsError) as info:
        _load(config, env)  # the file names passphrase_env, the environment a passphrase_file
    assert info.value.setting == "secrets.passphrase_env"
    assert "only one" in info.value.reason
    config.write_text(config.read_text().replace('passphrase_env = "FIUMATCH_PASSPHRASE"', ""))
    with pytest.raises(SettingsError) as info:
        _load(config, env)
    assert info.value.setting == "secrets.passphrase_file"  # missing
    pass_file.write_text(PASSPHRASE)
    pass_file.chmod(0o644)
    with pytest.raises(SettingsError) as info:
        _load(config, env)
    assert info.value.setting == "secrets.passphrase_file"
    pass_file.chmod(0o600)
    assert read_passphrase(_load(config, env), env) == PASSPHRASE.encode()
    pass_file.write_text("changeme\n")
    with pytest.raises(SettingsError):
        _load(config, env)


@pytest.mark.parametrize(
    "weak",
    [
        "",
        "sh0rt!",
        "changeme",
        "fiumatch",
        "CHANGEME-CHANGEME",
        "fiumatch-fiumatch",
        "example-passphrase-2024",
        "aaaaaaaaaaaaaaaaaaaa",
        "abababababab",
        "Passphrase!!Passphrase!!",
        "correct horse battery staple",
    ],
)
def test_weak_passphrases_are_refused(weak: str) -> None:
    with pytest.raises(SettingsError) as info:
        check_passphrase(weak, setting="secrets.passphrase_env")
    assert info.value.setting == "secrets.passphrase_env"
    if weak:
        assert weak not in str(info.value)


@pytest.mark.parametrize(
    "good", [PASSPHRASE, "purple-otter-quantum-ledger", b"\x8a\x01" * 3 + bytes(range(40, 60))]
)
def test_reasonable_passphrases_pass(good: str | bytes) -> None:
    check_passphrase(good, setting="x")
