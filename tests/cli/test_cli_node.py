"""``fiumatch node`` CLI: init creates a node that validates, refuses to start when a key file is
world-readable or the passphrase is a default; remote commands exit 3 when the node is down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fiumatch.cli.main import main
from fiumatch.errors import FiumatchError
from fiumatch.node.service import load_config


def _init(tmp_path: Path) -> Path:
    d = tmp_path / "n"
    assert (
        main(["node", "init", "--dir", str(d), "--node-id", "FIU-T", "--scrypt-log2n", "10"]) == 0
    )
    return d


def test_init_creates_a_valid_node_and_refuses_a_second_init(tmp_path: Path) -> None:
    d = _init(tmp_path)
    config = load_config(d, env={})
    assert config.node_id == "FIU-T" and config.public_url.startswith("https://127.0.0.1:")
    assert (d / "keys" / "identity.sealed").stat().st_mode & 0o077 == 0
    assert main(["node", "init", "--dir", str(d), "--node-id", "FIU-T"]) == 1


def test_refuses_world_readable_key_and_default_passphrase(tmp_path: Path) -> None:
    d = _init(tmp_path)
    with pytest.raises(FiumatchError) as err:
        load_config(d, env={"FIUMATCH_PASSPHRASE": "changeme"})
    assert err.value.code == "settings_error"
    os.chmod(d / "keys" / "oprf-master.sealed", 0o644)
    with pytest.raises(FiumatchError) as err2:
        load_config(d, env={})
    assert err2.value.code == "insecure_key_file"
    assert main(["node", "serve", "--dir", str(d)]) == 1


def test_remote_commands_exit_3_when_the_node_is_down(tmp_path: Path) -> None:
    d = _init(tmp_path)
    assert main(["peers", "list", "--dir", str(d)]) == 3
    assert main(["peers", "fingerprint", "https://127.0.0.1:9"]) == 3
