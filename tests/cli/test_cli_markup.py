"""What the CLI prints from users, files and remote nodes goes through rich escaped: a path,
a name, a column header or an error reason holding rich markup ('[/b]') or a terminal escape
is printed as text, never interpreted (unescaped it raised rich.errors.MarkupError)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from fiumatch.cli import agreements, peers, query
from fiumatch.cli._util import not_regular_files, shown
from fiumatch.cli.main import main
from fiumatch.client._cli import EXIT_REMOTE, run_api
from fiumatch.client.api import ApiError

MARKUP = "x[/b]y [bold]z[/] \x1b[31m"
CSV = "local_ref,type,name,birth_date\n"


def test_shown_escapes_markup_and_control_characters() -> None:
    from rich.console import Console

    console = Console(file=None, force_terminal=False, width=200, record=True)
    console.print(shown(MARKUP))
    assert console.export_text() == "x[/b]y [bold]z[/] \\x1b[31m\n"
    assert shown("plain name-1.csv") == "plain name-1.csv"


def test_ingest_prints_paths_holding_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # the summary table keeps the path on one line
    d = tmp_path / "x[/b]"
    (tmp_path / "x[").mkdir()
    d.mkdir(parents=True, exist_ok=True)
    (d / "t.csv").write_text(CSV + "r1,person,,1980-01-01\n", encoding="utf-8")
    (d / "h.csv").write_text("local_ref,type,name,[/i]\nr2,person,Ann Lee,\n", encoding="utf-8")
    code = main(["ingest", "--no-progress", "--rejects", str(d / "r.jsonl"),
                 str(d / "t.csv"), str(d / "h.csv")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "x[/b]/r.jsonl" in out and "[/i]" in out
    assert main(["ingest", "--no-progress", str(d / "absent.csv")]) == 2
    assert "x[/b]/absent.csv: no such file" in capsys.readouterr().err


def test_ingest_says_not_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    (tmp_path / "dir.csv").mkdir()
    for name, kind in (("fifo.csv", "FIFO"), ("zero.csv", "device"), ("dir.csv", "directory")):
        assert main(["ingest", "--no-progress", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"{name}: not a regular file" in err and kind in err and "no such" not in err
    assert [why for _, why in not_regular_files([tmp_path / "fifo.csv"])] == [
        "not a regular file (a device, FIFO or socket)"
    ]


class _Client:
    def peers(self) -> list[dict[str, Any]]:
        return [{"node_id": MARKUP, "url": "https://h/[/u]", "fingerprint": "SHA256:[/]"}]

    def agreements(self) -> list[dict[str, Any]]:
        return [
            {"id": "[/a]", "peer": MARKUP, "modes": ["[/m]"], "purposes": ["[red]"],
             "budget_per_epoch": 1, "max_set_size": 1, "valid_until": 0}
        ]  # fmt: skip


def test_tables_and_errors_from_a_node_print_markup_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace()
    assert peers._list(args, _Client()) == 0
    assert agreements._list(args, _Client()) == 0
    q = {
        "id": "q[/b]", "case_ref": "[/c]", "partial": True,
        "peers": [{"peer": MARKUP, "status": "refused", "hit_count": 0, "reason": "[/r]"}],
        "hits": [{"id": "h[/]", "peer": "[/p]", "local_ref": "[/l]", "name": "[/n]",
                  "key_types": [], "strength": 1}],
    }  # fmt: skip
    assert query._show(q, False) == EXIT_REMOTE
    out = capsys.readouterr().out
    for text in ("https://h/[/u]", "[/a]", "[/m]", "[red]", "q[/b]", "[/r]", "[/n]", "[/l]"):
        assert text in out, text
    assert "\x1b" not in out

    def refused(args: argparse.Namespace, client: Any) -> int:
        raise ApiError("bad [/b] thing", status=403, error_code="[/e]", details={"k": "[/d]"})

    runner = run_api(refused)
    ns = argparse.Namespace(dir=None, url="https://127.0.0.1:9", token=None, cacert=None)
    assert runner(ns) == EXIT_REMOTE
    err = capsys.readouterr().err
    assert "bad [/b] thing" in err and "[/e]" in err and "[/d]" in err
