"""The web interface in a real browser: headless Debian Chromium, driven by Playwright, against
three real node processes (FIU-DE, FIU-FR, FIU-LV) on 127.0.0.1.

One story, in order: sign in (the role decides the pages); an admin pins a peer after the
fingerprint check and records an agreement; an analyst runs a fan-out query, sees its hits and
requests a disclosure; a supervisor on the other node approves it and the analyst receives the
record; an auditor browses and verifies the log, reconciles it with a peer's, and sees no
identifier anywhere. Every page is screenshotted to ``test-artifacts/web/`` (with
``FIUMATCH_UPDATE_SCREENSHOTS=1`` also to ``docs/screenshots/``), checked for labelled controls
and unique ids, and watched: any request leaving 127.0.0.1 or any content-security-policy
violation fails the run.

Chromium comes from Debian (``apt-get install chromium``), never from a download. Without it the
tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fiumatch import synth
from fiumatch.client.api import ApiClient
from fiumatch.identifiers import KeyType
from fiumatch.node.directory import NodeDir, create_node_dir
from fiumatch.node.runner import NodeProcess, free_port

from .conftest import ARTIFACTS, ROOT, add_role_users, identifiers_in, load_csv

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("FIUMATCH_CHROMIUM", "/usr/bin/chromium"))
DOCS_SHOTS = ROOT / "docs" / "screenshots"
NODES = (("FIU-DE", "DE"), ("FIU-FR", "FR"), ("FIU-LV", "RU"))
ALL_TYPES = [k.value for k in KeyType]  # the admin's form offers (and ticks) every type
STATE: dict[str, Any] = {}

A11Y_JS = """() => {
  const problems = [];
  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) problems.push('duplicate id ' + id);
  for (const el of document.querySelectorAll('input, select, textarea, button')) {
    if (el.type === 'hidden') continue;
    const named = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim());
    if (!named) problems.push('unlabelled ' + el.tagName.toLowerCase() + ' ' + (el.name || el.id));
  }
  for (const a of document.querySelectorAll('a[href^="#"]')) {
    const target = a.getAttribute('href').slice(1);
    if (target && !document.getElementById(target)) problems.push('link to missing #' + target);
  }
  if (!document.documentElement.lang) problems.push('no lang');
  if (!document.querySelector('main#main')) problems.push('no main landmark');
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  return problems;
}"""


def _chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI: {CHROMIUM} is missing; install it: apt-get install chromium")
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")


@dataclass
class RealNode:
    nd: NodeDir
    tokens: dict[str, str]
    process: NodeProcess
    csv: Path

    @property
    def node_id(self) -> str:
        return self.nd.node_id

    @property
    def url(self) -> str:
        return self.nd.url

    def api(self, role: str = "admin") -> ApiClient:
        return ApiClient(self.url, self.tokens[role], cacert=self.nd.settings.tls_cert)

    def fingerprint(self) -> str:
        return self.nd.keys().fingerprint


def _agree(frm: RealNode, to: RealNode, budget: int = 100_000) -> None:
    now = int(time.time())
    with frm.api() as c:
        c.add_agreement(
            peer=to.node_id,
            modes=["filter", "mutual", "cardinality"],
            purposes=["money_laundering", "terrorist_financing", "predicate_offence"],
            identifier_types=ALL_TYPES,
            budget_per_epoch=budget,
            max_set_size=10_000,
            valid_from=now - 60,
            valid_until=now + 365 * 86400,
        )


def _pin(frm: RealNode, to: RealNode) -> None:
    with frm.api() as c:
        c.add_peer(to.node_id, to.url, to.fingerprint())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RealNode]]:
    """DE and FR pin each other with agreements; LV pins DE and agrees, but DE has not pinned
    LV yet (its admin does that in the browser)."""
    _chromium()
    root = tmp_path_factory.mktemp("web-cluster")
    data = synth.generate([j for _, j in NODES], subjects=20, overlap=0.3, seed=11)
    synth.write(data, root / "data", formats=("csv",))
    nodes: dict[str, RealNode] = {}
    for node_id, j in NODES:
        nd, _, admin = create_node_dir(
            root / node_id, node_id, port=free_port(), scrypt_log2_n=10, env={}
        )
        csv = root / "data" / f"{j}.csv"
        load_csv(nd, csv)
        tokens = {"admin": admin, **add_role_users(nd)}
        nodes[node_id] = RealNode(nd, tokens, NodeProcess(nd.root, nd.url), csv)
    try:
        errors: list[BaseException] = []

        def start(n: RealNode) -> None:
            try:
                n.process.start()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in nodes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        de, fr, lv = nodes["FIU-DE"], nodes["FIU-FR"], nodes["FIU-LV"]
        _pin(de, fr)
        _agree(de, fr, budget=250)
        _pin(fr, de)
        _agree(fr, de)
        _pin(lv, de)
        _agree(lv, de)
        with fr.api("analyst") as c:  # FR has asked DE before: DE's activity chart has bars
            for case in ("FR-BULK-1", "FR-BULK-2"):
                c.create_query(
                    purpose="terrorist_financing",
                    legal_basis="AMLD art. 53",
                    case_ref=case,
                    all_subjects=True,
                    peers=["FIU-DE"],
                    wait=True,
                )
        yield nodes
    finally:
        for n in nodes.values():
            n.process.stop()


@dataclass
class Watch:
    """What the pages did that they must not: leave 127.0.0.1, break the CSP, throw."""

    external: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser(cluster: dict[str, RealNode]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(_chromium()),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def watch() -> Watch:
    return Watch()


def _page(browser: Any, watch: Watch) -> Any:
    context = browser.new_context(
        ignore_https_errors=True,  # each node's self-signed certificate
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        locale="en-GB",
        timezone_id="UTC",
    )

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            watch.external.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(15_000)

    def on_console(msg: Any) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            watch.csp.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.js_errors.append(str(exc)))
    return page


def _sign_in(browser: Any, watch: Watch, node: RealNode, role: str) -> Any:
    """Sign in with the keyboard only: the token field has the focus on load."""
    from playwright.sync_api import expect

    page = _page(browser, watch)
    page.goto(node.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    assert page.evaluate("document.activeElement.id") == "f-token"
    page.keyboard.type(node.tokens[role])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    return page


def _check(page: Any) -> None:
    page.wait_for_load_state("load")
    problems = page.evaluate(A11Y_JS)
    assert problems == [], f"{page.url}: {problems}"


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("FIUMATCH_UPDATE_SCREENSHOTS"):
        # The README's copies: a 128-colour palette keeps them a third of the size.
        from PIL import Image

        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            im.convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(
                DOCS_SHOTS / path.name, optimize=True
            )


def _nav(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("nav[aria-label=Main] a").all_inner_texts()]


# --- the story ---------------------------------------------------------------------------------


def test_sign_in_and_the_role_decides_the_pages(
    cluster: dict[str, RealNode], browser: Any, watch: Watch
) -> None:
    from playwright.sync_api import expect

    de = cluster["FIU-DE"]
    page = _page(browser, watch)
    response = page.goto(de.url + "/ui/login")
    assert response is not None
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    _check(page)
    _shot(page, "00-sign-in")
    page.get_by_label("Your user token").fill("fmu_0000000000000000_" + "A" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#f-token-error")).to_contain_text("unknown, disabled or wrong")
    expect(page.get_by_label("Your user token")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".error-summary")).to_be_focused()  # keyboard users land on it
    page.context.close()

    analyst = _sign_in(browser, watch, de, "analyst")
    assert _nav(analyst) == ["Overview", "New query", "Queries", "Disclosures"]
    cookie = next(c for c in analyst.context.cookies() if c["name"] == "__Host-fiumatch-FIU-DE")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert analyst.evaluate("document.cookie") == ""  # out of reach of scripts
    expect(analyst.locator("table").first).to_contain_text("FIU-FR")
    expect(analyst.get_by_text("key matches pin")).to_be_visible()
    _check(analyst)
    _shot(analyst, "01-overview")
    analyst.context.close()

    for role, pages in (
        ("auditor", ["Overview", "Audit log", "Activity", "Verify bundle", "Reconcile"]),
        ("supervisor", ["Overview", "New query", "Queries", "Disclosures", "Supervisor queue"]),
        ("admin", ["Overview", "Audit log", "Activity", "Verify bundle", "Reconcile", "Admin"]),
    ):
        p = _sign_in(browser, watch, de, role)
        assert _nav(p) == pages, role
        p.context.close()


def test_admin_pins_a_peer_after_the_fingerprint_check(
    cluster: dict[str, RealNode], browser: Any, watch: Watch
) -> None:
    from playwright.sync_api import expect

    de, fr, lv = cluster["FIU-DE"], cluster["FIU-FR"], cluster["FIU-LV"]
    page = _sign_in(browser, watch, de, "admin")
    page.get_by_role("link", name="Admin").click()
    _check(page)
    form = page.locator("form[action='/ui/admin/peers']")
    form.get_by_label("Peer node id").fill(lv.node_id)
    form.get_by_label("Peer URL").fill(lv.url)
    form.get_by_label("Key fingerprint").fill(fr.fingerprint())  # the wrong one
    form.get_by_role("button", name="Check fingerprint and pin").click()
    expect(page.locator("#peer-fingerprint-error")).to_contain_text("presents a different key")
    expect(page.locator("#peers table")).not_to_contain_text("FIU-LV")
    _check(page)
    _shot(page, "02-admin-fingerprint-mismatch")

    form = page.locator("form[action='/ui/admin/peers']")
    form.get_by_label("Key fingerprint").fill(lv.fingerprint())
    form.get_by_role("button", name="Check fingerprint and pin").click()
    expect(page.get_by_role("status")).to_contain_text("Peer FIU-LV pinned")
    expect(page.locator("#peers table")).to_contain_text(lv.fingerprint())

    agreement = page.locator("form[action='/ui/admin/agreements']")
    agreement.get_by_role("combobox", name=re.compile(r"^Peer")).select_option("FIU-LV")
    for box in (
        agreement.locator("fieldset")
        .filter(has_text="Identifier types")
        .locator("input[type=checkbox]")
        .all()
    ):
        box.check()
    agreement.get_by_role("button", name="Record agreement").click()
    expect(page.get_by_role("status")).to_contain_text("with FIU-LV recorded")
    expect(page.locator("#agreements table")).to_contain_text("FIU-LV")
    _check(page)
    _shot(page, "02-admin")
    page.context.close()
    STATE["lv_pinned"] = True


def test_fan_out_query_shows_hits_and_requests_disclosure(
    cluster: dict[str, RealNode], browser: Any, watch: Watch
) -> None:
    from playwright.sync_api import expect

    de = cluster["FIU-DE"]
    page = _sign_in(browser, watch, de, "analyst")
    page.get_by_role("link", name="New query").click()
    _check(page)
    _shot(page, "03-new-query")
    page.get_by_role("button", name="Run query").click()  # nothing filled in
    for name in ("purpose", "legal_basis", "case_ref", "subjects"):
        expect(page.locator(f"#f-{name}-error")).to_be_visible()
    expect(page.locator(".error-summary")).to_be_focused()
    _check(page)
    _shot(page, "03-new-query-errors")

    page.get_by_label(re.compile(r"All \d+ stored subjects")).check()
    peers = page.locator("#f-peers input[type=checkbox]")
    expected_peers = {"FIU-FR", "FIU-LV"} if STATE.get("lv_pinned") else {"FIU-FR"}
    assert {peers.nth(i).get_attribute("value") for i in range(peers.count())} == expected_peers
    page.get_by_label("Purpose").select_option("money_laundering")
    page.get_by_label("Legal basis").fill("AMLD art. 53")
    page.get_by_label("Case reference").fill("DE-2024-17")

    # Live progress: with FIU-LV frozen (SIGSTOP on its process group; it resumes within a
    # few seconds, well inside the peer client's 5 s connect timeout), FIU-FR's row must turn
    # "ok" on the open page through the page's own polling, while FIU-LV's is still pending.
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/progress") else None)
    lv = cluster["FIU-LV"]
    frozen = bool(STATE.get("lv_pinned")) and lv.process.proc is not None
    if frozen:
        assert lv.process.proc is not None
        os.killpg(lv.process.proc.pid, signal.SIGSTOP)
    try:
        page.get_by_role("button", name="Run query").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Query q-")
        if frozen:
            expect(page.locator("#progress tr[data-peer='FIU-FR'] .badge")).to_have_text("ok")
            expect(page.locator("#progress")).to_have_attribute("data-running", "true")
            pending = page.locator("#progress tr[data-peer='FIU-LV'] .badge").inner_text()
            assert pending != "ok"
            expect(page.get_by_text("this list updates by itself")).to_be_visible()
            _shot(page, "04-query-running")
            assert polls, "the progress table was not refreshed by the page"
    finally:
        if frozen:
            assert lv.process.proc is not None
            os.killpg(lv.process.proc.pid, signal.SIGCONT)
    expect(page.locator("#hits")).to_be_visible(timeout=30_000)  # the page reloads when done
    rows = page.locator("#progress tbody tr")
    assert {rows.nth(i).get_attribute("data-peer") for i in range(rows.count())} == expected_peers
    for peer in expected_peers:
        expect(page.locator(f"#progress tr[data-peer='{peer}']")).to_contain_text("ok")
    hits = page.locator("#hits tbody tr")
    assert hits.count() > 0
    expect(hits.filter(has_text="FIU-FR").first).to_be_visible()
    STATE["analyst_hits_html"] = page.content()
    _check(page)
    _shot(page, "05-query-hits")

    page.get_by_label("Peer", exact=True).select_option("FIU-FR")
    page.get_by_role("button", name="Filter").click()
    fr_rows = page.locator("#hits tbody tr")
    n = fr_rows.count()
    assert n > 0 and all("FIU-FR" in t for t in fr_rows.all_inner_texts())
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8").strip().splitlines()
    assert exported[0].startswith("query,case_ref,peer,local_ref,name,key_types,strength")
    assert len(exported) == n + 1 and all(",FIU-FR," in line for line in exported[1:])

    first = fr_rows.first
    local_ref = first.locator("th").inner_text().strip()
    first.get_by_role("link", name=re.compile("Request disclosure")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request disclosure")
    expect(page.get_by_label("Case reference")).to_have_value("DE-2024-17")
    _check(page)
    _shot(page, "06-disclosure-request")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("status")).to_contain_text("sent to FIU-FR: pending")
    row = page.locator("tr[data-request]").first
    STATE["disclosure"] = row.get_attribute("data-request")
    STATE["our_local_ref"] = local_ref
    expect(row).to_contain_text(local_ref)
    _check(page)
    page.context.close()


def test_supervisor_on_the_other_node_approves_and_the_analyst_receives(
    cluster: dict[str, RealNode], browser: Any, watch: Watch
) -> None:
    from playwright.sync_api import expect

    did = STATE.get("disclosure")
    assert did, "the fan-out test did not get as far as requesting a disclosure"
    de, fr = cluster["FIU-DE"], cluster["FIU-FR"]
    page = _sign_in(browser, watch, fr, "supervisor")
    expect(page.get_by_role("link", name=re.compile("waiting for a decision"))).to_be_visible()
    page.get_by_role("link", name="Supervisor queue").click()
    request = page.locator(f"#req-{did}")
    expect(request).to_contain_text("from FIU-DE")
    expect(request).to_contain_text("DE-2024-17")
    their_ref = request.locator("dl.record div").filter(has_text="local_ref").locator("dd")
    released_ref = their_ref.inner_text().strip()
    assert released_ref
    _check(page)
    _shot(page, "07-supervisor-queue")

    request.get_by_role("button", name="Record decision").click()
    request = page.locator(f"#req-{did}")
    expect(request.locator(f"#{did}-decision-error")).to_be_visible()
    expect(request.locator(f"#{did}-reason-error")).to_be_visible()
    request.get_by_label("Approve and release the chosen fields").check()
    request.get_by_label("Reason").fill("Consistent with the MoU; no onward dissemination.")
    request.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status")).to_contain_text(f"{did}: released")
    expect(page.locator("#decided-h + .table-wrap")).to_contain_text(did)
    page.context.close()

    page = _sign_in(browser, watch, de, "analyst")
    page.get_by_role("link", name="Disclosures").click()
    page.get_by_role("button", name=f"Fetch the decision on {did}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{did}: released")
    row = page.locator(f"tr[data-request='{did}']")
    expect(row).to_contain_text(released_ref)
    expect(row).to_contain_text("Consistent with the MoU")
    _check(page)
    _shot(page, "08-disclosures")
    page.context.close()


def test_auditor_verifies_the_log_and_sees_no_identifier(
    cluster: dict[str, RealNode], browser: Any, watch: Watch
) -> None:
    from playwright.sync_api import expect

    de, fr = cluster["FIU-DE"], cluster["FIU-FR"]
    identifiers = identifiers_in(*(n.csv for n in cluster.values()))
    shown_to_analyst = STATE.get("analyst_hits_html", "")
    assert any(i in shown_to_analyst for i in identifiers), "control: analysts do see them"
    seen: list[str] = []
    page = _sign_in(browser, watch, de, "auditor")
    seen.append(page.content())

    page.get_by_role("link", name="Audit log").click()
    health = page.locator("#log-health")
    expect(health).to_contain_text("every stored leaf hash matches its entry")
    expect(health).to_contain_text("the stored tree gives the same root as the leaves")
    assert page.locator("#entries tbody tr").count() > 10
    seen.append(page.content())
    page.get_by_label("Type").select_option("disclosure_requested")
    page.get_by_role("button", name="Filter").click()
    kinds = page.locator("#entries tbody tr td:nth-child(3)").all_inner_texts()
    assert kinds and set(kinds) == {"disclosure_requested"}
    session = page.locator("#entries tbody tr td:nth-child(6) a").first
    assert STATE["disclosure"][:12] in session.inner_text()
    _check(page)
    _shot(page, "09-audit-log")
    seen.append(page.content())
    page.goto(de.url + "/ui/audit?since=2024-02-30")
    expect(page.locator("#f-since-error")).to_contain_text("YYYY-MM-DD")

    # The bundle an auditor takes away: downloaded from the node, then checked against the
    # node's pinned key.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download this node's bundle").click()
    bundle = Path(download.value.path()).read_bytes()
    assert bundle.startswith(b"FIUAUDIT")
    page.get_by_role("link", name="Verify bundle").click()
    page.get_by_label("Bundle file").set_input_files(
        files=[{"name": "FIU-DE.bundle", "mimeType": "application/octet-stream", "buffer": bundle}]
    )
    page.get_by_label("Signed by (pinned key)").select_option("self")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".result.good")).to_contain_text("The bundle: verified")
    expect(page.locator(".result.good")).to_contain_text("FIU-DE/audit")
    _check(page)
    _shot(page, "10-audit-verify")
    seen.append(page.content())
    damaged = bytearray(bundle)
    damaged[len(bundle) // 2] ^= 0x40
    page.get_by_label("Bundle file").set_input_files(
        files=[
            {"name": "bad.bundle", "mimeType": "application/octet-stream", "buffer": bytes(damaged)}
        ]
    )
    page.get_by_label("Signed by (pinned key)").select_option("self")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".result.bad")).to_contain_text("does not verify")
    expect(page.locator(".result.bad")).to_contain_text(re.compile(r"record \d+"))
    seen.append(page.content())
    # FR's bundle signed by the wrong key (DE's pin for FR) does not pass either.
    page.get_by_label("Bundle file").set_input_files(
        files=[{"name": "x.bundle", "mimeType": "application/octet-stream", "buffer": bundle}]
    )
    page.get_by_label("Signed by (pinned key)").select_option("peer:FIU-FR")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".result.bad")).to_contain_text("does not verify")

    # FR's auditor downloads FR's bundle from FR; DE's auditor reconciles it with DE's log.
    fr_page = _sign_in(browser, watch, fr, "auditor")
    fr_page.get_by_role("link", name="Audit log").click()
    with fr_page.expect_download() as download:
        fr_page.get_by_role("link", name="Download this node's bundle").click()
    fr_bundle = Path(download.value.path()).read_bytes()
    fr_page.context.close()
    page.get_by_role("link", name="Reconcile", exact=True).click()
    theirs = page.locator("fieldset").filter(has_text="The peer's bundle")
    theirs.get_by_label("Bundle file").set_input_files(
        files=[{"name": "fr.bundle", "mimeType": "application/octet-stream", "buffer": fr_bundle}]
    )
    theirs.get_by_label("Signed by").select_option("peer:FIU-FR")
    page.get_by_role("button", name="Verify and reconcile").click()  # ours: DE's log, now
    expect(page.get_by_text("Our bundle: verified")).to_be_visible()
    expect(page.get_by_text("The peer's bundle: verified")).to_be_visible()
    summary = page.locator("#reconcile-summary")
    expect(summary).to_contain_text(re.compile(r"\d+ exchanges? logged by both"))
    both = re.search(r"(\d+) exchanges? logged by both", summary.inner_text())
    assert (
        both is not None and int(both.group(1)) > 0
    )  # DE and FR exchanged: FR's two queries and DE's fan-out
    STATE["reconcile"] = summary.inner_text()
    _check(page)
    _shot(page, "11-audit-reconcile")
    seen.append(page.content())

    page.get_by_role("link", name="Activity", exact=True).click()
    assert page.locator("svg.chart").count() == (2 if STATE.get("lv_pinned") else 1)
    fr_chart = page.locator("section").filter(has=page.get_by_role("heading", name="FIU-FR"))
    expect(fr_chart.locator("svg.chart line.budget")).to_be_attached()
    bars = fr_chart.locator("svg.chart rect.bar title").all_text_contents()
    assert sum(int(b.rsplit(": ", 1)[1]) for b in bars) > 0  # FR's two queries, evaluated by DE
    numbers = fr_chart.locator("table tbody tr").last.locator("td").all_text_contents()
    assert numbers[:2] == ["1", "2"] and int(numbers[2]) > 0 and numbers[3] == "250"
    _check(page)
    _shot(page, "12-audit-activity")
    seen.append(page.content())

    for html in seen:
        leaked = sorted(i for i in identifiers if i in html)
        assert not leaked, f"identifiers on an auditor page: {leaked[:3]}"
    qid = re.search(r"/ui/queries/(q-[0-9a-f]+)", shown_to_analyst)
    assert qid is not None
    for path in (
        f"/ui/queries/{qid.group(1)}",
        f"/ui/queries/{qid.group(1)}/hits.csv",
        "/ui/disclosures",
        "/ui/supervisor",
    ):
        response = page.goto(de.url + path)
        assert response is not None and response.status == 403, path
        leaked = sorted(i for i in identifiers if i in page.content())
        assert not leaked, path
    page.context.close()


def test_no_page_loaded_anything_from_elsewhere_or_broke_the_policy(
    browser: Any, watch: Watch
) -> None:
    assert STATE.get("disclosure"), "the story did not run"
    assert watch.external == []
    assert watch.csp == []
    assert watch.js_errors == []
