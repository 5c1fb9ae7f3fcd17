"""The query command's per-peer progress bars and the readable subject references the CLI and the
demo print."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.progress import Progress, TextColumn

from fiumatch.cli.query import update_progress
from fiumatch.client._cli import key_types_text, readable_ref


def _peer(name: str, status: str, done: bool, stage: str, n: int, total: int) -> dict[str, Any]:
    return {
        "peer": name,
        "status": status,
        "done": done,
        "progress": {"stage": stage, "done": n, "total": total},
    }


def test_progress_bars_follow_stage_and_element_counts_per_peer() -> None:
    out = io.StringIO()
    with Progress(
        TextColumn("{task.fields[peer]} {task.fields[stage]}"),
        console=Console(file=out, width=100),
        auto_refresh=False,
    ) as progress:
        tasks: dict[str, Any] = {}
        q = {"peers": [_peer("FIU-FR", "queued", False, "queued", 0, 0)]}
        update_progress(progress, tasks, q)
        fr = progress.tasks[0]
        assert (fr.total, fr.completed, fr.fields["stage"]) == (None, 0, "queued")

        q = {
            "peers": [
                _peer("FIU-FR", "evaluating", False, "evaluating", 4096, 10000),
                _peer("FIU-LV", "opening", False, "opening", 0, 250),
            ]
        }
        update_progress(progress, tasks, q)
        assert set(tasks) == {"FIU-FR", "FIU-LV"} and len(progress.tasks) == 2
        fr, lv = progress.tasks
        assert (fr.total, fr.completed, fr.fields["stage"]) == (10000, 4096, "evaluating")
        assert (lv.total, lv.completed) == (250, 0)

        q = {
            "peers": [
                _peer("FIU-FR", "ok", True, "ok", 10000, 10000),
                _peer("FIU-LV", "unreachable", True, "opening", 0, 250),
            ]
        }
        update_progress(progress, tasks, q)
        fr, lv = progress.tasks
        assert fr.finished and fr.fields["stage"] == "ok"
        assert not lv.finished and lv.fields["stage"] == "unreachable"
        # A peer refused before anything was counted still ends as a finished bar.
        update_progress(progress, tasks, {"peers": [_peer("FIU-DE", "ok", True, "ok", 0, 0)]})
        assert progress.tasks[2].finished


def test_readable_ref_turns_a_goaml_path_into_words() -> None:
    assert (
        readable_ref("DE-SYNTH-11/activity/report_parties/report_party[2]/entity")
        == "DE-SYNTH-11 report party 2 (entity)"
    )
    assert (
        readable_ref("DE-SYNTH-11/activity/report_parties/report_party/person")
        == "DE-SYNTH-11 report party 1 (person)"
    )
    assert readable_ref("FR-11-0000001") == "FR-11-0000001"
    assert readable_ref("a/b") == "a/b"


def test_key_types_read_as_short_words() -> None:
    assert key_types_text(["passport", "person_name_dob", "org_registration_country"]) == (
        "passport, name+dob, org reg. no."
    )
    assert key_types_text(["type-99"]) == "type-99"
