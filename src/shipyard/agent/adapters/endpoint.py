"""The model endpoint of an external agent: its URL and key, and the one egress grant it needs.

A sandbox may reach exactly the endpoint's ``host:port`` through the egress proxy. An endpoint on
loopback or a private network (the replay server, an Ollama or vLLM on the LAN) is refused unless
the run declares that very ``host:port`` as allowed (``allow_local``); link-local, multicast,
reserved and unspecified addresses are refused always. See docs/network.md.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shipyard.agent.adapters.base import Wire
from shipyard.agent.providers.base import LOCAL_PLACEHOLDER_KEY, ProviderError
from shipyard.config import AgentConfig
from shipyard.errors import ConfigError
from shipyard.redaction import redact_text
from shipyard.sandbox.egress import Grant, address_refusal

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
REACH_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True)
class ModelEndpoint:
    """Where an external agent's model is, the key it sends, and the grant that lets it through."""

    base_url: str
    api_key: str = field(repr=False)
    """Passed only into the sandboxed tool's environment and masked in every record."""
    key_env: str
    grant: Grant

    def record(self) -> dict[str, object]:
        """The endpoint as events and the reproducibility record show it (no key)."""
        return {"base_url": redact_text(self.base_url), "grant": str(self.grant),
                "local": self.grant.local, "key_env": self.key_env}  # fmt: skip


def split_url(base_url: str) -> tuple[str, int]:
    """The host and port of an endpoint URL; ConfigError for anything but plain http(s)."""
    hint = "write it like https://api.openai.com/v1 or http://127.0.0.1:8080/v1"
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"the model endpoint {base_url!r} is not a valid URL ({exc}); {hint}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the model endpoint {base_url!r} is not an http(s) URL; {hint}")
    if parts.username or parts.password:
        raise ConfigError(
            f"the model endpoint {redact_text(base_url)!r} carries credentials; remove them and "
            "put the key in the host variable named by api_key_env"
        )
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def plan_grant(base_url: str, *, allow_local: str | None, addresses: Sequence[Address]) -> Grant:
    """The grant for an endpoint whose host resolves to ``addresses`` (pure: no lookups).

    Public: a plain grant. Loopback or private: a local grant, only if ``allow_local`` names exactly
    the endpoint's ``host:port``. Link-local, multicast, reserved or unspecified: never.
    """
    host, port = split_url(base_url)
    plain = Grant(host, port)
    local = address_refusal(plain.host, port, addresses, local=False) is not None
    if local and (always := address_refusal(plain.host, port, addresses, local=True)):
        raise ConfigError(f"the model endpoint {base_url} cannot be allowed: {always}")
    if allow_local is None:
        if local:
            raise ConfigError(
                f"the model endpoint {plain} is on a loopback or private address, which sandboxes "
                f"may not reach by default. Allow exactly it with --allow-local {plain} or "
                f'[agent.external] allow_local = "{plain}" in shipyard.toml.'
            )
        return plain
    allowed = Grant.parse(allow_local)
    if (allowed.host, allowed.port) != (plain.host, plain.port):
        raise ConfigError(
            f"allow_local is {allowed} but the model endpoint is {plain}: the allowance may name "
            "only the endpoint's own host:port"
        )
    if not local:
        raise ConfigError(
            f"allow_local names {plain}, which is a public address; remove allow_local (it is "
            "only for endpoints on loopback or private addresses)"
        )
    return Grant(plain.host, port, local=True)


def resolve_addresses(host: str, port: int) -> list[Address]:
    """What the host resolves ``host`` to (an IP literal is itself); ProviderError if nothing."""
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ProviderError(
            f"the model endpoint host {host!r} does not resolve on this host ({exc}); check the "
            "endpoint URL (--endpoint or [agent.external] endpoint)"
        ) from None
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


_WIRE_DEFAULTS = {
    # wire: (base URL variable, key variable, the vendor's URL)
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "https://api.anthropic.com"),
}


def model_endpoint(
    wire: Wire,
    agent: AgentConfig,
    *,
    endpoint: str | None,
    api_key_env: str | None,
    allow_local: str | None,
    environ: Mapping[str, str],
) -> ModelEndpoint:
    """The endpoint from ``endpoint``, else ``[agent] base_url``, else the wire's ``*_BASE_URL``
    variable, else the vendor's; its key from the variable ``api_key_env``, else the agent's, else
    the wire's (a local endpoint without one gets a placeholder: local servers ignore it)."""
    url_env, default_key_env, vendor_url = _WIRE_DEFAULTS[wire]
    base_url = endpoint or agent.base_url or environ.get(url_env) or vendor_url
    host, port = split_url(base_url)
    grant = plan_grant(base_url, allow_local=allow_local, addresses=resolve_addresses(host, port))
    key_env = api_key_env or agent.api_key_env or default_key_env
    key = environ.get(key_env, "")
    if not key and not grant.local:
        raise ProviderError(
            f"No API key for the model endpoint {redact_text(base_url)}: set the host variable "
            f"{key_env}, or name another with [agent.external] api_key_env."
        )
    return ModelEndpoint(base_url=base_url, api_key=key or LOCAL_PLACEHOLDER_KEY, key_env=key_env,
                         grant=grant)  # fmt: skip


def check_reachable(endpoint: ModelEndpoint, timeout: float = REACH_TIMEOUT) -> None:
    """Open (and close) a TCP connection to the endpoint from the host; ProviderError if it fails,
    so an unreachable endpoint is one clear message before any sandbox starts."""
    host, port = split_url(endpoint.base_url)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ProviderError(
            f"the model endpoint {redact_text(endpoint.base_url)} is unreachable from this host "
            f"({exc.strerror or exc}); start it, or fix --endpoint / [agent.external] endpoint"
        ) from None
