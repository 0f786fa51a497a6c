"""Model providers: the ``Provider`` protocol and the factory choosing one by ``agent.provider``.

``openai`` covers every OpenAI-compatible endpoint; ``anthropic`` is Claude's Messages API. Both are
imported only when chosen.
"""

from shipyard.agent.providers.base import (
    PROVIDERS,
    Endpoint,
    Provider,
    ProviderError,
    get_provider,
    provider_class,
    resolve_endpoint,
)

__all__ = [
    "PROVIDERS",
    "Endpoint",
    "Provider",
    "ProviderError",
    "get_provider",
    "provider_class",
    "resolve_endpoint",
]
