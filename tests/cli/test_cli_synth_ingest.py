"""`fiumatch synth` then `fiumatch ingest`: files, reports and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fiumatch.cli.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_synth_then_ingest_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    code = main(["synth", "-j", "DE,RU", "-n", "30", "--seed", "4", "--format", "all",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "DE.csv", "RU.csv", "DE.ftm.json", "RU.ftm.json", "DE.goaml.xml", "RU.goaml.xml",
        "ground_truth.csv",
    }  # fmt: skip
    subjects = tmp_path / "subjects.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    code = main(["ingest", str(out / "DE.csv"), str(out / "RU.goaml.xml"), "--out",
                 str(subjects), "--rejects", str(rejects), "--no-progress"])  # fmt: skip
    assert code == 0
    lines = [json.loads(x) for x in subjects.read_text(encoding="utf-8").splitlines()]
    assert len(lines) >= 55
    assert all(k["hex"].startswith(b"fiumatch-mk".hex()) for row in lines for k in row["keys"])
    assert rejects.read_text(encoding="utf-8") == ""
    assert "subjects loaded" in capsys.readouterr().out


def test_ingest_with_rejects_exits_1(tmp_path: Path) -> None:
    rejects = tmp_path / "r.jsonl"
    code = main(["ingest", str(FIXTURES / "goaml_report.xml"), "--rejects", str(rejects),
                 "--no-progress"])  # fmt: skip
    assert code == 1
    entries = [json.loads(x) for x in rejects.read_text(encoding="utf-8").splitlines()]
    assert entries[0]["field"] == "iban" and entries[0]["code"] == "bad_checksum"
    assert set(entries[0]) == {"file", "line", "record", "field", "code", "reason"}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main(["ingest", str(tmp_path / "missing.csv"), "--no-progress"]) == 2
    odd = tmp_path / "notes.txt"
    odd.write_text("x", encoding="utf-8")
    assert main(["ingest", str(odd), "--no-progress", "--rejects", str(tmp_path / "r")]) == 2
    assert main(["synth", "-j", "DE,ZZ", "--out", str(tmp_path / "o")]) == 2
    assert main(["synth", "--format", "pdf", "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["synth"])  # --out is required
    assert info.value.code == 2


def test_ingest_with_workers_writes_the_serial_output(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert main(["synth", "-j", "DE,CN", "-n", "60", "--seed", "9", "--out", str(out)]) == 0
    outputs = []
    for workers in ("1", "2"):
        subjects = tmp_path / f"subjects-{workers}.jsonl"
        code = main(["ingest", str(out / "DE.csv"), str(out / "CN.csv"), "--workers", workers,
                     "--out", str(subjects), "--rejects", str(tmp_path / "r.jsonl"),
                     "--no-progress"])  # fmt: skip
        assert code == 0
        outputs.append(subjects.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 120
    assert main(["ingest", str(out / "DE.csv"), "--workers", "0", "--no-progress"]) == 2


def test_workers_default_to_cores_only_for_large_csv(tmp_path: Path) -> None:
    import os

    from fiumatch.cli.ingest import PARALLEL_MIN_BYTES, workers_for

    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("local_ref,type\n", encoding="utf-8")
    big.write_bytes(b"x" * PARALLEL_MIN_BYTES)
    assert workers_for(small, None, None) == 1
    assert workers_for(big, None, None) == (os.cpu_count() or 1)
    assert workers_for(big, "goaml", None) == 1
    assert workers_for(small, None, 3) == 3


def test_cli_default_workers_follow_the_ingest_default(tmp_path: Path) -> None:
    import os

    from fiumatch.cli.ingest import workers_for
    from fiumatch.ingest import default_workers

    if (os.cpu_count() or 1) == 1:
        pytest.skip("one core: every default is 1")
    medium = tmp_path / "medium.csv"
    medium.write_bytes(b"x" * (2 << 20))
    assert workers_for(medium, None, None) == default_workers(medium) == 1
    from fiumatch.cli.ingest import PARALLEL_MIN_BYTES as cli_threshold
    from fiumatch.ingest import PARALLEL_MIN_BYTES as ingest_threshold

    assert cli_threshold == ingest_threshold
