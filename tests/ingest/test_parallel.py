"""Parallel CSV ingestion: the serial reader's output, in order, with bounded look-ahead;
workers frame their own byte ranges, and a guessed range end that falls inside a quoted field
is noticed and cut again exactly."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiumatch.identifiers import Subject
from fiumatch.ingest import IngestStats, Reject, read
from fiumatch.ingest import parallel as parallel_module
from fiumatch.ingest.csv_reader import read_csv
from fiumatch.ingest.parallel import read_csv_parallel

RETENTION = date(2031, 1, 1)

# Good rows, every kind of reject the framer and the builder produce, a quoted field that
# spans two lines, a blank line, and more rows than a few small batches hold.
ROWS = [
    "local_ref,type,name,birth_date,nationality,iban,phone,email",
    "G-1,person,Anna Schmidt,1980-01-01,DE,,,",
    "B-1,person,Bad Iban,1980-01-01,DE,DE88370400440532013000,,",
    '"M-1",person,"Hans ""Hansi""\nMüller",12.05.1980,DEU,,+49 30 1234567,',
    "",
    "B-2,person,Too many,1980,DE,,,,extra",
    "B-3,alien,Somebody,1980-01-01,DE,,,",
    "G-2,organisation,Acme GmbH,,DE,,+49 30 1234567,",
    *(f"E-{i},email,,,,,,user{i}@example.com" for i in range(40)),
    "B-4,person,Two Bad,1980-99-01,XQ,,,",
]


def _items(stream: object) -> list[tuple[str, ...]]:
    out = []
    for item in stream:  # type: ignore[attr-defined]
        if isinstance(item, Subject):
            out.append((item.subject_id, str(item.provenance), *(k.hex() for k in item.keys)))
        else:
            assert isinstance(item, Reject)
            out.append((repr(item),))
    return out


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("par") / "mixed.csv"
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def test_parallel_output_is_the_serial_output_in_order(csv_file: Path) -> None:
    serial_stats, parallel_stats = IngestStats(), IngestStats()
    serial = _items(read(csv_file, default_retention=RETENTION, stats=serial_stats))
    parallel = _items(
        read_csv_parallel(
            csv_file, source=csv_file.name, default_retention=RETENTION, stats=parallel_stats,
            workers=2, chunk_bytes=64, max_inflight=2,
        )
    )  # fmt: skip
    assert parallel == serial
    assert len(serial) >= 48 and any(len(row) == 1 for row in serial)  # subjects and rejects
    assert parallel_stats.records == serial_stats.records == len(ROWS) - 2  # header, blank
    assert parallel_stats.bytes_read == serial_stats.bytes_read == csv_file.stat().st_size


def test_read_with_workers_counts_like_serial(csv_file: Path) -> None:
    serial, parallel = IngestStats(), IngestStats()
    a = list(read(csv_file, default_retention=RETENTION, stats=serial))
    b = list(read(csv_file, default_retention=RETENTION, stats=parallel, workers=2))
    assert [type(x) for x in a] == [type(x) for x in b]
    assert serial.to_dict() == parallel.to_dict()
    assert serial.rejected_records == 4 and serial.rejects == 5 and serial.subjects == 43


def _read_rows_both_ways(
    path: Path, rows: list[str], chunk_bytes: int
) -> tuple[list[Subject | Reject], list[Subject | Reject]]:
    """Write ``rows`` as a CSV file; its items (whole objects) read serially and by two
    real worker processes."""
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    serial = list(read(path, default_retention=RETENTION, stats=IngestStats()))
    parallel = list(
        read_csv_parallel(
            path, source=path.name, default_retention=RETENTION, stats=IngestStats(),
            workers=2, chunk_bytes=chunk_bytes,
        )
    )
    return serial, parallel


def test_parallel_subjects_equal_serial_ones_with_their_own_retention(tmp_path: Path) -> None:
    # Results cross from the workers as marshal blobs, which hold no dates: a record's own
    # retention date travels as an ordinal, the default as nothing.
    rows = ["local_ref,type,retention_until,name,birth_date,nationality"]
    rows += [f"R-{i},person,{'2035-06-0' + str(i % 9 + 1) if i % 2 else ''},Anna Schmidt {i},"
             f"1980-01-01,DE" for i in range(30)]  # fmt: skip
    serial, parallel = _read_rows_both_ways(tmp_path / "retention.csv", rows, chunk_bytes=128)
    assert parallel == serial and len(serial) == 30
    assert all(isinstance(s, Subject) for s in parallel)
    retained = {s.retention_until for s in parallel if isinstance(s, Subject)}
    assert RETENTION in retained and date(2035, 6, 2) in retained


def test_hostile_values_are_rejected_alike_in_parallel(tmp_path: Path) -> None:
    # Workers skip the per-value check for rows plain_row clears; the rest must still get it.
    from fiumatch.ingest.build import MAX_VALUE_CHARS, plain_row

    long = "A" * (MAX_VALUE_CHARS + 1)
    rows = ["local_ref,type,name,birth_date,nationality,extra"]
    rows += [f"OK-{i},person,Anna Schmidt,1980-01-01,DE," for i in range(20)]
    rows += [f"LONG,person,{long},1980-01-01,DE,", "NUL,person,An\x00na,1980-01-01,DE,",
             f"EXTRA,person,Anna Weber,1980-01-01,DE,{long}\x00"]  # fmt: skip
    serial, parallel = _read_rows_both_ways(tmp_path / "hostile.csv", rows, chunk_bytes=256)
    assert parallel == serial
    rejected = {r.record: r.reason for r in serial if isinstance(r, Reject)}
    assert set(rejected) == {"LONG", "NUL"}  # an unknown column is never read
    assert "longer than" in rejected["LONG"] and "NUL" in rejected["NUL"]
    assert plain_row(["a", "b"]) and not plain_row(["a\x00"]) and not plain_row([long])


def _workers() -> set[int]:
    """Live worker processes: on Linux the fork server's children, our grandchildren."""
    me = psutil.Process()
    return {
        p.pid for p in me.children(recursive=True)
        if p.ppid() != me.pid and p.status() != psutil.STATUS_ZOMBIE
    }  # fmt: skip


def test_look_ahead_is_bounded_and_early_close_stops_the_workers(csv_file: Path) -> None:
    # Other tests' processes (node fixtures with their own pools) may be grandchildren too:
    # only the workers this stream starts count.
    before = _workers()
    stats = IngestStats()
    stream = read_csv_parallel(
        csv_file, source="s", default_retention=RETENTION, stats=stats,
        workers=2, chunk_bytes=64, max_inflight=2,
    )  # fmt: skip
    first = next(stream)
    assert isinstance(first, Subject) and first.local_ref == "G-1"
    # Only the first chunk's rows are counted (64 bytes: at most two rows) ...
    assert stats.records <= 2
    # ... and at most max_inflight chunks were handed out: the file was not read ahead.
    assert 0 < stats.bytes_read < 2 * 64 + 64
    assert _workers() - before, "the pool should be running"
    stream.close()
    deadline = time.monotonic() + 10
    while _workers() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _workers() - before


def test_bad_arguments(csv_file: Path) -> None:
    with pytest.raises(ValueError):
        next(read_csv_parallel(csv_file, source="s", default_retention=RETENTION,
                               stats=IngestStats(), workers=0))  # fmt: skip
    with pytest.raises(ValueError):
        next(read_csv_parallel(csv_file, source="s", default_retention=RETENTION,
                               stats=IngestStats(), workers=2, chunk_bytes=0))  # fmt: skip


def test_warm_up_names_real_regions_and_runs() -> None:
    import phonenumbers

    from fiumatch.ingest import parallel, warmup

    assert set(warmup.REGIONS) <= phonenumbers.SUPPORTED_REGIONS
    warmup.warm()  # again: must not raise, whatever it rejects
    assert "fiumatch.ingest.warmup" in parallel._PRELOAD


class _InlinePool:
    """A ProcessPoolExecutor stand-in that runs each task at once in this process, so the
    chunking can be checked on many small files without starting processes."""

    def __init__(self, **_: Any) -> None:
        self.tasks = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.tasks += 1
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, **_: Any) -> None:
        pass


def _inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_module, "ProcessPoolExecutor", _InlinePool)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # the workers' GC, not this process's


def _both(path: Path, chunk_bytes: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    serial_stats, parallel_stats = IngestStats(), IngestStats()
    serial = _items(read_csv(path, source="s", default_retention=RETENTION, stats=serial_stats))
    parallel = _items(read_csv_parallel(
        path, source="s", default_retention=RETENTION, stats=parallel_stats, workers=2,
        chunk_bytes=chunk_bytes, max_inflight=3,
    ))  # fmt: skip
    assert (parallel_stats.records, parallel_stats.bytes_read, parallel_stats.ignored_columns) \
        == (serial_stats.records, serial_stats.bytes_read, serial_stats.ignored_columns)
    return serial, parallel


# Pieces of CSV text that stress framing: quotes where RFC 4180 allows them and where it
# does not (a stray quote in an unquoted field flips the quote parity the chunker guesses
# from), every line break, bytes that are not UTF-8, multi-byte characters, NUL.
_PIECES = st.sampled_from([
    "E-1", "email", "a@example.com", "person", "Анна", "Müller", "1980", ",", ",", ",",
    "\n", "\n", "\r\n", "\r", '"', '""', '"x\ny"', "O\"Brien", "\x00", "\udcff", "é",
])  # fmt: skip


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(body=st.lists(_PIECES, max_size=60), chunk_bytes=st.integers(1, 40))
def test_chunked_framing_is_the_serial_framing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: list[str], chunk_bytes: int
) -> None:
    _inline(monkeypatch)
    path = tmp_path / "fuzz.csv"
    text = "local_ref,type,email,extra\n" + "".join(body) + "\nE-9,email,z@example.com,\n"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    serial, parallel = _both(path, chunk_bytes)
    assert parallel == serial


def test_a_stray_quote_is_recut_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _inline(monkeypatch)
    calls: list[tuple[int, int]] = []
    exact = parallel_module._exact_cut

    def spy(fh: Any, start: int, at_least: int) -> tuple[int, int, bool]:
        calls.append((start, at_least))
        return exact(fh, start, at_least)

    monkeypatch.setattr(parallel_module, "_exact_cut", spy)
    path = tmp_path / "stray.csv"
    # A quote inside an unquoted field (the csv module keeps it as is), then a quoted field
    # holding a line break: the quote parity the chunker guesses from is wrong inside it.
    rows = [f"E-{i},email,o{i}@example.com" for i in range(30)]
    rows[3] = 'E-3,email,O"Brien@example.com'
    rows[5] = 'E-5,email,"o5\n@example.com"'
    rows[6] = 'E-6,email,"o6\n@example.com"'
    path.write_text("local_ref,type,email\n" + "\n".join(rows) + "\n", encoding="utf-8")
    serial, parallel = _both(path, 100)
    assert parallel == serial and len(serial) == 30
    assert calls, "the stray quote should have made a guessed end wrong"
    # A row longer than a chunk, quoted across line breaks, and CRLF line ends.
    path.write_bytes(b'\xef\xbb\xbflocal_ref,type,email,note\r\n'
                     + b'E-1,email,a@example.com,"' + b"long\r\n" * 50 + b'"\r\n'
                     + b"E-2,email,b@example.com,\r\n")  # fmt: skip
    serial, parallel = _both(path, 16)
    assert parallel == serial and len(serial) == 2
    assert "line 53" in serial[1][1]


def test_worker_framing_names_the_line_of_a_broken_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inline(monkeypatch)
    path = tmp_path / "broken.csv"
    path.write_bytes(b"local_ref,type,email\n" + b"E-1,email,a@example.com\n" * 20
                     + b"E-2,email\nE-3,email,\xff@example.com\n")  # fmt: skip
    serial, parallel = _both(path, 50)
    assert parallel == serial
    assert [r for r in parallel if len(r) == 1] == [
        (repr(Reject(str(path), 22, "line 22", "<row>", "broken_row",
                     "row has 2 fields, header has 3")),),
        (repr(Reject(str(path), 23, "line 23", "<row>", "broken_row", "row is not UTF-8")),),
    ]


def test_default_workers_only_for_large_csv(tmp_path: Path) -> None:
    import os

    from fiumatch.ingest import PARALLEL_MIN_BYTES, default_workers

    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("local_ref,type\n", encoding="utf-8")
    big.write_bytes(b"x" * PARALLEL_MIN_BYTES)
    assert default_workers(small) == 1
    assert default_workers(big) == (os.cpu_count() or 1)
    assert default_workers(big, "goaml") == 1
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_bytes(b"x" * PARALLEL_MIN_BYTES)
    assert default_workers(jsonl) == 1
    assert default_workers(jsonl, "csv") == (os.cpu_count() or 1)


# Every kind of bad value the builder rejects, and rows the framer rejects.
_BAD_ROWS = [
    "B-1,person,Bad Iban,1980-01-01,DE,DE88370400440532013000,,,,,,,",
    "B-2,person,Bad Date,31.02.1980,DE,,,,,,,,",
    "B-3,person,X,1980,XQ,,12,nope,1,123456789,DE,,",
    "B-4,alien,,,,,,,,,,,",
    ",person,--,1980,,,,,,,,,",
    "B-5,organisation,Acme,,DE,,,,,,,1,123",
    "B-6,bank_account,,,DE,,,,,,,,",
    "B-7,crypto_wallet,,,,,,,,,,,0x12",
    "B-8,person,Row too short",
    "B-9,person," + "\ufdfa" * 300 + ",1980,,,,,,,,,",
]
_BAD_HEADER = ("local_ref,type,name,birth_date,nationality,iban,phone,email,passport_number,"
               "tax_id,tax_id_country,registration_number,wallet_address")  # fmt: skip


def test_building_rejects_leaves_no_reference_cycles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers never run the cyclic collector (see fiumatch.ingest.parallel): garbage
    # that only it could free would pile up for as long as a worker lives.
    monkeypatch.setattr(gc, "freeze", lambda: None)  # else the garbage is frozen, not found
    warm, fresh = tmp_path / "warm.csv", tmp_path / "fresh.csv"
    warm.write_text("\n".join([_BAD_HEADER, *_BAD_ROWS]) + "\n", encoding="utf-8")
    # The same mistakes in values not seen yet, so no cache answers for the normalisers.
    other = [r.replace("1980", "1981").replace("DE8837", "DE8737").replace(",12,", ",13,")
             .replace("nope", "nope2").replace("123456789", "223456789").replace("0x12", "0x13")
             for r in _BAD_ROWS]  # fmt: skip
    fresh.write_text("\n".join([_BAD_HEADER, *other]) + "\n", encoding="utf-8")
    for path in (warm, fresh):  # the first loads what libraries load on first use
        head = parallel_module._header(path)
        assert head is not None
        header, start, line = head
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            records, clean, blobs = parallel_module._build_chunk(
                str(path), start, path.stat().st_size, line, 0, False, header, "s", RETENTION
            )
            unreachable = gc.collect()
        finally:
            if enabled:
                gc.enable()
        assert (records, clean) == (10, True) and blobs
    assert unreachable == 0
    rejects = [i for i in read(fresh, default_retention=RETENTION) if isinstance(i, Reject)]
    assert {r.record for r in rejects} == {f"B-{i}" for i in (1, 2, 3, 4, 5, 6, 7, 9)} | {
        "line 6", "line 10"}  # fmt: skip


def test_a_quote_that_never_closes_is_cut_exactly_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv

    _inline(monkeypatch)
    reads: list[int] = []
    exact = parallel_module._exact_cut

    def spy(fh: Any, start: int, at_least: int) -> tuple[int, int, bool]:
        reads.append(at_least)
        return exact(fh, start, at_least)

    monkeypatch.setattr(parallel_module, "_exact_cut", spy)
    path = tmp_path / "open-quote.csv"
    rows = [f"E-{i},email,o{i}@example.com" for i in range(400)]
    rows[1] = 'E-1,email,"never closed'
    path.write_text("local_ref,type,email\n" + "\n".join(rows) + "\n", encoding="utf-8")
    limit = csv.field_size_limit(2000)  # the serial reader gives up on the field here
    try:
        serial, parallel = _both(path, 256)
    finally:
        csv.field_size_limit(limit)
    assert parallel == serial
    assert sum(len(r) == 1 for r in serial) == 1  # the field over the limit: one broken row
    assert len(serial) > 250  # the rows after it load
    # Cut exactly after 16 chunks without a likely boundary, not by reading to the end.
    assert reads and max(reads) <= 256


def test_synthetic_fiu_data_through_real_workers_gives_the_serial_subjects(
    tmp_path: Path,
) -> None:
    # Three jurisdictions' scripts (Latin with umlauts, Cyrillic, Han), every subject type,
    # CRLF line ends (as Excel writes them), cut into many chunks of a real process pool.
    from fiumatch.synth import generate
    from fiumatch.synth.writers import write_csv

    ds = generate(["DE", "RU", "CN"], subjects=300, overlap=0.2, seed=11)
    path = tmp_path / "fiu.csv"
    write_csv([rec for j in ds.jurisdictions for rec in ds.records[j]], path)
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    serial_stats, parallel_stats = IngestStats(), IngestStats()
    serial = list(read(path, default_retention=RETENTION, stats=serial_stats))
    parallel = list(read_csv_parallel(
        path, source=path.name, default_retention=RETENTION, stats=parallel_stats,
        workers=2, chunk_bytes=8192,
    ))  # fmt: skip
    assert path.stat().st_size > 10 * 8192 and len(serial) >= 900
    assert [type(x) for x in parallel] == [type(x) for x in serial]
    for a, b in zip(serial, parallel, strict=True):
        assert a == b  # subjects: every field; rejects: every field
        if isinstance(a, Subject):
            assert isinstance(b, Subject) and a.provenance == b.provenance
            assert [k.encode() for k in a.keys] == [k.encode() for k in b.keys]
    assert (parallel_stats.records, parallel_stats.bytes_read) == (
        serial_stats.records, serial_stats.bytes_read)  # fmt: skip
