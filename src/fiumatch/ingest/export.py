"""JSON form of a subject and its keys, for ``fiumatch ingest --out`` (JSON Lines).

Owns only the shape of that local export file. It contains identifiers in clear: it is the
FIU's own data on the FIU's own disk and must never be sent to a peer.
"""

from __future__ import annotations

from fiumatch.identifiers.model import Subject

__all__ = ["subject_to_dict"]


def subject_to_dict(subject: Subject) -> dict[str, object]:
    return {
        "subject_id": subject.subject_id,
        "type": str(subject.type),
        "local_ref": subject.local_ref,
        "retention_until": subject.retention_until.isoformat(),
        "provenance": {
            "source": subject.provenance.source,
            "record": subject.provenance.record,
            "line": subject.provenance.line,
        },
        "names": [
            {k: v for k, v in (("full", n.full), ("given", n.given), ("middle", n.middle),
                               ("family", n.family)) if v}
            for n in subject.names
        ],
        "birth_date": subject.birth_date.iso if subject.birth_date else None,
        "countries": list(subject.countries),
        "identifiers": [
            {"kind": str(i.kind), "value": i.value, "qualifier": i.qualifier}
            for i in subject.identifiers
        ],
        "keys": [
            {"type": k.type.value, "code": k.type.code, "strength": k.strength.label,
             "hex": k.hex()}
            for k in subject.keys
        ],
    }
