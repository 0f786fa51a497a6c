"""Claude Code (npm ``@anthropic-ai/claude-code``): print mode, permissions skipped (the sandbox is the
boundary), against an Anthropic Messages endpoint.

The package ships a native binary (``bin/claude.exe``, placed by its install script from the
platform package). Telemetry, error reporting, auto-update and other non-essential traffic are
switched off, so the only connections it tries are to the model endpoint; any other would be refused
by the egress proxy anyway.
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


class ClaudeCode:
    name = "claude-code"
    wire: Wire = "anthropic"
    tool = ToolSpec(kind="npm", package="@anthropic-ai/claude-code", version="2.1.328")
    description = "Claude Code in print mode"

    def launch(self, request: LaunchRequest) -> Launch:
        argv = (
            node_bin("@anthropic-ai/claude-code/bin/claude.exe"),
            "--print",
            "--model", request.model,
            "--max-turns", str(request.max_steps),
            "--dangerously-skip-permissions",
            "--output-format", "json",
            "--", request.task,  # after "--": a task starting with "-" is not an option
        )  # fmt: skip
        env = {
            "ANTHROPIC_BASE_URL": request.base_url,
            "IS_SANDBOX": "1",  # it refuses to skip permissions as root unless told it is sandboxed
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CONFIG_DIR": f"{request.out_dir}/claude",
        }
        return Launch(argv=argv, env=env, secret_env=("ANTHROPIC_API_KEY",))

    def version_argv(self) -> tuple[str, ...]:
        return (node_bin("@anthropic-ai/claude-code/bin/claude.exe"), "--version")

    def outcome(self, exit_code: int, stdout: str, out_dir: Path) -> ToolOutcome:
        """From the JSON result ``--output-format json`` prints last: its subtype, turns and cost."""
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        try:
            result = json.loads(lines[-1]) if lines else None
        except ValueError:
            result = None
        if not isinstance(result, dict) or result.get("type") != "result":
            return exit_outcome(exit_code or 1, stdout)
        ok = exit_code == 0 and result.get("subtype") == "success" and not result.get("is_error")
        return ToolOutcome(
            finished=ok,
            reason="finished" if ok else f"Claude Code stopped: {result.get('subtype', 'error')}",
            summary=str(result.get("result") or "")[:2000],
            steps=int(result.get("num_turns") or 0),
            cost_usd=float(result.get("total_cost_usd") or 0.0),
        )
