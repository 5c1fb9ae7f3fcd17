"""``fiumatch node`` CLI: init creates a node that validates, refuses to start when a key file is
world-readable or the passphrase is a default; remote commands exit 3 when the node is down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fiumatch.cli.main import main
from fiumatch.errors import FiumatchError
from fiumatch.node.directory import open_node_dir


def _init(tmp_path: Path) -> Path:
    d = tmp_path / "n"
    assert (
        main(["node", "init", "--dir", str(d), "--node-id", "FIU-T", "--scrypt-log2n", "10"]) == 0
    )
    return d


def test_init_creates_a_valid_node_and_refuses_a_second_init(tmp_path: Path) -> None:
    d = _init(tmp_path)
    opened = open_node_dir(d, env={})
    assert opened.node_id == "FIU-T" and opened.url.startswith("https://127.0.0.1:")
    assert (d / "keys" / "identity.sealed").stat().st_mode & 0o077 == 0
    assert (d / "secrets" / "passphrase").stat().st_mode & 0o077 == 0
    secret = (d / "secrets" / "passphrase").read_text()
    assert len(secret) >= 32 and secret not in (d / "config.toml").read_text()
    assert main(["node", "init", "--dir", str(d), "--node-id", "FIU-T"]) == 1


def test_refuses_world_readable_key_and_default_passphrase(tmp_path: Path) -> None:
    d = _init(tmp_path)
    secret = d / "secrets" / "passphrase"
    real = secret.read_bytes()
    secret.write_bytes(b"changeme")
    with pytest.raises(FiumatchError) as err:
        open_node_dir(d, env={})
    assert err.value.code == "settings_error" and err.value.details == {
        "setting": "secrets.passphrase_file"
    }
    assert main(["node", "serve", "--dir", str(d)]) == 1
    secret.write_bytes(real)
    os.chmod(d / "keys" / "oprf-master.sealed", 0o644)
    with pytest.raises(FiumatchError) as err2:
        open_node_dir(d, env={})
    assert err2.value.code == "settings_error"
    assert err2.value.details == {"setting": "node.keys_dir"}
    assert "group or others" in err2.value.reason
    assert main(["node", "serve", "--dir", str(d)]) == 1
    os.chmod(d / "keys" / "oprf-master.sealed", 0o600)
    (d / "keys" / "identity.sealed").unlink()
    assert main(["node", "serve", "--dir", str(d)]) == 1


def test_remote_commands_exit_3_when_the_node_is_down(tmp_path: Path) -> None:
    d = _init(tmp_path)
    assert main(["peers", "list", "--dir", str(d)]) == 3
    assert main(["peers", "fingerprint", "https://127.0.0.1:9"]) == 3
