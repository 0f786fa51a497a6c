"""Tokens are kept hashed and can be revoked; dashboard sessions are signed, HttpOnly, SameSite=Lax
and Secure over https; a request changed through a session needs its CSRF token; errors carry no
traceback."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Depends, Request, Response
from fastapi.testclient import TestClient

from shipyard.errors import ConfigError, NotFound
from shipyard.store import Store
from shipyard.web.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Identity,
    Role,
    TokenStore,
    csrf_token,
    end_session,
    server_secret,
    start_session,
    verify_csrf,
)
from tests.web.conftest import Server, make_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for server in make_server(tmp_path_factory.mktemp("auth")):
        app = server.app  # routes that use the session helpers as the dashboard does

        async def login(request: Request, response: Response) -> dict[str, str]:
            form = await request.form()
            found = request.app.state.tokens.authenticate(str(form.get("token", "")))
            if found is None:
                response.status_code = 401
                return {}
            start_session(response, found)
            return {"name": found.name}

        async def logout(response: Response) -> dict[str, str]:
            end_session(response)
            return {}

        async def form_post(request: Request, _ok: None = Depends(verify_csrf)) -> dict[str, str]:
            return {"csrf": csrf_token(request)}

        app.add_api_route("/test-login", login, methods=["POST"])
        app.add_api_route("/test-logout", logout, methods=["POST"])
        app.add_api_route("/test-form", form_post, methods=["POST"])
        yield server


def session(site: Server, who: str, *, https: bool = False) -> TestClient:
    client = TestClient(site.app, base_url="https://testserver" if https else "http://testserver")
    done = client.post("/test-login", data={"token": site.tokens[who]})
    assert done.status_code == 200, done.text
    return client


def test_tokens_are_stored_hashed_and_shown_once(tmp_path: Path) -> None:
    with Store.open(home=tmp_path) as store:
        tokens = TokenStore(store)
        info, secret = tokens.create(name="ci-bot", role=Role.REVIEWER, created_by="ops")
        assert secret.startswith("shy_")
        assert len(secret) > 40
        assert tokens.authenticate(secret) == Identity(
            name="ci-bot", role=Role.REVIEWER, token_id=info.id
        )
        assert tokens.list()[0].last_used_at is not None
        assert tokens.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert tokens.authenticate("ci-bot") is None
        tokens.revoke(info.id)
        assert tokens.authenticate(secret) is None
        assert not tokens.list()[0].active
        with pytest.raises(NotFound):
            tokens.revoke("tok_nothere")
        with pytest.raises(ConfigError, match="unknown role 'root'"):
            Role.parse("root")
        with pytest.raises(ConfigError, match="not usable"):
            tokens.create(name="  ", role=Role.VIEWER, created_by="ops")
    raw = (tmp_path / "shipyard.db").read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(tmp_path / "shipyard.db") as conn:
        (stored,) = conn.execute("SELECT token_hash FROM api_tokens").fetchone()
    assert len(stored) == 64
    assert stored not in secret


def test_the_server_secret_is_private_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    first = server_secret(tmp_path)
    path = tmp_path / "server-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert server_secret(tmp_path) == first
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        server_secret(tmp_path)


def test_a_session_cookie_is_signed_httponly_lax_and_secure_over_https(site: Server) -> None:
    client = TestClient(site.app, base_url="https://testserver")
    done = client.post("/test-login", data={"token": site.tokens["alice"]})
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" in cookie
    assert site.tokens["alice"] not in cookie
    plain = TestClient(site.app).post("/test-login", data={"token": site.tokens["alice"]})
    assert "Secure" not in plain.headers["set-cookie"]
    assert client.get("/api/reviews").status_code == 200


def test_a_session_changes_nothing_without_its_csrf_token(site: Server) -> None:
    client = session(site, "admin")
    body = {"name": "second", "path": str(site.repo)}
    refused = client.post("/api/repos", json=body)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    wrong = client.post("/api/repos", json=body, headers={CSRF_HEADER: "guess"})
    assert wrong.status_code == 403
    assert "second" not in [r["name"] for r in client.get("/api/repos").json()]

    token = client.post("/test-form", data={"csrf_token": "x"})
    assert token.status_code == 403
    form = client.get("/api/reviews")  # any page: the token comes with the session
    assert form.status_code == 200
    csrf = _csrf(client)
    ok = client.post("/test-form", data={"csrf_token": csrf})
    assert ok.status_code == 200
    assert ok.json()["csrf"] == csrf
    # Another session's token does not fit this one.
    other = _csrf(session(site, "admin"))
    assert client.post("/test-form", data={"csrf_token": other}).status_code == 403
    # A form post without any session is refused too.
    assert TestClient(site.app).post("/test-form", data={"csrf_token": csrf}).status_code == 403


def _csrf(client: TestClient) -> str:
    done = client.post("/test-form", headers={CSRF_HEADER: "probe"})
    assert done.status_code == 403  # needs the real one; read it from the signed cookie instead
    from itsdangerous import URLSafeTimedSerializer

    value = client.cookies[SESSION_COOKIE]
    secret = client.app.state.session_secret  # type: ignore[attr-defined]
    data = URLSafeTimedSerializer(secret, salt="shipyard.session").loads(value)
    return str(data["c"])


def test_revoking_the_token_ends_its_sessions_and_logout_clears_the_cookie(site: Server) -> None:
    info, secret = site.app.state.tokens.create(name="temp", role=Role.VIEWER, created_by="t")
    client = TestClient(site.app)
    assert client.post("/test-login", data={"token": secret}).status_code == 200
    assert client.get("/api/runs").status_code == 200
    site.app.state.tokens.revoke(info.id)
    assert client.get("/api/runs").status_code == 401

    alice = session(site, "alice")
    out = alice.post("/test-logout")
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]
    assert alice.get("/api/runs").status_code == 401


def test_a_tampered_session_cookie_is_refused(site: Server) -> None:
    value = session(site, "vic").cookies[SESSION_COOKIE]
    fresh = TestClient(site.app)
    assert (
        fresh.get("/api/runs", headers={"Cookie": f"{SESSION_COOKIE}={value}"}).status_code == 200
    )
    for tampered in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "x" + value[1:]):
        done = fresh.get("/api/runs", headers={"Cookie": f"{SESSION_COOKIE}={tampered}"})
        assert done.status_code == 401


def test_errors_are_one_json_shape_without_a_traceback(site: Server) -> None:
    def boom() -> None:
        raise RuntimeError("secret internals sk-proj-" + "S" * 24)

    site.app.add_api_route("/test-boom", boom)
    client = TestClient(site.app, raise_server_exceptions=False)
    done = client.get("/test-boom")
    assert done.status_code == 500
    assert done.json() == {
        "error": {"code": "internal", "message": "internal error; the server log has the details"}
    }
    invalid = site.get("/api/runs", params={"limit": "many"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["problems"][0]["field"] == "query.limit"
    leaked = site.post(
        "/api/repos", json={"name": "x", "path": "/x", "token": "sk-proj-" + "T" * 24}
    )
    assert leaked.status_code == 422
    assert "T" * 24 not in leaked.text
    assert site.client.get("/api/nothing", headers=site.auth("vic")).json()["error"]["code"] == (
        "not_found"
    )
