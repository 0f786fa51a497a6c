"""Every endpoint, tried with no token, a wrong token, a revoked token and each role: the role it
needs lets it through, anything less is refused, and refusals change nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.web.auth import Role
from tests.web.conftest import Server, make_server

RUN = "no-such-run"
# (method, path, JSON body, role needed). Requests that pass the role check may still fail
# (404, 422): what matters here is that they were not refused for who sent them.
MATRIX: list[tuple[str, str, object, Role]] = [
    ("GET", "/metrics", None, Role.VIEWER),
    ("GET", "/api/runs", None, Role.VIEWER),
    ("GET", f"/api/runs/{RUN}", None, Role.VIEWER),
    ("GET", f"/api/runs/{RUN}/events", None, Role.VIEWER),
    ("GET", f"/api/runs/{RUN}/gates", None, Role.VIEWER),
    ("GET", f"/api/runs/{RUN}/diff", None, Role.VIEWER),
    ("GET", f"/api/runs/{RUN}/transcript", None, Role.VIEWER),
    ("GET", f"/api/runs/{RUN}/stream", None, Role.VIEWER),
    ("GET", "/api/stream", None, Role.VIEWER),
    ("GET", "/api/reviews", None, Role.VIEWER),
    ("GET", "/api/repos", None, Role.VIEWER),
    ("GET", "/api/repos/example", None, Role.VIEWER),
    ("GET", "/api/schedules", None, Role.VIEWER),
    ("GET", "/api/schedules/sch_none", None, Role.VIEWER),
    ("GET", "/api/metrics/summary", None, Role.VIEWER),
    ("POST", "/api/tasks", {"blueprint": "deps", "repo": "unregistered"}, Role.REVIEWER),
    ("POST", f"/api/reviews/{RUN}/approve", {"comment": "ok"}, Role.REVIEWER),
    ("POST", f"/api/reviews/{RUN}/reject", {"comment": "no"}, Role.REVIEWER),
    ("POST", "/api/repos", {"name": "other", "path": "/nonexistent"}, Role.ADMIN),
    ("PATCH", "/api/repos/unregistered", {"github": "acme/x"}, Role.ADMIN),
    ("DELETE", "/api/repos/unregistered", None, Role.ADMIN),
    (
        "POST",
        "/api/schedules",
        {"cron": "0 6 * * 1", "task": {"blueprint": "deps", "repo": "unregistered"}},
        Role.ADMIN,
    ),
    ("PATCH", "/api/schedules/sch_none", {"enabled": False}, Role.ADMIN),
    ("DELETE", "/api/schedules/sch_none", None, Role.ADMIN),
]
# Open on purpose: liveness for load balancers, and the webhook, which is authenticated by its
# HMAC signature instead (tests/web/test_webhooks.py).
OPEN = {("GET", "/healthz"), ("POST", "/api/webhooks/github")}
WHO = {Role.VIEWER: "vic", Role.REVIEWER: "alice", Role.ADMIN: "admin"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from make_server(tmp_path_factory.mktemp("roles"))


def test_the_matrix_covers_every_endpoint(site: Server) -> None:
    paths = site.app.openapi()["paths"]
    described = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    covered = {(m, _template(paths, m, p)) for m, p, _, _ in MATRIX} | OPEN
    assert described == covered


def _template(paths: dict[str, dict[str, object]], method: str, path: str) -> str:
    """The OpenAPI path template that ``path`` matches for ``method``."""
    for template, ops in paths.items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if method.lower() in ops and re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{method} {path} matches no described endpoint")


@pytest.mark.parametrize(("method", "path", "body", "needed"), MATRIX)
def test_no_wrong_or_revoked_token_gets_in(
    site: Server, method: str, path: str, body: object, needed: Role
) -> None:
    revoked_info, revoked = site.app.state.tokens.create(
        name="gone", role=Role.ADMIN, created_by="test"
    )
    site.app.state.tokens.revoke(revoked_info.id)
    for headers in (
        {},
        {"Authorization": "Bearer shy_wrong-token-0123456789abcdef"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {site.tokens['admin']}"},
        {"Authorization": f"Bearer {revoked}"},
        {"Cookie": "shipyard_session=forged.value.here"},
    ):
        done = site.client.request(method, path, json=body, headers=headers)
        assert done.status_code == 401, (headers, done.text)
        assert done.json()["error"]["code"] == "unauthorized"
        assert "Traceback" not in done.text


@pytest.mark.parametrize(("method", "path", "body", "needed"), MATRIX)
def test_each_role_gets_what_it_needs_and_nothing_more(
    site: Server, method: str, path: str, body: object, needed: Role
) -> None:
    if path == "/api/stream":
        pytest.skip("the endless stream is tried with each role in tests/web/test_stream.py")
    for role, name in WHO.items():
        done = site.client.request(method, path, json=body, headers=site.auth(name))
        if role >= needed:
            assert done.status_code not in (401, 403), (name, done.text)
        else:
            assert done.status_code == 403, (name, done.text)
            assert done.json()["error"]["code"] == "forbidden"
            assert needed.label in done.json()["error"]["message"]


def test_refused_writes_change_nothing(site: Server, tmp_path: Path) -> None:
    before = site.get("/api/repos").json()
    for who in ("vic", "alice"):
        done = site.post("/api/repos", who, json={"name": "sneaky", "path": str(site.repo)})
        assert done.status_code == 403
        assert site.client.delete("/api/repos/example", headers=site.auth(who)).status_code == 403
    assert site.get("/api/repos").json() == before
