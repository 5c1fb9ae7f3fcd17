"""The node's web interface (``/ui``): pages for analysts, supervisors, auditors and admins.

Server-rendered Jinja2 templates (autoescaped) and one small script of our own for live query
progress; nothing is loaded from anywhere but the node. Every page works without JavaScript.
Routes stay thin: they read the form, validate it (errors go back next to their field), call
one :class:`~fiumatch.node.service.NodeService` method, and redirect (POST, redirect, GET).

Who sees what (the role comes from the signed-in user, re-read on every request):

=============  ========================================================================
analyst        overview, new query, queries and hits (with CSV), disclosure requests
supervisor     the analyst's pages and the queue of incoming disclosure requests
auditor        overview, audit log, activity charts, bundle verification, reconciliation
admin          overview, admin (peers, agreements, users, epochs), the auditor's pages
=============  ========================================================================

Identifiers (our subjects' names and references, pasted identifiers, released records) are on
analyst and supervisor pages only (:func:`~fiumatch.node.web.views.may_see_identifiers`).

Never logs a form, a token or an identifier; error pages carry the error's reason only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.staticfiles import StaticFiles

from fiumatch.auditlog.checkpoint import NoteVerifier
from fiumatch.auditlog.entry import EventType, identifier_like
from fiumatch.auditlog.errors import AuditLogError
from fiumatch.errors import FiumatchError
from fiumatch.node.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from fiumatch.node.service import MODES, PURPOSES, NodeService
from fiumatch.node.web import charts, views
from fiumatch.node.web.security import (
    CsrfError,
    SecurityHeaders,
    SessionExpiredError,
    SessionManager,
    WebSession,
)
from fiumatch.store import User

__all__ = ["PREFIX", "WebInterface", "install"]

PREFIX = "/ui"
WEB_DIR = Path(__file__).parent
MAX_BODY = 64 * 1024 * 1024
MAX_FIELD = 8 * 1024 * 1024
ANALYSTS = ("analyst", "supervisor")
WEB_HITS = 2000
"""Hits a query page lists (filtered in the page); the CSV export has them all."""
AUDITORS = ("auditor", "admin")
EVERYONE = ("analyst", "supervisor", "auditor", "admin")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PURPOSE_LABELS = {
    "money_laundering": "Money laundering",
    "terrorist_financing": "Terrorist financing",
    "predicate_offence": "Predicate offence",
}
_MODE_LABELS = {
    "filter": "Filter: we learn which of our subjects the peer also holds; "
    "the peer learns only how many evaluations we asked for",
    "mutual": "Mutual: both sides learn the same intersection, signed by both",
    "cardinality": "Cardinality: we learn only how many subjects are shared",
}
_RELEASABLE = ("name", "local_ref", "subject_type", "birth_date", "countries")

NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Overview", "/", EVERYONE),
    ("New query", "/query/new", ANALYSTS),
    ("Queries", "/queries", ANALYSTS),
    ("Disclosures", "/disclosures", ANALYSTS),
    ("Supervisor queue", "/supervisor", ("supervisor",)),
    ("Audit log", "/audit", AUDITORS),
    ("Activity", "/audit/activity", AUDITORS),
    ("Verify bundle", "/audit/verify", AUDITORS),
    ("Reconcile", "/audit/reconcile", AUDITORS),
    ("Admin", "/admin", ("admin",)),
)


def install(app: FastAPI, service: NodeService) -> WebInterface:
    """Mount the web interface on ``app``: the pages, the static files and the security
    headers (the one call ``create_app`` makes)."""
    web = WebInterface(service)
    app.include_router(web.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=WEB_DIR / "static"), name="web-static")
    app.add_middleware(SecurityHeaders, prefix=PREFIX)
    return web


@dataclass
class Viewer:
    session: WebSession
    user: User

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def sees_identifiers(self) -> bool:
        return views.may_see_identifiers(self.user.role)


@dataclass
class FormState:
    """A form's submitted values and its errors by field name (shown next to the field)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    banner: str = ""
    id: str = "f"  # prefix of the controls' ids, unique per form on a page

    def error(self, name: str, text: str) -> None:
        self.errors.setdefault(name, text)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.banner


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _text(form: FormData | Mapping[str, Any], name: str, limit: int = 256) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _list(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def _upload(form: FormData, name: str, limit: int) -> bytes | None:
    value = form.get(name)
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    data = value.file.read(limit + 1)
    if len(data) > limit:
        raise ValueError("too large")
    return data


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _free_text_problem(value: str) -> str | None:
    problem = identifier_like(value)
    if problem:
        return "must not contain an identifier (it looks like " + problem + ")"
    return None


class WebInterface:
    """The router of the web pages and the state they share (sessions, templates, probes)."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.sessions = SessionManager(
            node_id=service.node_id, rng=service.rng, clock=service.clock
        )
        self.reach = views.Reachability(service.clock)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            prefix=PREFIX,
            node_id=service.node_id,
            purposes=PURPOSES,
            purpose_labels=_PURPOSE_LABELS,
            modes=MODES,
            mode_labels=_MODE_LABELS,
            strength_labels=views.STRENGTH_LABELS,
            utc=views.utc,
        )
        self.router = APIRouter()
        self._routes()

    # -- plumbing ----------------------------------------------------------------------------

    def _viewer(self, request: Request) -> Viewer:
        session = self.sessions.lookup(request.cookies.get(self.sessions.cookie_name))
        if session is None:
            raise SessionExpiredError("sign in first")
        user = self.service.store.users.get(session.user)
        if user is None or not user.active or user.token_id != session.token_id:
            self.sessions.destroy(session.sid)
            raise SessionExpiredError("your token changed or was disabled; sign in again")
        return Viewer(session, user)

    @staticmethod
    def _require(viewer: Viewer, roles: Sequence[str]) -> None:
        if viewer.role not in roles:
            raise PermissionDeniedError("your role does not allow this page", role=viewer.role)

    def render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        *,
        status: int = 200,
        title: str = "",
        **context: Any,
    ) -> HTMLResponse:
        path = request.url.path
        nav = []
        if viewer is not None:
            mine = [(label, PREFIX + href) for label, href, roles in NAV if viewer.role in roles]
            # The current page is the longest entry the path falls under (one entry only).
            under = [
                h for _, h in mine if path == h or (h != PREFIX + "/" and path.startswith(h + "/"))
            ]
            current = max(under, key=len, default=None)
            nav = [{"label": label, "href": h, "current": h == current} for label, h in mine]
        html = self.env.get_template(template).render(
            viewer=viewer,
            nav=nav,
            csrf=viewer.session.csrf if viewer else "",
            flashes=viewer.session.take_flashes() if viewer else [],
            title=title,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def _error_page(
        self, request: Request, viewer: Viewer | None, status: int, heading: str, reason: str
    ) -> HTMLResponse:
        return self.render(
            request,
            "error.html",
            viewer,
            status=status,
            title=heading,
            heading=heading,
            reason=reason,
        )

    def _guard(
        self,
        request: Request,
        roles: Sequence[str],
        run: Callable[[Viewer], Response],
    ) -> Response:
        """Sign-in and role checks, then ``run``; typed errors become pages, not JSON."""
        viewer: Viewer | None = None
        try:
            viewer = self._viewer(request)
            self._require(viewer, roles)
            return run(viewer)
        except SessionExpiredError:
            target = request.url.path
            if request.method == "GET" and request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(
                f"{PREFIX}/login?" + urlencode({"next": target}), status_code=303
            )
        except _Redirect as r:
            return RedirectResponse(r.url, status_code=303)
        except PermissionDeniedError as exc:
            return self._error_page(request, viewer, 403, "Not allowed", exc.reason)
        except CsrfError as exc:
            return self._error_page(request, viewer, 403, "Form refused", exc.reason)
        except NotFoundError as exc:
            return self._error_page(request, viewer, 404, "Not found", exc.reason)
        except FiumatchError as exc:
            return self._error_page(request, viewer, exc.http_status, "Refused", exc.reason)

    def _get(
        self, path: str, roles: Sequence[str]
    ) -> Callable[[Callable[[Request, Viewer], Response]], Callable[[Request, Viewer], Response]]:
        def deco(
            fn: Callable[[Request, Viewer], Response],
        ) -> Callable[[Request, Viewer], Response]:
            async def endpoint(request: Request) -> Response:
                return await run_in_threadpool(
                    self._guard, request, roles, lambda v: fn(request, v)
                )

            self.router.add_api_route(
                PREFIX + path, endpoint, methods=["GET"], include_in_schema=False
            )
            return fn

        return deco

    def _post(
        self, path: str, roles: Sequence[str]
    ) -> Callable[
        [Callable[[Request, Viewer, FormData], Response]],
        Callable[[Request, Viewer, FormData], Response],
    ]:
        def deco(
            fn: Callable[[Request, Viewer, FormData], Response],
        ) -> Callable[[Request, Viewer, FormData], Response]:
            async def endpoint(request: Request) -> Response:
                if int(request.headers.get("content-length") or 0) > MAX_BODY:
                    return HTMLResponse("request too large", status_code=413)
                try:
                    form = await request.form(max_files=4, max_fields=5000, max_part_size=MAX_FIELD)
                except Exception:  # starlette raises its own HTTPException for a bad body
                    return HTMLResponse("the form could not be read", status_code=400)
                try:

                    def run(viewer: Viewer) -> Response:
                        self.sessions.check_csrf(
                            viewer.session,
                            form.get("csrf"),
                            request.headers.get("origin"),
                            f"{request.url.scheme}://{request.url.netloc}",
                        )
                        return fn(request, viewer, form)

                    return await run_in_threadpool(self._guard, request, roles, run)
                finally:
                    await form.close()

            self.router.add_api_route(
                PREFIX + path, endpoint, methods=["POST"], include_in_schema=False
            )
            return fn

        return deco

    @staticmethod
    def _back(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    # -- routes ------------------------------------------------------------------------------

    def _routes(self) -> None:
        service = self.service
        store = service.store
        r = self.router

        @r.get("/", include_in_schema=False)
        def root() -> Response:
            return RedirectResponse(PREFIX + "/", status_code=303)

        @r.get(PREFIX, include_in_schema=False)
        def ui_root() -> Response:
            return RedirectResponse(PREFIX + "/", status_code=303)

        # sign in / out ------------------------------------------------------------------

        def login_page(request: Request, state: FormState, status: int = 200) -> Response:
            nonce, cookie = self.sessions.login_nonce()
            resp = self.render(
                request,
                "login.html",
                None,
                status=status,
                title="Sign in",
                f=state,
                nonce=nonce,
                next=_safe_next(_text(request.query_params, "next", 500)),
                signed_out=request.query_params.get("signed_out") == "1",
            )
            resp.set_cookie(
                self.sessions.login_cookie_name,
                cookie,
                path="/",
                secure=True,
                httponly=True,
                samesite="strict",
                max_age=3600,
            )
            return resp

        @r.get(PREFIX + "/login", include_in_schema=False)
        def login_get(request: Request) -> Response:
            if self.sessions.lookup(request.cookies.get(self.sessions.cookie_name)):
                return self._back(PREFIX + "/")
            return login_page(request, FormState())

        @r.post(PREFIX + "/login", include_in_schema=False)
        async def login_post(request: Request) -> Response:
            try:
                form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
            except Exception:  # starlette raises its own HTTPException for a bad body
                return HTMLResponse("the form could not be read", status_code=400)
            return await run_in_threadpool(login_submit, request, form)

        def login_submit(request: Request, form: FormData) -> Response:
            state = FormState()
            try:
                self.sessions.check_login_nonce(
                    form.get("nonce"), request.cookies.get(self.sessions.login_cookie_name)
                )
            except CsrfError as exc:
                state.banner = exc.reason
                return login_page(request, state, 403)
            token = _text(form, "token", 200)
            if not token:
                state.error("token", "Enter your user token")
                return login_page(request, state, 400)
            try:
                user = service.authenticate(token)
            except FiumatchError:
                service.audit.record("login", actor="web", extra={"outcome": "failed"})
                state.error("token", "This token is unknown, disabled or wrong")
                return login_page(request, state, 401)
            service.audit.record(
                "login", actor=user.name, extra={"outcome": "ok", "role": user.role}
            )
            _, cookie = self.sessions.create(user.name, user.token_id)
            resp = self._back(_safe_next(_text(form, "next", 500)) or PREFIX + "/")
            resp.set_cookie(
                self.sessions.cookie_name,
                cookie,
                path="/",
                secure=True,
                httponly=True,
                samesite="strict",
            )
            resp.delete_cookie(
                self.sessions.login_cookie_name,
                path="/",
                secure=True,
                httponly=True,
                samesite="strict",
            )
            return resp

        @self._post("/logout", EVERYONE)
        def logout(request: Request, viewer: Viewer, form: FormData) -> Response:
            self.sessions.destroy(viewer.session.sid)
            resp = self._back(PREFIX + "/login?signed_out=1")
            resp.delete_cookie(
                self.sessions.cookie_name,
                path="/",
                secure=True,
                httponly=True,
                samesite="strict",
            )
            return resp

        # overview -----------------------------------------------------------------------

        @self._get("/", EVERYONE)
        def overview(request: Request, viewer: Viewer) -> Response:
            peers = views.peer_statuses(service, self.reach)
            queries = service.list_queries(viewer.user)[:10]
            pending = 0
            if viewer.role == "supervisor":
                pending = sum(
                    1
                    for d in service.list_disclosures(viewer.user, "in")
                    if d["status"] == "pending"
                )
            return self.render(
                request,
                "overview.html",
                viewer,
                title="Overview",
                peers=peers,
                queries=queries,
                pending=pending,
                fingerprint=service.keys.fingerprint,
                epoch_hours=service.settings.epoch_rotation_seconds / 3600,
            )

        # queries ------------------------------------------------------------------------

        @self._get("/queries", ANALYSTS)
        def queries(request: Request, viewer: Viewer) -> Response:
            return self.render(
                request,
                "queries.html",
                viewer,
                title="Queries",
                queries=service.list_queries(viewer.user),
            )

        def new_query_page(
            request: Request, viewer: Viewer, state: FormState, status: int = 200
        ) -> Response:
            search = _text(request.query_params, "q", 100)
            found = service.search_subjects(viewer.user, search)
            subjects, total = found["subjects"], found["total"]
            peers = views.peer_statuses(service, self.reach)
            return self.render(
                request,
                "query_new.html",
                viewer,
                status=status,
                title="New query",
                f=state,
                subjects=subjects,
                total_subjects=total,
                search=search,
                peers=peers,
            )

        @self._get("/query/new", ANALYSTS)
        def new_query(request: Request, viewer: Viewer) -> Response:
            state = FormState(
                values={"mode": "filter", "peers": [p.node_id for p in store.peers.list_all()]}
            )
            return new_query_page(request, viewer, state)

        @self._post("/query/new", ANALYSTS)
        def new_query_post(request: Request, viewer: Viewer, form: FormData) -> Response:
            state = FormState(
                values={
                    "purpose": _text(form, "purpose"),
                    "legal_basis": _text(form, "legal_basis"),
                    "case_ref": _text(form, "case_ref"),
                    "mode": _text(form, "mode"),
                    "peers": _list(form, "peers"),
                    "subjects": _list(form, "subjects"),
                    "all_subjects": form.get("all_subjects") == "on",
                    "identifiers": _text(form, "identifiers", MAX_FIELD),
                }
            )
            v = state.values
            if v["purpose"] not in PURPOSES:
                state.error("purpose", "Choose the purpose of the query")
            for name, label in (("legal_basis", "legal basis"), ("case_ref", "case reference")):
                if not v[name]:
                    state.error(name, f"Enter the {label}")
                elif problem := _free_text_problem(v[name]):
                    state.error(name, f"The {label} {problem}")
            if v["mode"] not in MODES:
                state.error("mode", "Choose a mode")
            known = {p.node_id for p in store.peers.list_all()}
            if not v["peers"]:
                state.error("peers", "Choose at least one peer")
            elif not set(v["peers"]) <= known:
                state.error("peers", "Choose peers from the list")
            records: list[dict[str, str | list[str]]] = []
            try:
                records = views.parse_identifiers(v["identifiers"])
                uploaded = _upload(form, "identifiers_file", MAX_FIELD)
                if uploaded is not None:
                    records += views.parse_identifiers(uploaded.decode("utf-8-sig"))
            except views.PasteError as exc:
                state.error("identifiers", f"The identifiers cannot be read: {exc}")
            except (UnicodeDecodeError, ValueError):
                state.error("identifiers", "The uploaded file must be UTF-8 text of at most 8 MB")
            if not (v["subjects"] or v["all_subjects"] or records or "identifiers" in state.errors):
                state.error(
                    "subjects", "Pick stored subjects, tick all of them, or paste identifiers"
                )
            if state.ok:
                try:
                    q = service.create_query(
                        viewer.user,
                        purpose=v["purpose"],
                        legal_basis=v["legal_basis"],
                        case_ref=v["case_ref"],
                        mode=v["mode"],
                        subject_ids=v["subjects"],
                        all_subjects=v["all_subjects"],
                        records=records,
                        peers=v["peers"],
                    )
                except ConflictError as exc:
                    if "record" in exc.details:
                        given = exc.details.get("reasons")
                        listed = given if isinstance(given, list) else []
                        reasons = ", ".join(str(x) for x in listed) or "invalid fields"
                        state.error(
                            "identifiers",
                            f"Record {int(str(exc.details['record'])) + 1} was rejected: {reasons}",
                        )
                    else:
                        state.banner = exc.reason
                except NotFoundError:
                    state.error("subjects", "A chosen subject is no longer stored")
                else:
                    viewer.session.flash("ok", f"Query {q['id']} started")
                    return self._back(f"{PREFIX}/queries/{q['id']}")
            return new_query_page(request, viewer, state, 400)

        def query_filters(request: Request) -> dict[str, Any]:
            q = request.query_params
            strength = _text(q, "min_strength", 2)
            return {
                "peer": _text(q, "peer", 64),
                "key_type": _text(q, "key_type", 64),
                "min_strength": int(strength) if strength.isdigit() else 0,
            }

        @self._get("/queries/{query_id}", ANALYSTS)
        def query(request: Request, viewer: Viewer) -> Response:
            q = service.get_query(
                viewer.user, request.path_params["query_id"], hits_limit=WEB_HITS
            )
            filters = query_filters(request)
            hits = views.filter_hits(q["hits"], **filters)
            export = f"{PREFIX}/queries/{q['id']}/hits.csv?" + urlencode(
                {k: v for k, v in filters.items() if v}
            )
            return self.render(
                request,
                "query.html",
                viewer,
                title=f"Query {q['id']}",
                q=q,
                hits=hits,
                filters=filters,
                export=export,
                hit_peers=sorted({h["peer"] for h in q["hits"]}),
                hit_types=sorted({t for h in q["hits"] for t in h["key_types"]}),
            )

        @self._get("/queries/{query_id}/progress", ANALYSTS)
        def query_progress(request: Request, viewer: Viewer) -> Response:
            q = service.get_query(viewer.user, request.path_params["query_id"], hits_limit=0)
            return self.render(request, "_progress.html", viewer, q=q)

        @self._get("/queries/{query_id}/hits.csv", ANALYSTS)
        def query_csv(request: Request, viewer: Viewer) -> Response:
            # The export is every hit (the page shows at most WEB_HITS).
            q = service.get_query(viewer.user, request.path_params["query_id"], hits_limit=None)
            hits = views.filter_hits(q["hits"], **query_filters(request))
            return Response(
                views.hits_csv(q, hits).encode("utf-8"),
                media_type="text/csv; charset=utf-8",
                headers={
                    "content-disposition": f'attachment; filename="{q["id"]}-hits.csv"',
                    "cache-control": "no-store",
                },
            )

        # disclosures ---------------------------------------------------------------------

        def hit_context(hit_id: str) -> dict[str, Any]:
            hit = (
                store.queries.hit(hit_id) if re.fullmatch(r"[A-Za-z0-9_-]{1,80}", hit_id) else None
            )
            if hit is None:
                raise NotFoundError("no such hit")
            subject = store.subjects.get(hit.subject_id)
            q = store.queries.get(hit.query_id)
            return {
                "id": hit.id,
                "peer": hit.peer_id,
                "query": q,
                "local_ref": subject.local_ref if subject else "",
                "name": subject.display.get("name", "") if subject else "",
                "key_types": [views.key_type_name(t) for t in hit.key_types],
                "strength": hit.strength,
            }

        def disclose_page(
            request: Request, viewer: Viewer, hit: dict[str, Any], state: FormState, status: int
        ) -> Response:
            return self.render(
                request,
                "disclose.html",
                viewer,
                status=status,
                title="Request disclosure",
                hit=hit,
                f=state,
            )

        @self._get("/disclose", ANALYSTS)
        def disclose(request: Request, viewer: Viewer) -> Response:
            hit = hit_context(_text(request.query_params, "hit", 80))
            q = hit["query"]
            state = FormState(
                values={
                    "purpose": q.purpose if q else "",
                    "case_ref": q.case_ref if q else "",
                    "legal_basis": q.legal_basis if q else "",
                }
            )
            return disclose_page(request, viewer, hit, state, 200)

        @self._post("/disclose", ANALYSTS)
        def disclose_post(request: Request, viewer: Viewer, form: FormData) -> Response:
            hit = hit_context(_text(form, "hit", 80))
            state = FormState(
                values={
                    "purpose": _text(form, "purpose"),
                    "case_ref": _text(form, "case_ref"),
                    "legal_basis": _text(form, "legal_basis"),
                    "onward_recipient": _text(form, "onward_recipient"),
                    "onward_purpose": _text(form, "onward_purpose"),
                }
            )
            v = state.values
            if v["purpose"] not in PURPOSES:
                state.error("purpose", "Choose the purpose of the request")
            for name, label in (("case_ref", "case reference"), ("legal_basis", "legal basis")):
                if not v[name]:
                    state.error(name, f"Enter the {label}")
                elif problem := _free_text_problem(v[name]):
                    state.error(name, f"The {label} {problem}")
            if v["onward_recipient"] and not v["onward_purpose"]:
                state.error("onward_purpose", "Say why the data would be passed on")
            if v["onward_purpose"] and not v["onward_recipient"]:
                state.error("onward_recipient", "Say to whom the data would be passed on")
            for name in ("onward_recipient", "onward_purpose"):
                if v[name] and (problem := _free_text_problem(v[name])):
                    state.error(name, f"This {problem}")
            if state.ok:
                try:
                    d = service.request_disclosure(
                        viewer.user,
                        hit_id=hit["id"],
                        purpose=v["purpose"],
                        case_ref=v["case_ref"],
                        legal_basis=v["legal_basis"],
                        onward_recipient=v["onward_recipient"] or None,
                        onward_purpose=v["onward_purpose"] or None,
                    )
                except FiumatchError as exc:
                    if isinstance(exc, PermissionDeniedError | NotFoundError):
                        raise
                    code = exc.details.get("peer_code")
                    state.banner = exc.reason + (f" ({code})" if code else "")
                else:
                    viewer.session.flash(
                        "ok", f"Disclosure request {d['id']} sent to {d['peer']}: {d['status']}"
                    )
                    return self._back(PREFIX + "/disclosures")
            return disclose_page(request, viewer, hit, state, 400)

        @self._get("/disclosures", ANALYSTS)
        def disclosures(request: Request, viewer: Viewer) -> Response:
            rows = []
            for d in service.list_disclosures(viewer.user, "out"):
                stored = store.disclosures.get(d["id"])
                subject_id = stored.subject_id if stored else None
                subject = store.subjects.get(subject_id) if subject_id else None
                rows.append(
                    {
                        **d,
                        "local_ref": subject.local_ref if subject else "",
                        "name": subject.display.get("name", "") if subject else "",
                    }
                )
            return self.render(
                request, "disclosures.html", viewer, title="Disclosure requests", rows=rows
            )

        @self._post("/disclosures/{disclosure_id}/refresh", ANALYSTS)
        def disclosure_refresh(request: Request, viewer: Viewer, form: FormData) -> Response:
            did = request.path_params["disclosure_id"]
            try:
                d = service.refresh_disclosure(viewer.user, did)
            except FiumatchError as exc:
                if isinstance(exc, PermissionDeniedError | NotFoundError):
                    raise
                viewer.session.flash("error", f"{did}: the owner could not be asked ({exc.reason})")
            else:
                viewer.session.flash("ok", f"{did}: {d['status']}")
            return self._back(PREFIX + "/disclosures")

        def supervisor_page(
            request: Request, viewer: Viewer, states: dict[str, FormState], status: int = 200
        ) -> Response:
            pending, decided = [], []
            for d in service.list_disclosures(viewer.user, "in"):
                if d["status"] == "pending":
                    preview = service.preview_disclosure(viewer.user, d["id"])
                    record, why = preview["record"], preview["record_missing"]
                    state = states.get(d["id"]) or FormState(
                        values={"fields": ["name", "local_ref", "subject_type"]}
                    )
                    state.id = d["id"]
                    pending.append({**d, "record": record, "record_missing": why, "f": state})
                else:
                    decided.append(d)
            return self.render(
                request,
                "supervisor.html",
                viewer,
                status=status,
                title="Supervisor queue",
                pending=pending,
                decided=decided,
                releasable=_RELEASABLE,
            )

        @self._get("/supervisor", ("supervisor",))
        def supervisor(request: Request, viewer: Viewer) -> Response:
            return supervisor_page(request, viewer, {})

        @self._post("/supervisor/{disclosure_id}", ("supervisor",))
        def supervisor_decide(request: Request, viewer: Viewer, form: FormData) -> Response:
            did = request.path_params["disclosure_id"]
            state = FormState(
                values={
                    "decision": _text(form, "decision"),
                    "reason": _text(form, "reason", 1000),
                    "fields": _list(form, "fields"),
                    "onward": _text(form, "onward"),
                }
            )
            v = state.values
            stored = service.preview_disclosure(viewer.user, did)  # NotFoundError if none
            if v["decision"] not in ("approve", "refuse"):
                state.error("decision", "Choose approve or refuse")
            if not v["reason"]:
                state.error("reason", "Give the reason for the decision")
            if v["decision"] == "approve" and not v["fields"]:
                state.error("fields", "Choose at least one field to release")
            if not set(v["fields"]) <= set(_RELEASABLE):
                state.error("fields", "Choose fields from the list")
            asked_onward = stored["onward"]["status"] == "requested"
            if asked_onward and v["onward"] not in ("grant", "refuse"):
                state.error("onward", "Grant or refuse the onward dissemination asked for")
            if state.ok:
                try:
                    d = service.decide_disclosure(
                        viewer.user,
                        did,
                        approve=v["decision"] == "approve",
                        reason=v["reason"],
                        fields=v["fields"] if v["decision"] == "approve" else [],
                        onward_consent=asked_onward
                        and v["decision"] == "approve"
                        and v["onward"] == "grant",
                    )
                    if asked_onward and not (v["decision"] == "approve" and v["onward"] == "grant"):
                        d = service.decide_onward(viewer.user, did, grant=False, reason=v["reason"])
                except ConflictError as exc:
                    state.banner = exc.reason
                else:
                    viewer.session.flash("ok", f"{did}: {d['status']}")
                    return self._back(PREFIX + "/supervisor")
            return supervisor_page(request, viewer, {did: state}, 400)

        # auditor ------------------------------------------------------------------------

        sink = service.audit

        @self._get("/audit", AUDITORS)
        def audit_log(request: Request, viewer: Viewer) -> Response:
            qp = request.query_params
            state = FormState(
                values={
                    "peer": _text(qp, "peer", 64),
                    "session": _text(qp, "session", 64).lower(),
                    "event": _text(qp, "event", 64),
                    "since": _text(qp, "since", 10),
                    "until": _text(qp, "until", 10),
                }
            )
            v = state.values
            since, until = _date(v["since"]), _date(v["until"])
            if v["since"] and since is None:
                state.error("since", "Enter a date as YYYY-MM-DD")
            if v["until"] and until is None:
                state.error("until", "Enter a date as YYYY-MM-DD")
            if since and until and until < since:
                state.error("until", "The end date is before the start date")
            if v["session"] and not re.fullmatch(r"[0-9a-z-]{1,64}", v["session"]):
                state.error("session", "A session id is made of letters, digits and dashes")
            events = [e.name.lower() for e in EventType]
            if v["event"] and v["event"] not in events:
                state.error("event", "Choose an event type from the list")
            log = service.audit_entries(viewer.user)
            log_status = sink.status()
            entries = log["entries"]
            if state.ok:
                flt = views.LogFilter(v["peer"], v["session"], v["event"], since, until)
                entries = views.filter_entries(entries, flt)
            page = max(1, int(_text(qp, "page", 6)) if _text(qp, "page", 6).isdigit() else 1)
            per_page = 100
            newest = list(reversed(entries))
            shown = newest[(page - 1) * per_page : page * per_page]
            base = {k: val for k, val in v.items() if val}
            return self.render(
                request,
                "audit_log.html",
                viewer,
                status=200 if state.ok else 400,
                title="Audit log",
                f=state,
                entries=shown,
                matched=len(entries),
                size=log["size"],
                health=views.log_health(store, log_status.get("checkpoint"), sink.verifier),
                log_status=log_status,
                witness=sink.witness_report(),
                own_key=_own_log_key(sink),
                events=events,
                peers=[p.node_id for p in store.peers.list_all(include_revoked=True)],
                page=page,
                pages=max(1, -(-len(entries) // per_page)),
                page_link=lambda n: f"{PREFIX}/audit?" + urlencode({**base, "page": n}),
                detail=_entry_detail,
            )

        @self._get("/audit/activity", AUDITORS)
        def audit_activity(request: Request, viewer: Viewer) -> Response:
            log = service.audit_entries(viewer.user)
            now = service.now()
            peers = [p.node_id for p in store.peers.list_all()]
            budgets = {
                p: views.agreement_status(store.agreements.list_for_peer(p), now)[2] for p in peers
            }
            today = datetime.fromtimestamp(now, tz=UTC).date()
            activity = views.daily_activity(log["entries"], peers, budgets, today=today)
            drawn = [
                (
                    a,
                    charts.bar_chart(
                        [(d.day.strftime("%d %b"), d.evaluations) for d in a.days], a.budget
                    ),
                )
                for a in activity
            ]
            return self.render(
                request,
                "audit_activity.html",
                viewer,
                title="Activity per peer",
                drawn=drawn,
                epoch_hours=service.settings.epoch_rotation_seconds / 3600,
            )

        def key_choices() -> list[tuple[str, str]]:
            own = [("self", f"this node ({service.node_id})")]
            return own + [
                (f"peer:{p.node_id}", f"peer {p.node_id}") for p in store.peers.list_all()
            ]

        def key_for_choice(choice: str, vkey: str) -> Callable[[str], NoteVerifier]:
            """The verifier a bundle must pass: a pasted verifier key, or the pinned Ed25519
            key of this node or of a peer under its log's key name (``<node id>/audit``)."""
            from fiumatch.node.audit import log_verifier

            if vkey:
                verifier = NoteVerifier.from_vkey(vkey)
            elif choice == "self":
                verifier = log_verifier(service.node_id, service.keys.public_key_raw)
            else:
                peer = store.peers.get(choice.removeprefix("peer:"))
                if peer is None:
                    raise NotFoundError("no such peer")
                verifier = log_verifier(peer.node_id, peer.public_key)
            return lambda origin: verifier

        def known_keys() -> dict[str, Any]:
            """Every log this node knows (its own and its pinned peers'): the keys receipts
            and cosignatures inside a bundle are checked against."""
            from fiumatch.node.audit import cosigner_verifier, log_verifier

            nodes = [(service.node_id, service.keys.public_key_raw)] + [
                (p.node_id, p.public_key) for p in store.peers.list_all(include_revoked=True)
            ]
            return {
                "peer_keys": [log_verifier(n, k) for n, k in nodes],
                "cosigners": [cosigner_verifier(n, k) for n, k in nodes],
            }

        def bundle_form(
            form: FormData, state: FormState, names: Sequence[str], *, own: str = ""
        ) -> dict[str, tuple[bytes, Callable[[str], NoteVerifier]]]:
            """Each named bundle with its verifier; ``own`` names the one that, left empty,
            is this node's log exported now (checked with this node's pinned key)."""
            out = {}
            choices = {c for c, _ in key_choices()}
            for n in names:
                choice, vkey = _text(form, f"{n}_key", 80), _text(form, f"{n}_vkey", 500)
                state.values[f"{n}_key"], state.values[f"{n}_vkey"] = choice, vkey
                try:
                    data = _upload(form, f"{n}_bundle", MAX_BODY)
                except ValueError:
                    state.error(f"{n}_bundle", "The bundle is larger than 64 MB")
                    continue
                if data is None and n == own:
                    data, choice, vkey = b"".join(sink.export()), "self", ""
                if data is None:
                    state.error(f"{n}_bundle", "Choose a bundle file")
                if choice not in choices and not vkey:
                    state.error(f"{n}_key", "Choose the key the bundle must be signed with")
                key: Callable[[str], NoteVerifier] | None = None
                try:
                    key = key_for_choice(choice, vkey)
                except AuditLogError:
                    state.error(f"{n}_vkey", "This is not a verifier key (name+id+key)")
                if data is not None and key is not None:
                    out[n] = (data, key)
            return out

        @self._get("/audit/export", AUDITORS)
        def audit_export(request: Request, viewer: Viewer) -> Response:
            chunks = sink.export()  # signs a checkpoint at the current size first
            name = f"{service.node_id}-audit-{service.now()}.bundle"
            return StreamingResponse(
                chunks,
                media_type="application/octet-stream",
                headers={
                    "content-disposition": f'attachment; filename="{name}"',
                    "cache-control": "no-store",
                },
            )

        @self._get("/audit/verify", AUDITORS)
        def audit_verify(request: Request, viewer: Viewer) -> Response:
            return self.render(
                request,
                "audit_verify.html",
                viewer,
                title="Verify a bundle",
                f=FormState(values={"b_key": "self"}),
                keys=key_choices(),
                check=None,
            )

        @self._post("/audit/verify", AUDITORS)
        def audit_verify_post(request: Request, viewer: Viewer, form: FormData) -> Response:
            state = FormState()
            got = bundle_form(form, state, ["b"])
            check = None
            if state.ok and "b" in got:
                data, key = got["b"]
                check = views.verify_bundle(data, key, **known_keys())
            return self.render(
                request,
                "audit_verify.html",
                viewer,
                status=200 if state.ok else 400,
                title="Verify a bundle",
                f=state,
                keys=key_choices(),
                check=check,
            )

        @self._get("/audit/reconcile", AUDITORS)
        def audit_reconcile(request: Request, viewer: Viewer) -> Response:
            return self.render(
                request,
                "audit_reconcile.html",
                viewer,
                title="Reconcile with a peer",
                f=FormState(values={"a_key": "self", "b_key": ""}),
                keys=key_choices(),
                result=None,
            )

        @self._post("/audit/reconcile", AUDITORS)
        def audit_reconcile_post(request: Request, viewer: Viewer, form: FormData) -> Response:
            state = FormState()
            got = bundle_form(form, state, ["a", "b"], own="a")
            b_choice = state.values.get("b_key", "")
            peer = b_choice.removeprefix("peer:") if b_choice.startswith("peer:") else None
            result = None
            if state.ok and len(got) == 2:
                (a_data, a_key), (b_data, b_key) = got["a"], got["b"]
                result = views.reconcile_bundles(
                    a_data,
                    a_key,
                    b_data,
                    b_key,
                    a_name=service.node_id if peer else None,
                    b_name=peer,
                    **known_keys(),
                )
            return self.render(
                request,
                "audit_reconcile.html",
                viewer,
                status=200 if state.ok else 400,
                title="Reconcile with a peer",
                f=state,
                keys=key_choices(),
                result=result,
            )

        # admin --------------------------------------------------------------------------

        def admin_page(
            request: Request, viewer: Viewer, forms: dict[str, FormState], status: int = 200
        ) -> Response:
            agreements = [
                a
                for p in store.peers.list_all(include_revoked=True)
                for a in store.agreements.list_for_peer(p.node_id)
            ]
            today = datetime.fromtimestamp(service.now(), tz=UTC).date()
            defaults = {
                "peer": FormState(),
                "agreement": FormState(
                    values={
                        "modes": ["filter"],
                        "purposes": ["money_laundering"],
                        "id_types": [],
                        "budget_per_epoch": "10000",
                        "max_set_size": "1000",
                        "proofs": "on",
                        "valid_from": today.isoformat(),
                        "valid_until": (today + timedelta(days=365)).isoformat(),
                    }
                ),
                "user": FormState(values={"role": "analyst"}),
                "rotate": FormState(),
            }
            defaults.update(forms)
            for name, form_state in defaults.items():
                form_state.id = name
            issued = viewer.session.shown_once.pop("issued_token", None)
            return self.render(
                request,
                "admin.html",
                viewer,
                status=status,
                title="Admin",
                peers=store.peers.list_all(include_revoked=True),
                agreements=agreements,
                users=store.users.list_all(),
                epochs=service.epochs(),
                forms=defaults,
                id_types=_KEY_TYPES,
                issued=issued,
                now=service.now(),
                own_fingerprint=service.keys.fingerprint,
            )

        @self._get("/admin", ("admin",))
        def admin(request: Request, viewer: Viewer) -> Response:
            return admin_page(request, viewer, {})

        @self._post("/admin/peers", ("admin",))
        def admin_peer(request: Request, viewer: Viewer, form: FormData) -> Response:
            from fiumatch.client.peer import PeerError

            state = FormState(
                values={
                    "node_id": _text(form, "node_id", 64),
                    "url": _text(form, "url", 300),
                    "fingerprint": _text(form, "fingerprint", 100),
                }
            )
            v = state.values
            if not _NAME_RE.match(v["node_id"]):
                state.error("node_id", "A node id is 1-64 letters, digits, dots, dashes or _")
            if not re.fullmatch(r"https://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?", v["url"]):
                state.error("url", "Enter the peer's https:// base URL (scheme, host, port)")
            if not re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", v["fingerprint"]):
                state.error(
                    "fingerprint",
                    "Enter the fingerprint the peer's operator gave you "
                    "(SHA256: and 43 characters)",
                )
            if state.ok:
                try:
                    p = service.add_peer(viewer.user, v["node_id"], v["url"], v["fingerprint"])
                except PeerError:
                    state.error("url", "The peer could not be reached at this URL")
                except FiumatchError as exc:
                    if exc.code == "fingerprint_mismatch" or "fetched" in exc.details:
                        state.error(
                            "fingerprint",
                            "The peer presents a different key. Do not pin it: check the "
                            "fingerprint with the peer's operator out of band",
                        )
                    elif exc.code == "peer_refused" or "describe" in exc.reason:
                        state.error("url", "No fiumatch node answers at this URL")
                    elif "announced" in exc.details:
                        state.error("node_id", "The peer at this URL announces another node id")
                    elif isinstance(exc, ConflictError):
                        state.error("node_id", "This peer (or its key) is already pinned")
                    else:
                        raise
                else:
                    self.reach.forget(p.node_id)
                    viewer.session.flash("ok", f"Peer {p.node_id} pinned ({p.fingerprint})")
                    return self._back(PREFIX + "/admin#peers")
            return admin_page(request, viewer, {"peer": state}, 400)

        @self._post("/admin/agreements", ("admin",))
        def admin_agreement(request: Request, viewer: Viewer, form: FormData) -> Response:
            state = FormState(
                values={
                    "peer": _text(form, "peer", 64),
                    "modes": _list(form, "modes"),
                    "purposes": _list(form, "purposes"),
                    "id_types": _list(form, "id_types"),
                    "budget_per_epoch": _text(form, "budget_per_epoch", 12),
                    "max_set_size": _text(form, "max_set_size", 12),
                    "valid_from": _text(form, "valid_from", 10),
                    "valid_until": _text(form, "valid_until", 10),
                    "proofs": _text(form, "proofs", 3) or "on",
                }
            )
            v = state.values
            if v["proofs"] not in ("on", "off"):
                state.error("proofs", "Choose on or off")
            if store.peers.get(v["peer"]) is None:
                state.error("peer", "Choose a pinned peer")
            if not v["modes"] or not set(v["modes"]) <= set(MODES):
                state.error("modes", "Choose at least one mode")
            if not v["purposes"] or not set(v["purposes"]) <= set(PURPOSES):
                state.error("purposes", "Choose at least one purpose")
            if not v["id_types"] or not set(v["id_types"]) <= set(_KEY_TYPES):
                state.error("id_types", "Choose at least one identifier type")
            for name in ("budget_per_epoch", "max_set_size"):
                if not v[name].isdigit():
                    state.error(name, "Enter a whole number, 0 or more")
            start, end = _date(v["valid_from"]), _date(v["valid_until"])
            if start is None:
                state.error("valid_from", "Enter a date as YYYY-MM-DD")
            if end is None:
                state.error("valid_until", "Enter a date as YYYY-MM-DD")
            elif start is not None and end < start:
                state.error("valid_until", "The agreement must end on or after its first day")
            if state.ok and start is not None and end is not None:
                a = service.add_agreement(
                    viewer.user,
                    peer_id=v["peer"],
                    modes=v["modes"],
                    purposes=v["purposes"],
                    identifier_types=v["id_types"],
                    budget_per_epoch=int(v["budget_per_epoch"]),
                    max_set_size=int(v["max_set_size"]),
                    valid_from=_midnight(start),
                    valid_until=_midnight(end + timedelta(days=1)),
                    proofs=v["proofs"] == "on",
                )
                viewer.session.flash("ok", f"Agreement {a.id} with {a.peer_id} recorded")
                return self._back(PREFIX + "/admin#agreements")
            return admin_page(request, viewer, {"agreement": state}, 400)

        @self._post("/admin/users", ("admin",))
        def admin_user(request: Request, viewer: Viewer, form: FormData) -> Response:
            state = FormState(
                values={"name": _text(form, "name", 64), "role": _text(form, "role", 20)}
            )
            v = state.values
            if not _NAME_RE.match(v["name"]):
                state.error("name", "A user name is 1-64 letters, digits, dots, dashes or _")
            if v["role"] not in EVERYONE:
                state.error("role", "Choose a role")
            if state.ok:
                try:
                    token = service.add_user(viewer.user, v["name"], v["role"])
                except ConflictError:
                    state.error("name", "A user with this name exists")
                else:
                    viewer.session.shown_once["issued_token"] = {
                        "name": v["name"],
                        "role": v["role"],
                        "token": token,
                    }
                    return self._back(PREFIX + "/admin#users")
            return admin_page(request, viewer, {"user": state}, 400)

        def admin_change(
            viewer: Viewer, anchor: str, what: str, change: Callable[[], str]
        ) -> Response:
            """Run one admin change; say how it went in a flash message."""
            try:
                done = change()
            except (ConflictError, NotFoundError) as exc:
                viewer.session.flash("error", f"{what}: {exc.reason}")
            else:
                viewer.session.flash("ok", done)
            return self._back(PREFIX + "/admin#" + anchor)

        @self._post("/admin/peers/revoke", ("admin",))
        def admin_revoke_peer(request: Request, viewer: Viewer, form: FormData) -> Response:
            peer = _text(form, "peer", 64)

            def revoke() -> str:
                p = service.revoke_peer(viewer.user, peer)
                self.reach.forget(p.node_id)
                return f"Peer {p.node_id} revoked: its requests are refused from now on"

            return admin_change(viewer, "peers", f"Peer {peer}", revoke)

        @self._post("/admin/agreements/revoke", ("admin",))
        def admin_revoke_agreement(request: Request, viewer: Viewer, form: FormData) -> Response:
            agreement = _text(form, "agreement", 64)

            def revoke() -> str:
                a = service.revoke_agreement(viewer.user, agreement)
                return f"Agreement {a.id} with {a.peer_id} revoked"

            return admin_change(viewer, "agreements", f"Agreement {agreement}", revoke)

        @self._post("/admin/users/disable", ("admin",))
        def admin_disable_user(request: Request, viewer: Viewer, form: FormData) -> Response:
            name = _text(form, "user", 64)

            def disable() -> str:
                u = service.disable_user(viewer.user, name)
                return f"User {u.name} disabled: their token no longer works"

            return admin_change(viewer, "users", f"User {name}", disable)

        @self._post("/admin/rotate", ("admin",))
        def admin_rotate(request: Request, viewer: Viewer, form: FormData) -> Response:
            peer = _text(form, "peer", 64)
            state = FormState(values={"peer": peer})
            if peer and store.peers.get(peer) is None:
                state.error("peer", "Choose a pinned peer or all peers")
                return admin_page(request, viewer, {"rotate": state}, 400)
            done = service.rotate(viewer.name, peer or None, wait=True)
            text = "; ".join(
                f"{d['peer']}: epoch {d['old_epoch']} → {d['new_epoch']}" for d in done
            )
            viewer.session.flash("ok", "Rotated " + (text or "nothing (no peers)"))
            return self._back(PREFIX + "/admin#epochs")


def _own_log_key(sink: Any) -> dict[str, str]:
    """This log's origin, verifier key and fingerprint (what an auditor pins), if it signs."""
    try:
        keys = sink.keys()
    except FiumatchError:
        return {}
    return {k: str(keys[k]) for k in ("origin", "log_key", "fingerprint") if k in keys}


def _midnight(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp())


def _safe_next(target: str) -> str:
    """Only redirect after sign-in to a page of this interface (never off-site)."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


def _entry_detail(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The fields of an audit entry beyond the table's columns, digests shortened."""
    skip = {"seq", "time_ms", "event", "actor", "peer", "session", "direction"}
    out = []
    for k, v in entry.items():
        if k in skip:
            continue
        text = str(v)
        if k.endswith("_sha256") or k == "epoch_public_key":
            text = text[:16] + "…"
        out.append((k, text))
    return out


def _key_types() -> tuple[str, ...]:
    from fiumatch.identifiers import KeyType

    return tuple(k.value for k in KeyType)


_KEY_TYPES = _key_types()
