"""The web pages over ASGI (no browser): security headers, the session cookie, CSRF, roles,
server-side validation with errors next to their field, CSV export, and no identifier on a
page for a role that may not see it."""

from __future__ import annotations

import html as html_lib
import os
import re

import pytest

from fiumatch.auditlog.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from fiumatch.auditlog.merkle import root_from_leaf_hashes
from fiumatch.node.keys import NodeKeys
from fiumatch.node.web import views
from fiumatch.node.web.security import CSP

from .conftest import InProcessNode, export_node_bundle

PAGES = {
    "/ui/": {"analyst", "supervisor", "auditor", "admin"},
    "/ui/query/new": {"analyst", "supervisor"},
    "/ui/queries": {"analyst", "supervisor"},
    "/ui/queries/q-00000000000000aa": {"analyst", "supervisor"},
    "/ui/queries/q-00000000000000aa/progress": {"analyst", "supervisor"},
    "/ui/queries/q-00000000000000aa/hits.csv": {"analyst", "supervisor"},
    "/ui/disclosures": {"analyst", "supervisor"},
    "/ui/supervisor": {"supervisor"},
    "/ui/audit": {"auditor", "admin"},
    "/ui/audit/activity": {"auditor", "admin"},
    "/ui/audit/verify": {"auditor", "admin"},
    "/ui/audit/reconcile": {"auditor", "admin"},
    "/ui/admin": {"admin"},
}


def _field_error(html: str, form_id: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="{form_id}-{name}-error">(.*?)</p>', html, re.S)
    assert found is not None, f"no error shown next to {name}"
    return html_lib.unescape(re.sub(r"<[^>]+>", "", found.group(1)).strip())


@pytest.mark.parametrize("role", ["analyst", "supervisor", "auditor", "admin"])
def test_each_role_sees_exactly_its_pages(node: InProcessNode, role: str) -> None:
    assert node.login(role).status_code == 200
    nav = node.client.get("/ui/").text
    for path, roles in PAGES.items():
        r = node.client.get(path, follow_redirects=False)
        assert r.status_code == (200 if role in roles else 403), (role, path)
        if path.count("/") == 2 and path != "/ui/":
            assert (f'href="{path}"' in nav) == (role in roles), (role, path)


def test_signed_out_browsers_are_sent_to_sign_in_and_come_back(node: InProcessNode) -> None:
    node.client.cookies.clear()
    r = node.client.get("/ui/audit?event=query", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Faudit%3Fevent%3Dquery"
    page = node.client.get(r.headers["location"])
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    done = node.client.post(
        "/ui/login",
        data={
            "nonce": nonce.group(1),
            "token": node.tokens["auditor"],
            "next": "/ui/audit?event=query",
        },
        follow_redirects=False,
    )
    assert done.headers["location"] == "/ui/audit?event=query"


def test_sign_in_never_redirects_off_site(node: InProcessNode) -> None:
    node.client.cookies.clear()
    page = node.client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    for target in ("https://evil.example/", "//evil.example/ui/", "/api/v1/me"):
        node.client.cookies.clear()
        page = node.client.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert nonce is not None
        r = node.client.post(
            "/ui/login",
            data={"nonce": nonce.group(1), "token": node.tokens["analyst"], "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/ui/", target


def test_every_ui_response_carries_the_security_headers(node: InProcessNode) -> None:
    node.login("analyst")
    for path in ("/ui/", "/ui/login", "/ui/static/app.css", "/ui/queries/nope"):
        r = node.client.get(path, follow_redirects=False)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert node.client.get("/ui/").headers["cache-control"] == "no-store"
    # The peer and API routes are not the web interface's to change.
    assert "content-security-policy" not in node.client.get("/healthz").headers


def test_pages_hold_no_inline_script_or_style(node: InProcessNode) -> None:
    for role in ("analyst", "auditor", "admin", "supervisor"):
        node.login(role)
        for path, roles in PAGES.items():
            if role not in roles or path.endswith(".csv"):
                continue
            html = node.client.get(path).text
            assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path
            assert "<style" not in html and " style=" not in html, path
            assert re.search(r"\son[a-z]+=", html) is None, path  # no event handler attributes
            assert "http://" not in html and "https://cdn" not in html, path


def test_session_cookie_is_host_only_secure_httponly_strict(node: InProcessNode) -> None:
    r = node.login("analyst", follow=False)
    cookie = next(
        c for c in r.headers.get_list("set-cookie") if c.startswith("__Host-fiumatch-FIU-T=")
    )
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attrs
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert "domain" not in attrs and "max-age" not in attrs  # host-only, ends with the browser
    value = cookie.split(";")[0].split("=", 1)[1]
    assert node.tokens["analyst"] not in cookie and "." in value


def test_a_forged_or_foreign_cookie_is_not_a_session(node: InProcessNode) -> None:
    r = node.login("analyst", follow=False)
    good = node.client.cookies.get("__Host-fiumatch-FIU-T")
    assert good
    sid, tag = good.split(".")
    for bad in (f"{sid}.{tag[:-2]}AA", f"{sid[:-2]}AA.{tag}", sid, ""):
        node.client.cookies.set("__Host-fiumatch-FIU-T", bad)
        assert node.client.get("/ui/", follow_redirects=False).status_code == 303, bad
    assert r.status_code == 303


def test_forms_without_the_sessions_csrf_token_are_refused(node: InProcessNode) -> None:
    node.login("admin")
    before = {u.name for u in node.service.store.users.list_all()}
    for data, headers in (
        ({"name": "mallory", "role": "admin"}, {}),
        ({"name": "mallory", "role": "admin", "csrf": "x" * 43}, {}),
        (
            {"name": "mallory", "role": "admin", "csrf": node.csrf("/ui/admin")},
            {"origin": "https://evil.example"},
        ),
    ):
        r = node.client.post("/ui/admin/users", data=data, headers=headers)
        assert r.status_code == 403 and "Form refused" in r.text
    assert {u.name for u in node.service.store.users.list_all()} == before
    ok = node.client.post(
        "/ui/admin/users",
        data={"name": "mallory", "role": "auditor", "csrf": node.csrf("/ui/admin")},
    )
    assert ok.status_code == 200 and "shown only once" in ok.text
    assert node.service.store.users.require("mallory").role == "auditor"
    # The token is shown once: a reload no longer holds it.
    assert "shown only once" not in node.client.get("/ui/admin").text


def test_sign_in_needs_the_forms_nonce(node: InProcessNode) -> None:
    node.client.cookies.clear()
    r = node.client.post("/ui/login", data={"nonce": "x", "token": node.tokens["admin"]})
    assert r.status_code == 403
    assert "__Host-fiumatch-FIU-T" not in node.client.cookies


def test_a_wrong_token_is_reported_next_to_the_field(node: InProcessNode) -> None:
    node.client.cookies.clear()
    page = node.client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    r = node.client.post(
        "/ui/login", data={"nonce": nonce.group(1), "token": "fmu_0000000000000000_" + "A" * 43}
    )
    assert r.status_code == 401
    assert _field_error(r.text, "f", "token") == "Error: This token is unknown, disabled or wrong"
    assert 'aria-invalid="true"' in r.text and 'href="#f-token"' in r.text
    entries = node.service.audit_entries(node.service.store.users.require("admin"))["entries"]
    assert entries[-1]["event"] == "login" and entries[-1]["outcome"] == "failed"


def test_sign_out_and_token_rotation_end_the_session(node: InProcessNode) -> None:
    from fiumatch.store import issue_token

    node.login("supervisor")
    assert node.client.get("/ui/supervisor").status_code == 200
    r = node.client.post("/ui/logout", data={"csrf": node.csrf()}, follow_redirects=False)
    assert r.headers["location"] == "/ui/login?signed_out=1"
    assert node.client.get("/ui/supervisor", follow_redirects=False).status_code == 303

    node.login("auditor")
    assert node.client.get("/ui/audit").status_code == 200
    name = "auditor-fiu-t"
    fresh = issue_token(os.urandom)
    node.service.store.users.rotate_token(name, fresh)
    node.tokens["auditor"] = fresh.token
    assert node.client.get("/ui/audit", follow_redirects=False).status_code == 303


def test_hits_show_identifiers_to_analysts_only(node: InProcessNode) -> None:
    node.login("analyst")
    page = node.client.get(f"/ui/queries/{node.query_id}").text
    shown = {i for i in node.identifiers if i in page}
    assert shown, "the analyst's hits page shows our subjects (the check below can fail)"
    for role in ("auditor", "admin"):
        node.login(role)
        for path, roles in PAGES.items():
            r = node.client.get(path)
            leaked = {i for i in node.identifiers if i in r.text}
            assert not leaked, (role, path, sorted(leaked)[:3])
            if role not in roles:
                assert r.status_code == 403


def test_hits_filter_and_csv_export(node: InProcessNode) -> None:
    node.login("analyst")
    base = f"/ui/queries/{node.query_id}"
    assert node.client.get(base).text.count("Request disclosure</a>") == 3
    strong = node.client.get(base + "?min_strength=3").text
    assert strong.count("Request disclosure</a>") == 1
    assert node.client.get(base + "?key_type=passport").text.count("Request disclosure</a>") == 1
    csv_all = node.client.get(base + "/hits.csv")
    assert csv_all.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_all.headers["content-disposition"]
    lines = csv_all.text.strip().splitlines()
    assert lines[0].startswith("query,case_ref,peer,local_ref,name,key_types,strength")
    assert len(lines) == 4
    assert len(node.client.get(base + "/hits.csv?min_strength=3").text.strip().splitlines()) == 2
    progress = node.client.get(base + "/progress").text
    assert 'id="progress"' in progress and 'data-running="false"' in progress
    assert "<html" not in progress


def test_new_query_errors_are_shown_next_to_each_field(node: InProcessNode) -> None:
    node.login("analyst")
    csrf = node.csrf("/ui/query/new")
    r = node.client.post("/ui/query/new", data={"csrf": csrf, "mode": "filter"})
    assert r.status_code == 400
    for name in ("purpose", "legal_basis", "case_ref", "peers", "subjects"):
        assert _field_error(r.text, "f", name)
    r = node.client.post(
        "/ui/query/new",
        data={
            "csrf": csrf,
            "mode": "filter",
            "purpose": "money_laundering",
            "legal_basis": "AMLD",
            "case_ref": "DE89 3704 0044 0532 0130 00",
            "peers": "FIU-P",
            "identifiers": "type,name,shoe_size\nperson,Ann,42\n",
        },
    )
    assert r.status_code == 400
    assert "must not contain an identifier" in _field_error(r.text, "f", "case_ref")
    assert "line 1, column 3 is not a known column" in _field_error(r.text, "f", "identifiers")
    assert "Ann" in r.text  # the analyst's own paste comes back for correction
    # Nothing was queried or stored.
    assert len(node.service.list_queries(node.service.store.users.require("admin"))) == 1


def test_a_pasted_record_the_node_rejects_is_named(node: InProcessNode) -> None:
    node.login("analyst")
    r = node.client.post(
        "/ui/query/new",
        data={
            "csrf": node.csrf("/ui/query/new"),
            "mode": "filter",
            "purpose": "money_laundering",
            "legal_basis": "AMLD",
            "case_ref": "CASE-9",
            "peers": "FIU-P",
            "identifiers": "type,name,iban\nperson,Ann Example,NOT-AN-IBAN\n",
        },
    )
    assert r.status_code == 400
    assert _field_error(r.text, "f", "identifiers").startswith("Error: Record 1 was rejected")


def test_disclosure_form_validates_before_asking_the_peer(node: InProcessNode) -> None:
    node.login("analyst")
    form = node.client.get(f"/ui/disclose?hit={node.hit_ids[0]}")
    assert form.status_code == 200 and 'value="CASE-7"' in form.text
    r = node.client.post(
        "/ui/disclose",
        data={
            "csrf": node.csrf(),
            "hit": node.hit_ids[0],
            "purpose": "",
            "case_ref": "",
            "legal_basis": "AMLD",
            "onward_recipient": "the prosecutor",
        },
    )
    assert r.status_code == 400
    assert _field_error(r.text, "f", "purpose")
    assert _field_error(r.text, "f", "case_ref")
    assert _field_error(r.text, "f", "onward_purpose")
    assert node.service.store.disclosures.list_requests(direction="out", limit=10) == []
    assert node.client.get("/ui/disclose?hit=h-nope").status_code == 404


def test_admin_forms_validate_on_the_server(node: InProcessNode) -> None:
    node.login("admin")
    csrf = node.csrf("/ui/admin")
    r = node.client.post(
        "/ui/admin/peers",
        data={"csrf": csrf, "node_id": "bad id", "url": "http://x", "fingerprint": "abc"},
    )
    assert r.status_code == 400
    for name in ("node_id", "url", "fingerprint"):
        assert _field_error(r.text, "peer", name)
    r = node.client.post(
        "/ui/admin/agreements",
        data={
            "csrf": csrf,
            "peer": "FIU-P",
            "modes": "filter",
            "purposes": "money_laundering",
            "id_types": "passport",
            "budget_per_epoch": "-5",
            "max_set_size": "10",
            "valid_from": "2030-01-02",
            "valid_until": "2030-01-01",
        },
    )
    assert r.status_code == 400
    assert _field_error(r.text, "agreement", "budget_per_epoch")
    assert "on or after" in _field_error(r.text, "agreement", "valid_until")
    assert node.service.store.agreements.list_for_peer("FIU-P") == []
    r = node.client.post(
        "/ui/admin/agreements",
        data={
            "csrf": csrf,
            "peer": "FIU-P",
            "modes": ["filter", "mutual"],
            "purposes": "money_laundering",
            "id_types": ["passport", "iban"],
            "budget_per_epoch": "500",
            "max_set_size": "50",
            "valid_from": "2020-01-01",
            "valid_until": "2099-12-31",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    (a,) = node.service.store.agreements.list_for_peer("FIU-P")
    assert a.modes == ("filter", "mutual") and a.budget_per_epoch == 500
    assert a.valid_until - a.valid_from == (80 * 365 + 20) * 86400  # last day inclusive
    overview = node.client.get("/ui/").text
    assert "0 of 500" in overview and "in force until 2099-12-31" in overview


def test_audit_log_filters_and_reports_bad_filters_next_to_the_field(node: InProcessNode) -> None:
    node.login("auditor")
    page = node.client.get("/ui/audit?event=login").text
    events = re.findall(r'<td><span class="tag">([a-z_]+)</span></td>', page)
    assert events and set(events) == {"login"}
    bad = node.client.get("/ui/audit?since=2024-13-45&event=nope")
    assert bad.status_code == 400
    assert _field_error(bad.text, "f", "since")
    assert _field_error(bad.text, "f", "event")
    assert "every stored leaf hash matches its entry" in page


def test_verify_an_uploaded_bundle_and_name_the_first_bad_place(node: InProcessNode) -> None:
    node.login("auditor")
    bundle = export_node_bundle(node.nd)
    csrf = node.csrf("/ui/audit/verify")

    def upload(data: bytes, key: str = "self", vkey: str = "") -> str:
        r = node.client.post(
            "/ui/audit/verify",
            data={"csrf": csrf, "b_key": key, "b_vkey": vkey},
            files={"b_bundle": ("log.bundle", data, "application/octet-stream")},
        )
        assert r.status_code == 200
        return str(r.text)

    good = upload(bundle)
    assert "The bundle: verified" in good and "FIU-T/audit" in good
    damaged = bytearray(bundle)
    damaged[len(bundle) // 2] ^= 0x01
    bad = upload(bytes(damaged))
    assert "does not verify" in bad and re.search(r"record \d+", bad)
    stranger = NodeKeys.generate(os.urandom)
    forged = export_node_bundle(node.nd, key=stranger)
    assert "audit_checkpoint_signature" in upload(forged)
    vkey = NoteSigner("FIU-T/audit", stranger.identity).verifier.vkey()
    assert "The bundle: verified" in upload(forged, key="", vkey=vkey)
    missing = node.client.post("/ui/audit/verify", data={"csrf": csrf, "b_key": "self"})
    assert missing.status_code == 400 and _field_error(missing.text, "f", "b_bundle")


def test_reconcile_two_bundles(node: InProcessNode) -> None:
    node.login("auditor")
    bundle = export_node_bundle(node.nd)
    r = node.client.post(
        "/ui/audit/reconcile",
        data={"csrf": node.csrf("/ui/audit/reconcile"), "a_key": "self", "b_key": "self"},
        files={
            "a_bundle": ("a.bundle", bundle, "application/octet-stream"),
            "b_bundle": ("b.bundle", bundle, "application/octet-stream"),
        },
    )
    assert r.status_code == 200
    assert "Our bundle: verified" in r.text and "The peer&#39;s bundle: verified" in r.text
    assert 'id="reconcile-summary"' in r.text


def test_checkpoint_status_verifies_the_nodes_latest_checkpoint(node: InProcessNode) -> None:
    node.service.audit.checkpoint(fresh=True)
    node.login("auditor")  # one more entry: the checkpoint must be consistent with a longer log
    health = node.client.get("/ui/audit").text
    assert re.search(r"verified</span> size \d+", health)
    assert "no peer's log was seen to fork" in health
    assert NoteSigner("FIU-T/audit", node.nd.keys().identity).verifier.vkey() in health


def test_log_health_fails_a_checkpoint_from_another_key_or_root(node: InProcessNode) -> None:
    store = node.service.store
    size = store.audit.size()
    root = root_from_leaf_hashes(store.audit.leaf_hashes(0, size))
    pinned = NoteSigner("FIU-T/audit", node.nd.keys().identity)
    good = sign_checkpoint(Checkpoint("FIU-T/audit", size, root), pinned)
    assert views.log_health(store, good, pinned.verifier).ok
    stranger = NodeKeys.generate(os.urandom)
    forged = sign_checkpoint(
        Checkpoint("FIU-T/audit", size, root), NoteSigner("FIU-T/audit", stranger.identity)
    )
    bad = views.log_health(store, forged, pinned.verifier)
    assert not bad.ok and bad.checkpoint_size == size and "signature" in bad.checkpoint_reason
    other_root = sign_checkpoint(Checkpoint("FIU-T/audit", size, bytes(32)), pinned)
    wrong = views.log_health(store, other_root, pinned.verifier)
    assert not wrong.ok and "differs from the stored tree" in wrong.checkpoint_reason
    ahead = sign_checkpoint(Checkpoint("FIU-T/audit", size + 5, root), pinned)
    assert (
        "larger than the stored log"
        in views.log_health(store, ahead, pinned.verifier).checkpoint_reason
    )


def test_the_bundle_an_auditor_downloads_verifies(node: InProcessNode) -> None:
    node.login("auditor")
    r = node.client.get("/ui/audit/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.content.startswith(b"FIUAUDIT")
    assert "attachment" in r.headers["content-disposition"]
    page = node.client.post(
        "/ui/audit/verify",
        data={"csrf": node.csrf("/ui/audit/verify"), "b_key": "self"},
        files={"b_bundle": ("t.bundle", r.content, "application/octet-stream")},
    ).text
    assert "The bundle: verified" in page and "FIU-T/audit" in page
    node.login("analyst")
    assert node.client.get("/ui/audit/export").status_code == 403


def test_activity_page_draws_a_chart_per_peer_with_its_table(node: InProcessNode) -> None:
    node.login("auditor")
    page = node.client.get("/ui/audit/activity").text
    assert "<svg" in page and 'role="img"' in page and "FIU-P" in page
    assert "<table" in page  # the same numbers for screen readers


def test_one_nav_entry_is_marked_current(node: InProcessNode) -> None:
    node.login("admin")
    for path, current in (
        ("/ui/", "Overview"),
        ("/ui/audit", "Audit log"),
        ("/ui/audit/reconcile", "Reconcile"),
        ("/ui/admin", "Admin"),
    ):
        html = node.client.get(path).text
        marked = re.findall(r'<a href="[^"]+" aria-current="page">([^<]+)</a>', html)
        main = [
            m
            for m in marked
            if m in {"Overview", "Audit log", "Activity", "Verify bundle", "Reconcile", "Admin"}
        ]
        assert main == [current], path


def _incoming(node: InProcessNode, did: str, *, onward: bool) -> None:
    from fiumatch.store import Disclosure

    store = node.service.store
    hit = store.queries.hit(node.hit_ids[1])
    assert hit is not None
    store.disclosures.create(
        Disclosure(
            id=did,
            direction="in",
            peer_id="FIU-P",
            hit_token=bytes(40),
            purpose="money_laundering",
            case_ref="P-CASE-1",
            onward_consent=False,
            status="pending",
            created_at=node.service.now(),
            subject_id=hit.subject_id,
        )
    )
    if onward:
        store.disclosures.request_onward(
            did, recipient="the prosecutor", purpose="indictment", now=node.service.now()
        )


def test_supervisor_sees_the_record_and_decides_with_a_reason(node: InProcessNode) -> None:
    did = "d-00000000000000a1"
    _incoming(node, did, onward=True)
    node.login("supervisor")
    page = node.client.get("/ui/supervisor").text
    record = re.search(rf'id="req-{did}".*?<dl class="record">(.*?)</dl>', page, re.S)
    assert record is not None
    hit = node.service.store.queries.hit(node.hit_ids[1])
    subject = node.service.store.subjects.get(hit.subject_id) if hit else None
    assert subject is not None and subject.local_ref in record.group(1)
    assert "to the prosecutor, for indictment" in html_lib.unescape(page)
    csrf = node.csrf("/ui/supervisor")
    r = node.client.post(f"/ui/supervisor/{did}", data={"csrf": csrf, "decision": "approve"})
    assert r.status_code == 400
    assert _field_error(r.text, did, "reason")
    assert _field_error(r.text, did, "onward")  # consent was asked for: grant or refuse it
    r = node.client.post(
        f"/ui/supervisor/{did}",
        data={"csrf": csrf, "decision": "approve", "reason": "MoU art. 4", "fields": "nope"},
    )
    assert _field_error(r.text, did, "fields")
    assert node.service.store.disclosures.require(did).status == "pending"
    r = node.client.post(
        f"/ui/supervisor/{did}",
        data={
            "csrf": csrf,
            "decision": "approve",
            "reason": "MoU art. 4",
            "fields": ["local_ref", "subject_type"],
            "onward": "refuse",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    d = node.service.store.disclosures.require(did)
    assert d.status == "released" and d.onward_status == "refused"
    assert set(d.released or {}) == {"local_ref", "subject_type", "decision_reason"}
    assert f"{did}: released" in node.client.get("/ui/supervisor").text
    node.login("analyst")
    assert (
        node.client.post(
            f"/ui/supervisor/{did}", data={"csrf": node.csrf(), "decision": "refuse"}
        ).status_code
        == 403
    )


def test_an_uploaded_file_of_identifiers_becomes_the_querys_subjects(node: InProcessNode) -> None:
    node.login("analyst")
    store = node.service.store
    before = (
        store.db.connection()
        .execute("SELECT COUNT(*) FROM subjects WHERE source = 'analyst-paste'")
        .fetchone()[0]
    )
    upload = "type,name,birth_date,passport_number,passport_country\n" + "".join(
        f"person,Person Number{i} Example,1970-01-0{i},X{i}234567,DEU\n" for i in range(1, 4)
    )
    r = node.client.post(
        "/ui/query/new",
        data={
            "csrf": node.csrf("/ui/query/new"),
            "mode": "filter",
            "purpose": "money_laundering",
            "legal_basis": "AMLD art. 53",
            "case_ref": "CASE-11",
            "peers": "FIU-P",
        },
        files={"identifiers_file": ("ids.csv", upload.encode(), "text/csv")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/queries/q-")
    after = (
        store.db.connection()
        .execute("SELECT COUNT(*) FROM subjects WHERE source = 'analyst-paste'")
        .fetchone()[0]
    )
    assert after - before == 3
    page = node.client.get(r.headers["location"]).text
    assert "CASE-11" in page and 'id="progress"' in page


def test_admin_rotates_an_epoch(node: InProcessNode) -> None:
    node.login("admin")
    service = node.service
    service.ensure_epoch("FIU-P")
    active = {
        e["epoch"] for e in service.epochs() if e["peer"] == "FIU-P" and e["state"] == "active"
    }
    (old,) = active
    bad = node.client.post(
        "/ui/admin/rotate", data={"csrf": node.csrf("/ui/admin"), "peer": "FIU-NOPE"}
    )
    assert bad.status_code == 400 and _field_error(bad.text, "rotate", "peer")
    r = node.client.post("/ui/admin/rotate", data={"csrf": node.csrf("/ui/admin"), "peer": "FIU-P"})
    assert r.status_code == 200
    assert f"FIU-P: epoch {old} → {old + 1}" in r.text
    states = {e["epoch"]: e["state"] for e in service.epochs() if e["peer"] == "FIU-P"}
    assert states[old] == "retired" and states[old + 1] == "active"


def test_admin_disables_users_and_revokes_peers_and_agreements(node: InProcessNode) -> None:
    """Each row of the admin tables has its button (a CSRF form); the change goes through the
    service (audited), is reported in a flash message and shows in the table."""
    from fiumatch.store import Peer

    service = node.service
    admin = service.authenticate(node.tokens["admin"])
    token = service.add_user(admin, "leaver", "analyst")
    other = NodeKeys.generate(os.urandom)
    service.store.peers.add(
        Peer(node_id="FIU-GONE", url="https://127.0.0.1:9", public_key=other.public_key_raw,
             fingerprint=other.fingerprint, added_at=service.now())
    )  # fmt: skip
    agreement = service.add_agreement(
        admin, peer_id="FIU-GONE", modes=["filter"], purposes=["money_laundering"],
        identifier_types=["passport"], budget_per_epoch=10, max_set_size=10,
        valid_from=service.now() - 60, valid_until=service.now() + 86400,
    )  # fmt: skip
    node.login("admin")
    page = node.client.get("/ui/admin").text
    for label in (
        "Disable user leaver",
        "Revoke peer FIU-GONE",
        f"Revoke agreement {agreement.id}",
    ):
        assert f'aria-label="{label}"' in page
    assert f'aria-label="Disable user {admin.name}"' not in page  # not oneself
    # Without the session's CSRF token nothing changes.
    r = node.client.post("/ui/admin/users/disable", data={"user": "leaver"})
    assert r.status_code == 403 and service.store.users.require("leaver").active

    csrf = node.csrf("/ui/admin")
    r = node.client.post("/ui/admin/users/disable", data={"csrf": csrf, "user": "leaver"})
    assert r.status_code == 200 and "User leaver disabled" in r.text
    assert not service.store.users.require("leaver").active
    assert 'aria-label="Disable user leaver"' not in r.text
    r = node.client.post(
        "/ui/admin/agreements/revoke", data={"csrf": csrf, "agreement": agreement.id}
    )
    assert f"Agreement {agreement.id} with FIU-GONE revoked" in r.text
    assert service.store.agreements.require(agreement.id).revoked_at is not None
    r = node.client.post("/ui/admin/peers/revoke", data={"csrf": csrf, "peer": "FIU-GONE"})
    assert "Peer FIU-GONE revoked" in r.text
    assert not service.store.peers.require("FIU-GONE").active
    assert 'aria-label="Revoke peer FIU-GONE"' not in r.text
    # A second time, or something that does not exist: said so, nothing else happens.
    r = node.client.post("/ui/admin/peers/revoke", data={"csrf": csrf, "peer": "FIU-GONE"})
    assert r.status_code == 200 and "already revoked" in r.text
    r = node.client.post("/ui/admin/users/disable", data={"csrf": csrf, "user": "nobody"})
    assert "no such user" in r.text
    changes = [
        (e["event"], e.get("change"))
        for e in service.audit_entries(admin)["entries"]
        if e.get("change") in ("suspended", "revoked")
    ]
    assert [c for _, c in changes] == ["suspended", "revoked", "revoked"]
    # The disabled user cannot sign in any more; other roles cannot use these forms.
    node.tokens["leaver"] = token
    assert "unknown, disabled or wrong" in node.login("leaver").text
    node.login("analyst")
    r = node.client.post("/ui/admin/users/disable", data={"csrf": node.csrf(), "user": "leaver"})
    assert r.status_code == 403
