"""Parallel CSV ingestion: the serial reader's output, in order, with bounded look-ahead."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from fiumatch.identifiers import Subject
from fiumatch.ingest import IngestStats, Reject, read
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
            workers=2, batch_size=3, max_inflight=2,
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
        workers=2, batch_size=4, max_inflight=2,
    )  # fmt: skip
    first = next(stream)
    assert isinstance(first, Subject) and first.local_ref == "G-1"
    # At most max_inflight batches were framed before the first item came back.
    assert stats.records <= 2 * 4
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


def test_warm_up_names_real_regions_and_runs() -> None:
    import phonenumbers

    from fiumatch.ingest import parallel, warmup

    assert set(warmup.REGIONS) <= phonenumbers.SUPPORTED_REGIONS
    warmup.warm()  # again: must not raise, whatever it rejects
    assert "fiumatch.ingest.warmup" in parallel._PRELOAD
