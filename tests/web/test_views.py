"""The web interface's pure helpers: sessions and CSRF, pasted identifiers, CSV cells, log
filters, daily activity, agreement phrases and chart geometry."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fiumatch.node.web import charts, views
from fiumatch.node.web.security import CSP, CsrfError, SecurityHeaders, SessionManager
from fiumatch.store import Agreement

from ..node.helpers import det_rng


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _manager(clock: Clock) -> SessionManager:
    return SessionManager(node_id="FIU-T", rng=det_rng(), clock=clock, idle_seconds=60)


def test_session_cookie_names_the_node_and_is_signed() -> None:
    clock = Clock()
    m = _manager(clock)
    session, cookie = m.create("ann", "0011223344556677")
    assert m.cookie_name == "__Host-fiumatch-FIU-T"
    assert m.lookup(cookie) is session
    sid, tag = cookie.split(".")
    assert sid == session.sid
    other = _manager(clock)  # another process: another key
    assert other.lookup(cookie) is None
    for forged in (sid + "." + tag[::-1], sid, "." + tag, sid + ".", "a.b.c", None):
        assert m.lookup(forged) is None


def test_sessions_expire_when_idle_and_at_sign_out() -> None:
    clock = Clock()
    m = _manager(clock)
    session, cookie = m.create("ann", "0011223344556677")
    clock.t += 59
    assert m.lookup(cookie) is session  # refreshes the idle timer
    clock.t += 59
    assert m.lookup(cookie) is session
    clock.t += 61
    assert m.lookup(cookie) is None
    session2, cookie2 = m.create("ann", "0011223344556677")
    m.destroy(session2.sid)
    assert m.lookup(cookie2) is None


def test_sessions_end_at_the_absolute_limit_even_when_busy() -> None:
    clock = Clock()
    m = SessionManager(node_id="N", rng=det_rng(), clock=clock, idle_seconds=60, max_seconds=300)
    _, cookie = m.create("ann", "0011223344556677")
    for _ in range(5):
        clock.t += 50
        assert m.lookup(cookie) is not None
    clock.t += 51
    assert m.lookup(cookie) is None


def test_csrf_needs_the_sessions_token_and_our_origin() -> None:
    m = _manager(Clock())
    session, _ = m.create("ann", "0011223344556677")
    ours = "https://127.0.0.1:8443"
    m.check_csrf(session, session.csrf, None, ours)
    m.check_csrf(session, session.csrf, ours, ours)
    for value, origin in (
        (None, None),
        ("", None),
        (session.csrf[:-1] + "x", None),
        (session.csrf, "https://evil.example"),
        (session.csrf, "null"),
    ):
        with pytest.raises(CsrfError):
            m.check_csrf(session, value, origin, ours)


def test_sign_in_nonce_is_bound_to_its_cookie() -> None:
    m = _manager(Clock())
    nonce, cookie = m.login_nonce()
    m.check_login_nonce(nonce, cookie)
    other_nonce, other_cookie = m.login_nonce()
    for value, c in ((nonce, other_cookie), (other_nonce, cookie), (nonce, None), (None, cookie)):
        with pytest.raises(CsrfError):
            m.check_login_nonce(value, c)


def test_security_headers_only_on_the_web_interface() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-security-policy", b"default-src *"), (b"x-other", b"1")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def run(path: str) -> dict[bytes, bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        asyncio.run(SecurityHeaders(app)({"type": "http", "path": path}, receive, send))
        return dict(sent[0]["headers"])

    ui = run("/ui/audit")
    assert ui[b"content-security-policy"] == CSP.encode()  # replaced, not duplicated
    assert ui[b"x-frame-options"] == b"DENY" and ui[b"x-other"] == b"1"
    assert run("/")[b"content-security-policy"] == CSP.encode()
    assert run("/api/v1/peers")[b"content-security-policy"] == b"default-src *"
    assert b"x-frame-options" not in run("/uix")


def test_pasted_csv_and_json_lines() -> None:
    csv_text = "\ufefftype,name,email,nationality\nperson,Ann Example,a@x.example,DE;FR\n\n"
    assert views.parse_identifiers(csv_text) == [
        {
            "type": "person",
            "name": "Ann Example",
            "email": ["a@x.example"],
            "nationality": ["DE", "FR"],
        }
    ]
    jsonl = '{"type": "person", "name": "Ann", "aliases": ["A. E."]}\n\n{"type": "organisation"}'
    assert views.parse_identifiers(jsonl) == [
        {"type": "person", "name": "Ann", "aliases": ["A. E."]},
        {"type": "organisation"},
    ]
    assert views.parse_identifiers("  \n") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,iban\nAnn,DE00\n", "a 'type' column is required"),
        ("type,name\nperson,Ann,extra\n", "line 2 has 3 fields"),
        ("type,nom\nperson,Ann\n", "line 1, column 2 is not a known column"),
        ('{"type": "person"}\n[1]\n', "line 2 is not a JSON object"),
        ('{"type": "person", "shoe": "42"}\n', "line 1: unknown field 'shoe'"),
        ('{"type": 7}\n', "field 'type' must be text"),
        ('{"type": "person"\n', "line 1 is not a JSON object"),
    ],
)
def test_unreadable_identifiers_name_the_line_not_the_value(text: str, message: str) -> None:
    with pytest.raises(views.PasteError) as err:
        views.parse_identifiers(text)
    assert message in str(err.value)
    assert "Ann" not in str(err.value) and "DE00" not in str(err.value)


@given(st.text(max_size=20))
def test_csv_cells_never_start_a_formula(value: str) -> None:
    cell = views.csv_cell(value)
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert cell in (value, "'" + value)


def _entry(seq: int, day: date, **fields: Any) -> dict[str, Any]:
    t = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()
    return {"seq": seq, "time_ms": int(t * 1000), "actor": "x", **fields}


def test_log_filters_by_peer_session_type_and_inclusive_days() -> None:
    d1, d2, d3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
    entries = [
        _entry(0, d1, event="query"),
        _entry(1, d2, event="session_opened", peer="FIU-A", session="abcd01", direction="out"),
        _entry(2, d2, event="evaluation", peer="FIU-B", session="ffff02", direction="in"),
        _entry(3, d3, event="session_closed", peer="FIU-A", session="abcd01", direction="out"),
    ]

    def seqs(**kw: Any) -> list[int]:
        return [e["seq"] for e in views.filter_entries(entries, views.LogFilter(**kw))]

    assert seqs() == [0, 1, 2, 3]
    assert seqs(peer="FIU-A") == [1, 3]
    assert seqs(session="abcd") == [1, 3]
    assert seqs(event="evaluation") == [2]
    assert seqs(since=d2, until=d2) == [1, 2]
    assert seqs(since=d3) == [3]
    assert seqs(until=d1) == [0]


def test_daily_activity_counts_each_side_and_the_evaluations_charged() -> None:
    today = date(2026, 3, 3)
    entries = [
        _entry(0, today, event="session_opened", peer="FIU-A", direction="out"),
        _entry(1, today, event="session_opened", peer="FIU-A", direction="in", count_in=40),
        _entry(2, today, event="evaluation", peer="FIU-A", direction="in", count_in=40),
        _entry(3, date(2026, 3, 2), event="evaluation", peer="FIU-A", direction="in", count_in=5),
        _entry(4, today, event="refusal", peer="FIU-A", direction="in", clause="budget"),
        _entry(5, today, event="evaluation", peer="FIU-Z", direction="in", count_in=9),
        _entry(6, date(2025, 1, 1), event="evaluation", peer="FIU-A", direction="in", count_in=1),
    ]
    (a,) = views.daily_activity(entries, ["FIU-A"], {"FIU-A": 30}, today=today, days=3)
    assert [d.day for d in a.days] == [date(2026, 3, 1), date(2026, 3, 2), today]
    last = a.days[-1]
    assert (last.sessions_out, last.sessions_in, last.evaluations, last.refusals) == (1, 1, 40, 1)
    assert a.days[1].evaluations == 5 and a.days[0].evaluations == 0
    assert a.budget == 30 and a.peak == 40


def test_bar_chart_scales_to_the_larger_of_bars_and_budget() -> None:
    chart = charts.bar_chart([("a", 40), ("b", 10), ("c", 0)], 30, width=200, height=120)
    assert chart.top_value == 50
    assert [b.over_budget for b in chart.bars] == [True, False, False]
    tall, short, empty = chart.bars
    assert tall.height == pytest.approx(4 * short.height) and empty.height == 0
    assert tall.y + tall.height == pytest.approx(chart.plot_bottom)
    assert chart.budget_y is not None and tall.y < chart.budget_y < short.y
    no_budget = charts.bar_chart([("a", 3)], None)
    assert no_budget.budget_y is None and no_budget.top_value == 5
    assert charts.bar_chart([], None).bars == ()


@given(st.lists(st.integers(0, 10**9), max_size=30), st.none() | st.integers(0, 10**9))
def test_bars_stay_inside_the_plot(values: list[int], budget: int | None) -> None:
    chart = charts.bar_chart([(str(i), v) for i, v in enumerate(values)], budget)
    assert chart.top_value >= max([*values, budget or 0, 1])
    for b in chart.bars:
        assert 0 <= b.y <= chart.plot_bottom + 0.1 and b.height >= 0
        assert chart.plot_left <= b.x and b.x + b.width <= chart.width


def _agreement(n: int, valid_from: int, valid_until: int, **kw: Any) -> Agreement:
    return Agreement(
        id=f"agr-{n}",
        peer_id="FIU-A",
        modes=("filter",),
        purposes=("money_laundering",),
        identifier_types=("iban",),
        budget_per_epoch=kw.pop("budget", 100),
        max_set_size=10,
        valid_from=valid_from,
        valid_until=valid_until,
        signed_json="{}",
        created_at=0,
        **kw,
    )


def test_agreement_status_phrases() -> None:
    day = 86400
    now = 1_767_225_600  # 2026-01-01
    assert views.agreement_status([], now) == ("no agreement", False, None)
    ok = views.agreement_status(
        [_agreement(1, now - day, now + day, budget=5), _agreement(2, now, now + 2 * day)], now
    )
    assert ok == ("in force until 2026-01-02", True, 100)
    assert views.agreement_status([_agreement(1, now - 2 * day, now - day)], now) == (
        "expired after 2025-12-30",
        False,
        None,
    )
    assert views.agreement_status([_agreement(1, now + day, now + 9 * day)], now) == (
        "not yet valid (from 2026-01-02)",
        False,
        None,
    )
    assert views.agreement_status([_agreement(1, now - day, now + day, revoked_at=now)], now)[
        :2
    ] == ("revoked", False)


def test_identifier_rule_is_analysts_and_supervisors_only() -> None:
    shown = {
        r
        for r in ("analyst", "supervisor", "auditor", "admin", "x")
        if views.may_see_identifiers(r)
    }
    assert shown == {"analyst", "supervisor"}


def test_reachability_caches_and_checks_the_pinned_key() -> None:
    from fiumatch.node.keys import NodeKeys
    from fiumatch.store import Peer

    keys = NodeKeys.generate(det_rng(b"peer"))
    other = NodeKeys.generate(det_rng(b"other"))
    calls = itertools.count()
    answers = {"https://a": keys.public_key_raw.hex(), "https://b": other.public_key_raw.hex()}

    def fetch(url: str, timeout: float) -> dict[str, Any]:
        next(calls)
        if url == "https://down":
            from fiumatch.client.peer import PeerError

            raise PeerError("down", status=0, peer_code="unreachable")
        return {"public_key": answers[url]}

    clock = Clock()
    reach = views.Reachability(clock, fetch=fetch, ttl=10)
    peers = [
        Peer(
            node_id=n,
            url=u,
            public_key=keys.public_key_raw,
            fingerprint=keys.fingerprint,
            added_at=0,
        )
        for n, u in (("A", "https://a"), ("B", "https://b"), ("C", "https://down"))
    ]
    got = reach.check(peers)
    assert got["A"] == views.Reach(True, True)
    assert got["B"] == views.Reach(True, False)  # answers, with another key than pinned
    assert got["C"] == views.Reach(False, None)
    assert next(calls) == 3
    reach.check(peers)
    assert next(calls) == 4  # cached: no new fetch
    clock.t += 11
    reach.check(peers)
    assert next(calls) == 8
