"""mini-swe-agent (PyPI ``mini-swe-agent``): a bash-only agent on litellm, run once with ``--yolo``.

The model is reached through litellm's OpenAI provider (``openai/<model>`` with ``OPENAI_BASE_URL``
and ``OPENAI_API_KEY``); its own step and cost limits come from the run's budget. It runs each bash
action in a subshell of the sandbox, in the workspace, and stops when an action prints
``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``.
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
    python_version,
    read_json,
    site_packages,
)

TRAJECTORY = "trajectory.json"


class MiniSweAgent:
    name = "mini-swe-agent"
    wire: Wire = "openai"
    tool = ToolSpec(kind="python", package="mini-swe-agent", version="2.4.6")
    description = "mini-swe-agent: bash actions in a loop, on litellm"

    def launch(self, request: LaunchRequest) -> Launch:
        config = site_packages("minisweagent/config")
        argv = python_module(
            "minisweagent.run.mini",
            "--model", f"openai/{request.model}",
            f"--task={request.task}",  # one argument: a task starting with "-" is no option
            "--yolo", "--exit-immediately",
            "--agent-class", "default",  # never prompts, unlike the interactive default
            "--environment-class", "local",  # the sandbox is the environment
            "--cost-limit", f"{request.max_cost_usd:g}",
            "--config", f"{config}/mini.yaml",  # by path: a mini.yaml in the repo must not win
            "--config", f"agent.step_limit={request.max_steps}",
            "--config", "environment.timeout=120",
            "--output", f"{request.out_dir}/{TRAJECTORY}",
        )  # fmt: skip
        env = {
            "OPENAI_BASE_URL": request.base_url,
            "MSWEA_CONFIGURED": "true",  # skip the first-run setup questions
            "MSWEA_SILENT_STARTUP": "1",
            "MSWEA_GLOBAL_CONFIG_DIR": f"{request.out_dir}/config",
            "MSWEA_CONFIG_DIR": config,
            "MSWEA_COST_TRACKING": "ignore_errors",  # local and unknown models have no price
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of litellm's price list
        }
        return Launch(argv=argv, env=env, secret_env=("OPENAI_API_KEY",), log_files=(TRAJECTORY,))

    def version_argv(self) -> tuple[str, ...]:
        return python_version(self.tool.package)

    def outcome(self, exit_code: int, stdout: str, out_dir: Path) -> ToolOutcome:
        """From the trajectory: ``Submitted`` is finished; a limit or an error is not."""
        data = read_json(out_dir / TRAJECTORY)
        info = data.get("info") if isinstance(data, dict) else None
        if exit_code != 0 or not isinstance(info, dict):
            return exit_outcome(exit_code or 1, stdout)
        status = str(info.get("exit_status") or "unknown")
        stats = info.get("model_stats") if isinstance(info.get("model_stats"), dict) else {}
        assert isinstance(stats, dict)
        return ToolOutcome(
            finished=status == "Submitted",
            reason="finished" if status == "Submitted" else f"mini-swe-agent stopped: {status}",
            summary=str(info.get("submission") or "").strip()[:2000],
            steps=int(stats.get("api_calls", 0)),
            cost_usd=float(stats.get("instance_cost", 0.0)),
        )
