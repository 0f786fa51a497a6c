"""Credentials for a private package index, found on the host and never written anywhere.

In order: the index URL's own ``user:password@``; ``SHIPYARD_INDEX_USERNAME`` and
``SHIPYARD_INDEX_PASSWORD`` (or ``SHIPYARD_INDEX_TOKEN`` alone, sent as the password of user
``__token__``); the netrc file (``$NETRC`` or ``~/.netrc``) entry for the index's host. They are
sent only to the index's own origin (scheme, host and port), never to links found on its pages.
"""

from __future__ import annotations

import base64
import netrc
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_USERNAME = "SHIPYARD_INDEX_USERNAME"
ENV_PASSWORD = "SHIPYARD_INDEX_PASSWORD"
ENV_TOKEN = "SHIPYARD_INDEX_TOKEN"


@dataclass(frozen=True)
class IndexAuth:
    """The index URL without credentials, its origin, and the credentials to send there."""

    url: str
    origin: tuple[str, str, int | None]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "none"
    """Where the credentials came from: url, environment, netrc or none (never the secret itself)."""

    @property
    def header(self) -> str | None:
        """The ``Authorization`` header value, or None without credentials."""
        if self.username is None and self.password is None:
            return None
        pair = f"{self.username or ''}:{self.password or ''}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the index's own origin (the only place credentials go)."""
        return origin(url) == self.origin

    def secrets(self) -> tuple[str, ...]:
        """Values to mask wherever text might carry them."""
        return tuple(s for s in (self.password,) if s and len(s) >= 4)


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def index_auth(
    url: str, *, environ: Mapping[str, str] | None = None, netrc_file: Path | None = None
) -> IndexAuth:
    """Split ``url`` into a clean URL and the credentials to send to its origin."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    where = origin(clean)
    if parts.username is not None or parts.password is not None:
        return IndexAuth(
            clean,
            where,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            "url",
        )
    if env.get(ENV_TOKEN):
        return IndexAuth(clean, where, "__token__", env[ENV_TOKEN], "environment")
    if env.get(ENV_USERNAME) or env.get(ENV_PASSWORD):
        return IndexAuth(
            clean, where, env.get(ENV_USERNAME, ""), env.get(ENV_PASSWORD, ""), "environment"
        )
    path = netrc_file or Path(
        env.get("NETRC") or Path(env.get("HOME", "~")).expanduser() / ".netrc"
    )
    found = _netrc(path, parts.hostname or "")
    if found is not None:
        return IndexAuth(clean, where, found[0], found[1], "netrc")
    return IndexAuth(clean, where)


def _netrc(path: Path, host: str) -> tuple[str, str] | None:
    if not host or not path.is_file():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if entry is None:
        return None
    login, _account, password = entry
    return login or "", password or ""
