"""``fiumatch node`` CLI: init creates a node that validates, refuses to start when a key file is
world-readable or the passphrase is a default; remote commands exit 3 when the node is down."""

from __future__ import annotations

import json
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


def test_serve_flags_are_checked_as_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dask and --workers go through the settings' own validation: refused by name."""
    d = _init(tmp_path)
    names = ("FIUMATCH_COMPUTE_DASK_SCHEDULER", "FIUMATCH_COMPUTE_WORKERS")
    saved = {n: os.environ.pop(n, None) for n in names}
    try:
        assert main(["node", "serve", "--dir", str(d), "--dask", "http://10.0.0.5:8786"]) == 1
        assert "compute.dask_scheduler" in capsys.readouterr().err
        os.environ.pop(names[0])
        assert main(["node", "serve", "--dir", str(d), "--workers", "-2"]) == 1
        assert "compute.workers" in capsys.readouterr().err
    finally:  # the flags set these for the server process: never leak them into other tests
        for n, v in saved.items():
            os.environ.pop(n, None)
            if v is not None:
                os.environ[n] = v


def test_remote_commands_exit_3_when_the_node_is_down(tmp_path: Path) -> None:
    d = _init(tmp_path)
    assert main(["peers", "list", "--dir", str(d)]) == 3
    assert main(["peers", "fingerprint", "https://127.0.0.1:9"]) == 3


_HEADER = "local_ref,type,name,birth_date\n"


def _subjects(d: Path) -> int:
    store = open_node_dir(d, env={}).open_store()
    try:
        return int(store.subjects.count())
    finally:
        store.close()


def test_load_writes_a_reject_report_and_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _init(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text(
        _HEADER + "g1,person,John Smith,1980-01-01\nb1,person,,1980-01-01\n"
    )
    capsys.readouterr()
    assert main(["node", "load", "--dir", str(d), "--no-progress", "in.csv"]) == 1
    out = capsys.readouterr().out
    assert "in.csv: loaded 1 subjects, 1 records rejected" in out
    assert "in.csv line 3 (record b1): name:" in out
    # By default the report stays with the node's data, never in the working directory.
    (report_path,) = (d / "rejects").glob("load-*.jsonl")
    assert f"-> {report_path}" in out.replace("\n", "")
    assert not (tmp_path / "rejects.jsonl").exists()
    report = [json.loads(x) for x in report_path.read_text().splitlines()]
    assert [(r["file"], r["line"], r["record"], r["field"]) for r in report] == [
        ("in.csv", 3, "b1", "name")
    ]
    assert _subjects(d) == 1
    # Everything loads: exit 0, an empty report at the path asked for.
    (tmp_path / "ok.csv").write_text(_HEADER + "g2,person,Jane Doe,1975-05-06\n")
    rej = tmp_path / "r2.jsonl"
    assert main(["node", "load", "--dir", str(d), "--no-progress", "--rejects", str(rej),
                 "ok.csv"]) == 0  # fmt: skip
    assert rej.read_text() == "" and _subjects(d) == 2


@pytest.mark.parametrize("name", ["missing.csv", "dir.csv", "fifo.csv", "zero.csv", "x[/b].txt"])
def test_load_refuses_what_is_not_a_regular_csv_file_and_changes_nothing(
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = _init(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.csv").mkdir()
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    (tmp_path / "x[").mkdir()
    (tmp_path / "x[/b].txt").write_text(_HEADER)  # no format can be guessed from '.txt'
    (tmp_path / "good.csv").write_text(_HEADER + "g1,person,John Smith,1980-01-01\n")
    capsys.readouterr()
    code = main(["node", "load", "--dir", str(d), "--no-progress", "good.csv", name])
    err = capsys.readouterr().err
    assert code == 2 and name in err, err
    assert _subjects(d) == 0 and not (tmp_path / "rejects.jsonl").exists()
    assert not (d / "rejects").exists()
