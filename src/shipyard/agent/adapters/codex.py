"""Codex CLI (npm ``@openai/codex``): ``codex exec`` with approvals and its own sandbox bypassed (it
runs inside shipyard's), against an endpoint speaking the OpenAI Responses API.

Codex dropped Chat Completions (``wire_api = "chat"``), so the endpoint must serve ``/responses``:
OpenAI itself, or a local server that implements it. The provider is declared on the command line,
with the key read from ``OPENAI_API_KEY`` in the sandboxed process only; ``--ignore-user-config``
keeps any ``config.toml`` out, and sessions are not persisted.
"""

from __future__ import annotations

import json
from pathlib import Path

from shipyard.agent.adapters.base import (
    Launch,
    LaunchRequest,
    ToolOutcome,
    ToolSpec,
    Wire,
    exit_outcome,
    node_bin,
)

LAST_MESSAGE = "codex.last-message.txt"
PROVIDER = "shipyard"


def _toml(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these values


class Codex:
    name = "codex"
    wire: Wire = "openai"
    tool = ToolSpec(kind="npm", package="@openai/codex", version="0.169.0")
    description = "OpenAI Codex CLI, codex exec"

    def launch(self, request: LaunchRequest) -> Launch:
        provider = f"model_providers.{PROVIDER}"
        argv = (
            "/usr/bin/node", node_bin("@openai/codex/bin/codex.js"),
            "exec",
            "--model", request.model,
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check", "--ephemeral", "--ignore-user-config", "--color", "never",
            "-c", f"model_provider={_toml(PROVIDER)}",
            "-c", f"{provider}.name={_toml('shipyard model endpoint')}",
            "-c", f"{provider}.base_url={_toml(request.base_url)}",
            "-c", f"{provider}.env_key={_toml('OPENAI_API_KEY')}",
            "-c", f"{provider}.wire_api={_toml('responses')}",
            "--output-last-message", f"{request.out_dir}/{LAST_MESSAGE}",
            "--", request.task,  # after "--": a task starting with "-" is not an option
        )  # fmt: skip
        env = {"CODEX_HOME": f"{request.out_dir}/codex"}
        return Launch(argv=argv, env=env, secret_env=("OPENAI_API_KEY",),
                      log_files=(LAST_MESSAGE,))  # fmt: skip

    def version_argv(self) -> tuple[str, ...]:
        return ("/usr/bin/node", node_bin("@openai/codex/bin/codex.js"), "--version")

    def outcome(self, exit_code: int, stdout: str, out_dir: Path) -> ToolOutcome:
        """The exit code, with the agent's last message as the summary."""
        result = exit_outcome(exit_code, stdout)
        try:
            last = (out_dir / LAST_MESSAGE).read_text(encoding="utf-8").strip()
        except OSError:
            return result
        return ToolOutcome(finished=result.finished, reason=result.reason, summary=last[:2000])
