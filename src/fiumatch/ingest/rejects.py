"""Reject entries and the reject report.

Owns what a rejected record looks like and how the report is written. A reject names the
file, the line (when the format has lines) or the record, the field and the reason; it
never copies the rejected value, so the report can be shared with the data owner's IT team
without re-leaking what it rejected. The report stays on the FIU's own machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["Reject", "RejectReport"]


@dataclass(frozen=True, slots=True)
class Reject:
    """One reason a record did not load. A record with several bad fields has several."""

    file: str
    line: int | None
    record: str
    field: str
    code: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __reduce__(self) -> tuple[type[Reject], tuple[str, int | None, str, str, str, str]]:
        # Positional pickling: rejects cross from ingest worker processes.
        return Reject, (self.file, self.line, self.record, self.field, self.code, self.reason)


class RejectReport:
    """Writes rejects as JSON Lines, one object per reject, and counts them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self.records: set[tuple[str, str]] = set()
        self._fh: IO[str] | None = None

    def __enter__(self) -> RejectReport:
        self._fh = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def add(self, reject: Reject) -> None:
        if self._fh is None:
            raise RuntimeError("RejectReport used outside its with-block")
        self._fh.write(json.dumps(reject.to_dict(), ensure_ascii=False) + "\n")
        self.count += 1
        self.records.add((reject.file, reject.record))
