"""Counters a read fills in: records seen, subjects, rejected records, skipped entities."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IngestStats"]


@dataclass
class IngestStats:
    """Mutable counters for one or more reads. ``records`` counts every record looked at."""

    records: int = 0
    subjects: int = 0
    rejected_records: int = 0
    rejects: int = 0
    keys: int = 0
    skipped: int = 0  # FtM entities that are not subjects (relations, addresses, ...)
    bytes_read: int = 0  # into the file being read, roughly, for progress bars (not goAML)
    ignored_columns: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, object]:
        return {
            "records": self.records,
            "subjects": self.subjects,
            "rejected_records": self.rejected_records,
            "rejects": self.rejects,
            "keys": self.keys,
            "skipped": self.skipped,
            "ignored_columns": sorted(self.ignored_columns),
        }
