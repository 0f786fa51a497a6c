"""Bring your own agent: external coding-agent CLIs run in the run's sandbox over the workspace.

Each adapter declares its tool (installed on the host, mounted read-only), its unattended command
line and the variables pointing it at the model endpoint; the sandbox may reach that endpoint and
nothing else. Adapters are chosen by name and imported on first use.
"""

from __future__ import annotations

from importlib import import_module

from shipyard.agent.adapters.base import (
    Adapter,
    AdapterError,
    Launch,
    LaunchRequest,
    ToolEnvMissing,
    ToolSpec,
)

ADAPTERS = {
    "mini-swe-agent": "shipyard.agent.adapters.mini_swe_agent:MiniSweAgent",
    "aider": "shipyard.agent.adapters.aider:Aider",
    "claude-code": "shipyard.agent.adapters.claude_code:ClaudeCode",
    "codex": "shipyard.agent.adapters.codex:Codex",
}


def get_adapter(name: str) -> Adapter:
    """The adapter registered under ``name``; an unknown name lists the known ones."""
    try:
        module, attr = ADAPTERS[name].split(":")
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise AdapterError(
            f"Unknown agent adapter {name!r}. Known adapters: {known} (see docs/agents.md)."
        ) from None
    adapter: Adapter = getattr(import_module(module), attr)()
    return adapter


__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterError",
    "Launch",
    "LaunchRequest",
    "ToolEnvMissing",
    "ToolSpec",
    "get_adapter",
]
