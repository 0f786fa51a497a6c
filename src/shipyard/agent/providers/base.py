"""The seam between the agent loop and a model API: one ``complete`` call, errors made ours.

A provider turns our ``Message``s into its wire format, calls the vendor SDK (which retries rate
limits, server errors and timeouts with exponential backoff) and turns the answer back into a
``Completion``. Every SDK failure becomes a ``ProviderError`` whose message says what to check;
the API key never appears in it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol
from urllib.parse import urlsplit

from shipyard.agent.messages import Completion, Message, ToolSpec
from shipyard.config import AgentConfig, PriceConfig
from shipyard.errors import ShipyardError
from shipyard.redaction import MASK, redact_text


class ProviderError(ShipyardError):
    """A model call failed: unreachable endpoint, rejected key, unknown model, timeout, or a
    server still failing after the configured retries."""

    exit_code = 11


class Provider(Protocol):
    """A model API. ``name`` is the ``agent.provider`` value that selects it."""

    name: str

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec],
        model: str,
        max_output_tokens: int,
        temperature: float | None = None,
    ) -> Completion: ...


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where and how a provider connects; resolved once from config and the host environment."""

    base_url: str
    api_key: str = field(repr=False)
    """Never logged, never put in a message (DESIGN invariant 3); ``repr`` leaves it out."""
    key_env: str
    """The host variable the key came from, named in error messages instead of the key."""
    timeout_seconds: float = 120.0
    max_retries: int = 4
    prices: Mapping[str, PriceConfig] = field(default_factory=dict)


def safe_message(text: str, endpoint: Endpoint) -> str:
    """``text`` with the key and any other recognisable credential masked."""
    if len(endpoint.api_key) >= 8:  # a real key; a one-letter test key would mangle the text
        text = text.replace(endpoint.api_key, MASK)
    return redact_text(text)


def server_message(body: object, fallback: str) -> str:
    """The human explanation in an error body: OpenAI's and Anthropic's ``error.message``."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    if isinstance(body, str) and body:
        return body
    return fallback


def status_error(
    provider: str, status: int, message: str, *, endpoint: Endpoint, model: str
) -> ProviderError:
    """A ``ProviderError`` for an HTTP error answer, with the server's words and what to check."""
    where = f"The {provider} endpoint {endpoint.base_url}"
    said = f"(HTTP {status}): {message.rstrip('. ')}"
    if status in (401, 403):
        hint = f"Check the API key in the host variable {endpoint.key_env}."
        text = f"{where} rejected the API key {said}. {hint}"
    elif status == 404:
        hint = "Check agent.model (or agent.models) and agent.base_url."
        text = f"{where} does not know model {model!r} {said}. {hint}"
    elif status == 429:
        hint = "Wait and retry, run fewer agents at once, or raise agent.max_retries."
        text = f"{where} is still rate-limiting after {endpoint.max_retries} retries {said}. {hint}"
    elif status >= 500:
        hint = "The service is failing; retry later or raise agent.max_retries."
        text = f"{where} still failed after {endpoint.max_retries} retries {said}. {hint}"
    else:
        hint = "Check agent.model, agent.max_output_tokens and agent.temperature for this endpoint."
        text = f"{where} rejected the request for model {model!r} {said}. {hint}"
    return ProviderError(safe_message(text, endpoint))


def timeout_error(provider: str, *, endpoint: Endpoint) -> ProviderError:
    text = (
        f"The {provider} endpoint {endpoint.base_url} did not answer within the timeout of "
        f"{endpoint.timeout_seconds:g} seconds ({endpoint.max_retries} retries). Raise "
        "agent.timeout_seconds, or check that the endpoint is up."
    )
    return ProviderError(safe_message(text, endpoint))


def connection_error(provider: str, detail: str, *, endpoint: Endpoint) -> ProviderError:
    text = (
        f"Could not reach the {provider} endpoint {endpoint.base_url} ({detail}). Check "
        "agent.base_url (or the provider's *_BASE_URL variable) and that the server is running."
    )
    return ProviderError(safe_message(text, endpoint))


PROVIDERS: dict[str, str] = {
    "openai": "shipyard.agent.providers.openai_compat:OpenAIProvider",
    "anthropic": "shipyard.agent.providers.anthropic:AnthropicProvider",
}
"""``agent.provider`` names and their classes, imported only when chosen."""

_DEFAULTS = {
    # name: (base URL variable, key variable, the SDK's own default URL)
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "https://api.anthropic.com"),
}
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_PLACEHOLDER_KEY = "local-endpoint-no-key"
"""Sent to a local endpoint when no key is set: the SDKs insist on one, local servers ignore it."""


def provider_class(name: str) -> Callable[[Endpoint], Provider]:
    """The class for a provider name; an unknown name lists the known ones."""
    target = PROVIDERS.get(name)
    if target is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ProviderError(
            f"Unknown model provider {name!r}: use one of {known} in agent.provider. "
            "Any OpenAI-compatible server is 'openai' with agent.base_url."
        )
    module, _, attribute = target.partition(":")
    factory: Callable[[Endpoint], Provider] = getattr(importlib.import_module(module), attribute)
    return factory


def resolve_endpoint(config: AgentConfig, environ: Mapping[str, str]) -> Endpoint:
    """Base URL and key from config, then the provider's variables, then the SDK default."""
    url_env, default_key_env, default_url = _DEFAULTS.get(config.provider, _DEFAULTS["openai"])
    base_url = config.base_url or environ.get(url_env) or default_url
    key_env = config.api_key_env or default_key_env
    key = environ.get(key_env, "")
    if not key:
        if urlsplit(base_url).hostname not in _LOCAL_HOSTS:
            raise ProviderError(
                f"No API key for the {config.provider} provider at {redact_text(base_url)}: set "
                f"the host variable {key_env}, or name another variable with agent.api_key_env."
            )
        key = LOCAL_PLACEHOLDER_KEY
    return Endpoint(
        base_url=base_url,
        api_key=key,
        key_env=key_env,
        timeout_seconds=config.timeout_seconds,
        max_retries=config.max_retries,
        prices=dict(config.prices),
    )


def get_provider(config: AgentConfig, *, environ: Mapping[str, str] | None = None) -> Provider:
    """The provider ``config`` names, connected as configured. ``environ`` defaults to the host's
    environment; tests pass their own. Base URL and key are always passed to the SDK explicitly,
    so its own lookups of ``OPENAI_BASE_URL`` and the like never override them."""
    factory = provider_class(config.provider)
    return factory(resolve_endpoint(config, os.environ if environ is None else environ))


@contextlib.contextmanager
def sdk_errors(sdk: ModuleType, base: type[Exception], provider: str, endpoint: Endpoint,
               model: str) -> Iterator[None]:  # fmt: skip
    """Turn an SDK's errors into ProviderErrors saying what to check. The openai and anthropic SDKs
    share these exception names (``sdk`` is the module, ``base`` its root exception)."""
    try:
        yield
    except sdk.APITimeoutError as exc:
        raise timeout_error(provider, endpoint=endpoint) from exc
    except sdk.APIConnectionError as exc:
        detail = str(exc.__cause__ or exc.message)
        raise connection_error(provider, detail, endpoint=endpoint) from exc
    except sdk.APIStatusError as exc:
        said = server_message(exc.body, exc.message)
        raise status_error(provider, exc.status_code, said, endpoint=endpoint, model=model) from exc
    except base as exc:
        text = f"The {provider} client failed for model {model!r}: {exc}"
        raise ProviderError(safe_message(text, endpoint)) from exc
