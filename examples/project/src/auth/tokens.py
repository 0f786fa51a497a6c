"""Signed tokens naming a user; stock changes require a valid, unexpired one."""

from __future__ import annotations

import hashlib
import hmac


class InvalidToken(Exception):
    """The token is malformed, forged or expired."""


def _signature(payload: str, secret: bytes) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()


def issue_token(user: str, secret: bytes, *, now: int) -> str:
    """A token for ``user`` issued at ``now`` (seconds since the epoch)."""
    if not user or ":" in user:
        raise ValueError("a user name must be non-empty and contain no ':'")
    payload = f"{user}:{now}"
    return f"{payload}:{_signature(payload, secret)}"


def verify_token(token: str, secret: bytes, *, now: int, max_age: int = 3600) -> str:
    """The user named by ``token``; raises InvalidToken unless it is genuine and fresh."""
    try:
        user, issued, signature = token.split(":")
        issued_at = int(issued)
    except ValueError as exc:
        raise InvalidToken("malformed token") from exc
    expected = _signature(f"{user}:{issued}", secret)
    if not hmac.compare_digest(signature, expected):
        raise InvalidToken("bad signature")
    if not 0 <= now - issued_at <= max_age:
        raise InvalidToken("token expired")
    return user
