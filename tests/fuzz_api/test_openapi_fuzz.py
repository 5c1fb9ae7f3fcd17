"""Schemathesis over the node's OpenAPI, in process (ASGI, no sockets), over every route: peer
(``/peer/v1``, signed: generated requests are unsigned and must be refused with a documented
4xx), analyst and admin (``/api/v1``) and auditor (``/audit/v1``), each called with the token
of the role the route is for. Goal: no 5xx, no response the schema does not document, no body
that contradicts its schema. Bounded: a few examples per operation (about 30 s in all).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from fiumatch.node.app import build_service, create_app
from fiumatch.node.directory import create_node_dir
from fiumatch.store import Role, User, issue_token

pytestmark = pytest.mark.slow

ROLES: tuple[Role, ...] = ("analyst", "supervisor", "auditor")

# Not checked: whether a schema-valid request is accepted (a well-formed id that does not exist
# is rightly 404, a range past the log's end 400) or a schema-violating one refused (pydantic's
# lax mode takes 0 for false, by design); and the Allow header of Starlette's 405, which names
# only the first route matching the path. Everything about the responses is checked.
OTHERS = [
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
]
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.ignored_auth,
]


def _node(root: Path) -> tuple[Any, dict[str, str]]:
    opened, _, admin = create_node_dir(root / "FIU-S", "FIU-S", port=8443, scrypt_log2_n=10)
    tokens = {"admin": admin}
    with opened.open_store() as store:
        for role in ROLES:
            t = issue_token(os.urandom)
            store.users.add(
                User(
                    name=f"{role}-s",
                    role=role,
                    token_id=t.token_id,
                    token_hash=t.token_hash,
                    created_at=int(time.time()),
                )
            )
            tokens[role] = t.token
    service = build_service(opened.root)
    return create_app(service, scheduler=False), tokens


_ROOT = Path(os.environ.get("TMPDIR", "/tmp")) / f"fiumatch-schemathesis-{os.getpid()}"
_APP, _TOKENS = _node(_ROOT)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


def _role(path: str, method: str) -> str:
    if path.startswith("/audit/"):
        return "auditor"
    if path.startswith("/api/v1/disclosures") and path.endswith("/decision"):
        return "supervisor"
    if path.startswith(("/api/v1/queries", "/api/v1/disclosures", "/api/v1/sessions")):
        return "analyst"
    return "admin"


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _APP.state.service.close()
    _APP.state.service.store.close()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_route_answers_within_its_schema(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    role = _role(case.path, case.method)
    headers = {"authorization": f"Bearer {_TOKENS[role]}"}
    case.call_and_validate(headers=headers, checks=CHECKS, excluded_checks=OTHERS)
