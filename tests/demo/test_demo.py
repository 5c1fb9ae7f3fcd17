"""``fiumatch demo``: three real nodes answer every exchange, the tables say what each side
learned in words, and nothing is left running afterwards."""

from __future__ import annotations

import re
import socket

import pytest

from fiumatch.cli.main import main
from fiumatch.node import runner

pytestmark = pytest.mark.slow


def test_the_demo_runs_three_nodes_prints_tidy_tables_and_stops_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at the terminal width otherwise
    running = set(runner._RUNNING)  # other tests' node processes may be up
    assert main(["demo", "--subjects", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    ports = [int(p) for p in re.findall(r"FIU-(?:DE|FR|LV) https://127\.0\.0\.1:(\d+)", out)]
    assert len(ports) == 3
    assert "What each side learned" in out and "demo finished" in out
    for exchange in ("filter  FIU-DE", "mutual  FIU-FR", "cardinality  FIU-LV", "disclosure"):
        assert exchange in out
    hits = out.split("FIU-DE hits (filter mode)", 1)[1]
    assert re.search(r"\b(strong|composite|phonetic)\b", hits)
    assert "report party" in hits and "/activity/" not in hits  # goAML paths read as words
    assert "released:" in out
    # Nothing left running: every node process is gone and its port is closed.
    assert running == runner._RUNNING
    for port in ports:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex(("127.0.0.1", port)) != 0
