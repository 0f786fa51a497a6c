"""aider (PyPI ``aider-chat``): one message, answered and applied, then it exits.

It edits files in the workspace by its edit format and is kept from everything else it would do on
its own: no git commits (shipyard commits), no ``.gitignore`` edits, no update checks, no analytics,
and its chat and input histories go to the run's output directory rather than into the repository.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.agent.adapters.base import (
    Launch,
    LaunchRequest,
    ToolOutcome,
    ToolSpec,
    Wire,
    exit_outcome,
    python_module,
)
from shipyard.agent.adapters.base import python_version as _python_version

CHAT_HISTORY = "aider.chat.history.md"


class Aider:
    name = "aider"
    wire: Wire = "openai"
    tool = ToolSpec(kind="python", package="aider-chat", version="0.86.2")
    description = "aider: whole-file and diff edits from one message"

    def launch(self, request: LaunchRequest) -> Launch:
        out = request.out_dir
        argv = python_module(
            "aider",
            "--model", f"openai/{request.model}",
            f"--message={request.task}",  # one argument: a task starting with "-" is no option
            "--yes-always",
            "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
            "--no-check-update", "--analytics-disable", "--no-show-model-warnings",
            "--no-stream", "--no-pretty", "--no-fancy-input", "--map-tokens", "0",
            "--chat-history-file", f"{out}/{CHAT_HISTORY}",
            "--input-history-file", f"{out}/aider.input.history",
            "--llm-history-file", f"{out}/aider.llm.history",
        )  # fmt: skip
        env = {
            "OPENAI_API_BASE": request.base_url,
            "OPENAI_BASE_URL": request.base_url,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "AIDER_CHECK_UPDATE": "false",
        }
        return Launch(argv=argv, env=env, secret_env=("OPENAI_API_KEY",),
                      log_files=(CHAT_HISTORY,))  # fmt: skip

    def version_argv(self) -> tuple[str, ...]:
        return _python_version(self.tool.package)

    def outcome(self, exit_code: int, stdout: str, out_dir: Path) -> ToolOutcome:
        return exit_outcome(exit_code, stdout)
