"""Who is calling, and what they may do: API tokens, roles, dashboard sessions and CSRF.

Contract (used by the API and the dashboard alike):

- ``Role``: ``VIEWER < REVIEWER < ADMIN``. Viewers read everything; reviewers also submit tasks and
  approve or reject reviews; admins also manage repositories and schedules.
- ``Identity(name, role)``: the caller. ``name`` is the token's name; it is the ``requested_by`` of
  runs the caller starts and the reviewer of approvals, so a token cannot approve its own runs.
- ``TokenStore(store)``: tokens kept as the SHA-256 of a 256-bit random secret that starts with
  ``shy_``; the secret is shown once, at creation. ``create``, ``list``, ``revoke``, ``authenticate``
  (which also records when a token was last used).
- FastAPI dependencies: ``current_identity`` (``Authorization: Bearer shy_...`` or the dashboard's
  session cookie; 401 otherwise) and ``require(Role.X)`` (403 below that role). A request that
  changes something (not GET/HEAD/OPTIONS) and is authenticated by the cookie must carry the
  session's CSRF token, in the ``X-CSRF-Token`` header or a ``csrf_token`` form field.
- Sessions: ``start_session(response, identity)`` after the dashboard's login form checked a token,
  ``end_session(response)`` at logout. The cookie holds only the token's id and a CSRF nonce,
  signed with itsdangerous using the server secret in ``$SHIPYARD_HOME/server-secret`` (mode 0600);
  it is HttpOnly, SameSite=Lax, and Secure when the request came over https. Revoking the token
  ends its sessions.
- CSRF: ``csrf_token(request)`` for a form's hidden ``csrf_token`` field (empty without a session);
  ``verify_csrf`` as a dependency of form posts (403 when missing or wrong).
- Login CSRF (before there is a session): ``login_csrf(request, response)`` puts a random nonce in a
  short-lived SameSite=Strict cookie and returns its signed copy for the login form's hidden field;
  ``check_login_csrf(request, sent)`` refuses (403) a login post whose field does not sign that
  cookie's nonce, so another site cannot log a browser in to an account of its choosing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import insert, select, update

from shipyard.errors import ConfigError, NotFound
from shipyard.store import Store
from shipyard.store.tables import api_tokens
from shipyard.web.records import reading, writing

TOKEN_PREFIX = "shy_"
SESSION_COOKIE = "shipyard_session"
LOGIN_COOKIE = "shipyard_login"
LOGIN_FORM_SECONDS = 3600  # how long a login page's form stays usable
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SECRET_FILE = "server-secret"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LAST_USED_EVERY = timedelta(minutes=1)  # spare the store a write on every request


class Role(IntEnum):
    """What an identity may do; each role may do everything the ones below it may."""

    VIEWER = 1
    REVIEWER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            known = ", ".join(r.label for r in cls)
            raise ConfigError(f"unknown role {value!r}; use one of: {known}.") from None


@dataclass(frozen=True)
class Identity:
    """The caller of a request."""

    name: str
    role: Role
    token_id: str | None = None
    via: str = "token"  # token | session


@dataclass(frozen=True)
class TokenInfo:
    """A token as ``token list`` shows it: never the secret, which is not kept."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenStore:
    """API tokens in the store, hashed."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def create(self, *, name: str, role: Role, created_by: str) -> tuple[TokenInfo, str]:
        """A new token; returns its record and its secret, which cannot be shown again."""
        name = name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise ConfigError(
                f"token name {name!r} is not usable: give 1 to 64 printable characters "
                "(it names who acts, e.g. `ci-bot` or `alice`)."
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id="tok_" + secrets.token_hex(4),
            name=name,
            role=role,
            created_at=datetime.now(UTC),
            created_by=created_by,
            last_used_at=None,
            revoked_at=None,
        )
        with writing(self.engine, "creating an API token") as conn:
            conn.execute(
                insert(api_tokens).values(
                    id=info.id,
                    name=info.name,
                    role=info.role.label,
                    token_hash=hash_token(secret),
                    created_at=info.created_at,
                    created_by=created_by,
                )
            )
        return info, secret

    def list(self) -> list[TokenInfo]:
        with reading(self.engine, "listing API tokens") as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.created_at)).all()
        return [_info(r) for r in rows]

    def get(self, token_id: str) -> TokenInfo:
        with reading(self.engine, f"reading API token {token_id}") as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"there is no API token {token_id!r}; `shipyard token list` shows them.")
        return _info(row)

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token by id; requests and sessions using it are refused from now on."""
        with writing(self.engine, f"revoking API token {token_id}") as conn:
            done = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        info = self.get(token_id)  # NotFound for an unknown id
        if done.rowcount == 0 and info.revoked_at is None:  # pragma: no cover - raced
            raise NotFound(f"API token {token_id} could not be revoked; try again.")
        return info

    def authenticate(self, secret: str) -> Identity | None:
        """The identity of an active token's secret, or None."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        with reading(self.engine, "checking an API token") as conn:
            row = conn.execute(
                select(api_tokens).where(api_tokens.c.token_hash == hash_token(secret))
            ).first()
        if row is None:
            return None
        return self._use(_info(row))

    def identity_of(self, token_id: str) -> Identity | None:
        """The identity of an active token by id (for sessions), or None."""
        with reading(self.engine, "checking a session") as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return None if row is None else self._use(_info(row), via="session")

    def _use(self, info: TokenInfo, *, via: str = "token") -> Identity | None:
        if not info.active:
            return None
        now = datetime.now(UTC)
        if info.last_used_at is None or now - info.last_used_at > _LAST_USED_EVERY:
            with writing(self.engine, "recording an API token's use") as conn:
                conn.execute(
                    update(api_tokens).where(api_tokens.c.id == info.id).values(last_used_at=now)
                )
        return Identity(name=info.name, role=info.role, token_id=info.id, via=via)


def _info(row: Any) -> TokenInfo:
    from shipyard.store.codec import utc

    return TokenInfo(
        id=row.id,
        name=row.name,
        role=Role.parse(row.role),
        created_at=utc(row.created_at),
        created_by=row.created_by,
        last_used_at=None if row.last_used_at is None else utc(row.last_used_at),
        revoked_at=None if row.revoked_at is None else utc(row.revoked_at),
    )


# --- the server secret -------------------------------------------------------------------------


def server_secret(home: Path) -> bytes:
    """The secret that signs session cookies: created once (0600) in the shipyard home."""
    path = home / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`: "
            "it signs the dashboard's sessions."
        )
    value = path.read_text(encoding="ascii").strip()
    if len(value) < 32:
        raise ConfigError(f"{path} holds too short a secret; delete it to have a new one made.")
    return value.encode("ascii")


# --- request authentication --------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False, description="An API token: `shipyard token create --name N --role R`."
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The dashboard's session cookie."
)
_request: ContextVar[Request | None] = ContextVar("shipyard_request", default=None)


def remember_request(request: Request) -> None:
    """Called by the app for each request so that session helpers can find their server."""
    _request.set(request)


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.session_secret, salt="shipyard.session")


def _session(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    max_age = int(request.app.state.settings.session_hours * 3600)
    try:
        data = _serializer(request).loads(raw, max_age=max_age)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        return None
    return {"t": data["t"], "c": str(data.get("c", ""))}


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def current_identity(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Identity:
    """The caller, from a bearer token or the session cookie; 401 when neither is valid."""
    tokens: TokenStore = request.app.state.tokens
    if bearer is not None:
        found = tokens.authenticate(bearer.credentials)
        if found is None:
            raise _unauthorized("the API token is unknown or revoked")
        return found
    session = _session(request) if cookie else None
    if session is None:
        raise _unauthorized(
            "authentication required: send `Authorization: Bearer <token>` or log in"
        )
    found = tokens.identity_of(session["t"])
    if found is None:
        raise _unauthorized("the session's token was revoked; log in again")
    if request.method not in _SAFE_METHODS:
        await _check_csrf(request, session)
    return found


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Identity]]:
    """A dependency that lets through identities with ``role`` or above (403 otherwise)."""

    async def dependency(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
        if identity.role < role:
            raise HTTPException(
                403, f"this needs the {role.label} role; {identity.name} is a {identity.role.label}"
            )
        return identity

    dependency.__name__ = f"require_{role.label}"
    return dependency


# --- sessions and CSRF ---------------------------------------------------------------------------


def start_session(response: Response, identity: Identity, request: Request | None = None) -> None:
    """Log ``identity`` in to the dashboard: set the signed session cookie on ``response``."""
    request = request or _request.get()
    if request is None or identity.token_id is None:
        raise RuntimeError("start_session needs the request and an identity from a token")
    settings = request.app.state.settings
    value = _serializer(request).dumps({"t": identity.token_id, "c": secrets.token_urlsafe(24)})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies == "always" or request.url.scheme == "https",
        path="/",
    )


def end_session(response: Response) -> None:
    """Log out: remove the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


def csrf_token(request: Request) -> str:
    """The CSRF token of the request's session, for a form's hidden ``csrf_token`` field."""
    session = _session(request)
    return "" if session is None else session["c"]


async def verify_csrf(request: Request) -> None:
    """Dependency for form posts: the form or header must carry the session's CSRF token."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return  # a bearer token is not sent by browsers on their own: no cross-site forgery
    session = _session(request)
    if session is None:
        raise HTTPException(403, "this form needs a dashboard session; log in again")
    await _check_csrf(request, session)


def _login_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.session_secret, salt="shipyard.login")


def login_nonce(request: Request) -> str:
    """This browser's login nonce (from its cookie), or a new one."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce
    return secrets.token_urlsafe(24)


def login_csrf(request: Request, nonce: str) -> str:
    """The login form's CSRF token: ``nonce`` signed by the server."""
    return _login_serializer(request).dumps(nonce)


def keep_login_nonce(request: Request, response: Response, nonce: str) -> None:
    """Set the cookie the login form's CSRF token is bound to."""
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_FORM_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.secure_cookies == "always"
        or request.url.scheme == "https",
        path="/login",
    )


def check_login_csrf(request: Request, sent: str) -> None:
    """Refuse (403) a login post that did not come from this server's login form in this browser."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    try:
        signed = _login_serializer(request).loads(sent, max_age=LOGIN_FORM_SECONDS)
    except BadSignature:
        signed = None
    if not nonce or not isinstance(signed, str) or not hmac.compare_digest(signed, nonce):
        raise HTTPException(
            403,
            "the login form expired or was sent from another site; open the login page "
            "again and log in there",
        )


def end_login(response: Response) -> None:
    """Forget the login form's nonce once a session started."""
    response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict")


async def _check_csrf(request: Request, session: dict[str, str]) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not session["c"] or not hmac.compare_digest(sent.encode(), session["c"].encode()):
        raise HTTPException(403, "the CSRF token is missing or wrong; reload the page and retry")


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Identity",
    "Role",
    "TokenInfo",
    "TokenStore",
    "check_login_csrf",
    "csrf_token",
    "current_identity",
    "end_login",
    "end_session",
    "keep_login_nonce",
    "login_csrf",
    "login_nonce",
    "remember_request",
    "require",
    "server_secret",
    "start_session",
    "verify_csrf",
]
