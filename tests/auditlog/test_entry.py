"""The audit entry schema and its canonical encoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.auditlog import entry as entry_module
from fiumatch.auditlog.entry import (
    EVENT_SCHEMAS,
    FIELD_TAGS,
    Direction,
    Entry,
    EventType,
    Outcome,
    check_entry,
    decode_entry,
    encode_entry,
    entry_from_dict,
    entry_to_dict,
    identifier_like,
    is_exchange,
)
from fiumatch.auditlog.errors import EntryError, IdentifierLikeValueError
from tests.auditlog.factories import entries, minimal_entry, sample_entry


def test_event_codes_and_field_tags_are_frozen() -> None:
    # Changing either table breaks every stored log: this test must only ever grow.
    assert {e.name: e.value for e in EventType} == {
        "SESSION_OPENED": 1, "SESSION_CLOSED": 2, "FILTER_PUBLISHED": 3, "FILTER_FETCHED": 4,
        "EVALUATION": 5, "REFUSAL": 6, "QUERY": 7, "HIT_COUNT": 8, "DISCLOSURE_REQUESTED": 9,
        "DISCLOSURE_DECIDED": 10, "AGREEMENT_CHANGED": 11, "PEER_CHANGED": 12,
        "EPOCH_ROTATED": 13, "PURGE": 14, "LOGIN": 15, "ROLE_CHANGED": 16,
    }
    assert list(FIELD_TAGS) == [
        "actor", "peer", "session", "agreement", "epoch", "mode", "direction", "count_in",
        "count_out", "hits", "records", "request_sha256", "response_sha256", "object_sha256",
        "epoch_public_key", "clause", "decision", "change", "outcome", "role", "target",
        "scope", "id_type", "purpose", "legal_basis", "case_ref",
    ]
    assert list(FIELD_TAGS.values()) == list(range(1, 27))


def test_the_only_free_text_fields_are_analyst_metadata() -> None:
    kinds = {f.name: f.kind_name for f in entry_module._FIELDS}
    assert {n for n, k in kinds.items() if k == "text"} == {"purpose", "legal_basis", "case_ref"}
    # No field can hold an element or an output: bytes fields are digests or the epoch key.
    assert {n for n, k in kinds.items() if k in ("digest", "key")} == {
        "request_sha256", "response_sha256", "object_sha256", "epoch_public_key",
    }


def test_known_encoding() -> None:
    e = Entry(seq=7, time_ms=1000, event=EventType.LOGIN, actor="analyst:ann", outcome=Outcome.OK)
    assert encode_entry(e).hex() == (
        "01" "000f" "0000000000000007" "00000000000003e8" "02"
        "01" "000b" + b"analyst:ann".hex() + "13" "0002" + b"ok".hex()
    )
    assert e.outcome is Outcome.OK


@pytest.mark.parametrize("event", list(EventType), ids=lambda e: e.name.lower())
def test_every_event_round_trips_full_and_minimal(event: EventType) -> None:
    for e in (sample_entry(event, seq=5), minimal_entry(event, seq=6)):
        data = encode_entry(e)
        back = decode_entry(data)
        assert back == e
        assert encode_entry(back) == data
        summary = check_entry(data)
        assert (summary.seq, summary.time_ms, summary.event) == (e.seq, e.time_ms, event)
        assert summary.exchange == is_exchange(e)
        assert entry_from_dict(entry_to_dict(e)) == e


def test_exchange_events_require_both_sides_fields() -> None:
    for event, schema in EVENT_SCHEMAS.items():
        if "direction" in schema.required:
            assert {"peer", "session"} <= schema.required, event
    assert is_exchange(sample_entry(EventType.EVALUATION))
    assert not is_exchange(sample_entry(EventType.LOGIN))


@settings(max_examples=150, deadline=None)
@given(entries())
def test_random_entries_round_trip(e: Entry) -> None:
    data = encode_entry(e)
    assert decode_entry(data) == e
    assert encode_entry(decode_entry(data)) == data


@settings(max_examples=300, deadline=None)
@given(entries(), st.data())
def test_decoding_is_canonical_under_mutation(e: Entry, data: st.DataObject) -> None:
    raw = bytearray(encode_entry(e))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        del raw[data.draw(st.integers(0, len(raw) - 1)):]
    mutated = bytes(raw)
    try:
        back = decode_entry(mutated)
    except EntryError:
        with pytest.raises(EntryError):
            check_entry(mutated)
        return
    # Anything accepted re-encodes to exactly the same bytes: no second encoding exists.
    assert encode_entry(back) == mutated
    assert check_entry(mutated).seq == back.seq


def _with_field(data: bytes, tag: int, value: bytes) -> bytes:
    head = bytearray(data[:20])
    head[19] += 1
    return bytes(head) + data[20:] + struct.pack(">BH", tag, len(value)) + value


def test_decoder_refuses_non_canonical_forms() -> None:
    good = encode_entry(minimal_entry(EventType.LOGIN))
    with pytest.raises(EntryError, match="version"):
        decode_entry(b"\x02" + good[1:])
    with pytest.raises(EntryError, match="event"):
        decode_entry(good[:1] + b"\x00\x63" + good[3:])
    with pytest.raises(EntryError, match="shorter"):
        decode_entry(good[:10])
    with pytest.raises(EntryError, match="after the last field"):
        decode_entry(good + b"\x00")
    with pytest.raises(EntryError, match="out-of-order"):
        decode_entry(_with_field(good, 1, b"again"))  # actor twice, after outcome
    with pytest.raises(EntryError, match="out-of-order"):
        decode_entry(_with_field(good, 200, b"x"))
    with pytest.raises(EntryError, match="not allowed"):
        decode_entry(_with_field(good, 26, b"case"))
    with pytest.raises(EntryError, match="missing"):
        decode_entry(good[:19] + b"\x01" + good[20 : 23 + len("node:fiu-a")])  # no outcome
    e = sample_entry(EventType.EVALUATION)
    data = encode_entry(e)
    pos = data.index(struct.pack(">BH", 5, 8))  # epoch as 8 bytes
    with pytest.raises(EntryError, match="8 bytes"):
        decode_entry(data[:pos] + struct.pack(">BH", 5, 7) + data[pos + 4 : pos + 11]
                     + data[pos + 11 :])
    bad_utf8 = bytearray(encode_entry(Entry(seq=0, time_ms=0, event=EventType.LOGIN,
                                            actor="abc", outcome=Outcome.OK)))
    bad_utf8[23] = 0xFF
    with pytest.raises(EntryError, match="UTF-8"):
        decode_entry(bytes(bad_utf8))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("actor", "", "token"),
        ("actor", "a b", "token"),
        ("actor", "alice@fiu.example", "token"),
        ("actor", "x" * 65, "token"),
        ("actor", "-leading", "token"),
        ("actor", 5, "string"),
        ("outcome", "maybe", "one of"),
        ("role", "admin\n", "token"),
    ],
)
def test_constructor_refuses_bad_values(field: str, value: object, match: str) -> None:
    kwargs: dict[str, object] = {"actor": "a", "outcome": "ok", "role": "r"}
    kwargs[field] = value
    with pytest.raises(EntryError, match=match) as info:
        Entry(seq=0, time_ms=0, event=EventType.LOGIN, **kwargs)  # type: ignore[arg-type]
    assert info.value.details["field"] == field


def test_constructor_refuses_schema_breaks() -> None:
    with pytest.raises(EntryError, match="missing") as info:
        Entry(seq=0, time_ms=0, event=EventType.EVALUATION, actor="a")
    assert info.value.details["field"] == "peer"
    with pytest.raises(EntryError, match="not allowed"):
        Entry(seq=0, time_ms=0, event=EventType.LOGIN, actor="a", outcome=Outcome.OK, hits=3)
    with pytest.raises(EntryError, match="integer") as info:
        Entry(seq=-1, time_ms=0, event=EventType.LOGIN, actor="a", outcome=Outcome.OK)
    assert info.value.details["field"] == "seq"
    with pytest.raises(EntryError, match="integer") as info:
        Entry(seq=0, time_ms=2**64, event=EventType.LOGIN, actor="a", outcome=Outcome.OK)
    assert info.value.details["field"] == "time_ms"
    with pytest.raises(EntryError, match="event"):
        Entry(seq=0, time_ms=0, event=99, actor="a", outcome=Outcome.OK)  # type: ignore[arg-type]
    with pytest.raises(EntryError, match="32 bytes"):
        sample_entry(EventType.EVALUATION, request_sha256=b"short")
    with pytest.raises(EntryError, match="bytes"):
        sample_entry(EventType.EVALUATION, request_sha256="00" * 32)
    with pytest.raises(EntryError, match="key"):
        sample_entry(EventType.EPOCH_ROTATED, epoch_public_key=b"k")
    with pytest.raises(EntryError, match="integer"):
        sample_entry(EventType.EVALUATION, count_in=True)
    with pytest.raises(EntryError):
        entry_from_dict({"seq": 0, "time_ms": 0, "event": "login", "actor": "a", "pin": 1})
    with pytest.raises(EntryError):
        entry_from_dict({"seq": 0, "time_ms": 0, "event": "nope", "actor": "a"})
    with pytest.raises(EntryError):
        entry_from_dict({"seq": 0, "time_ms": 0, "event": "evaluation"})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("contact jan.devries@example.nl", "email"),
        ("account NL91 ABNA 0417 1643 00", "iban"),
        ("account NL91ABNA0417164300 seen", "iban"),
        ("phone 31612345678", "number"),
    ],
)
def test_free_text_that_looks_like_an_identifier_is_refused(text: str, why: str) -> None:
    assert identifier_like(text) == why
    with pytest.raises(IdentifierLikeValueError) as info:
        sample_entry(EventType.QUERY, purpose=text)
    assert info.value.details == {"field": "purpose", "looks_like": why}
    assert text not in str(info.value)  # the value never reaches the message


def test_tokens_are_screened_for_ibans_and_harmless_text_passes() -> None:
    with pytest.raises(IdentifierLikeValueError):
        sample_entry(EventType.PEER_CHANGED, peer="NL91ABNA0417164300")
    # Random session ids are not screened (hex often has long digit runs).
    sample_entry(EventType.EVALUATION, session="12345678901234567890abcdefabcdef")
    assert identifier_like("CASE-2024-0117") is None
    assert identifier_like("AB12CASEREFERENCE") is None
    assert identifier_like("agr-ab-1", free_text=False) is None
    sample_entry(EventType.QUERY, case_ref="CASE-2024-0117", legal_basis="Wwft art. 17")


@pytest.mark.parametrize(
    "text", [" leading", "trailing ", "tab\there", "e\u0301", "x" * 257, "zero\u200bwidth"]
)
def test_free_text_rules(text: str) -> None:
    with pytest.raises(EntryError):
        sample_entry(EventType.QUERY, purpose=text)


def test_direction_accepts_its_string_value() -> None:
    e = sample_entry(EventType.EVALUATION, direction="in")
    assert e.direction is Direction.IN
    assert entry_to_dict(e)["direction"] == "in"
    assert entry_to_dict(e)["request_sha256"] == e.request_sha256.hex()  # type: ignore[union-attr]
