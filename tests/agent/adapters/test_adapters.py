"""Each adapter's command line, environment and outcome parsing, the registry, and the runner's
handling of the key (pure parts; the sandboxed runs are in the end-to-end tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.agent.adapters import ADAPTERS, AdapterError, get_adapter
from shipyard.agent.adapters.base import OUT_DIR, TOOL_DIR, LaunchRequest
from shipyard.agent.adapters.run import Masker, keep_logs, secret_file, tool_env

REQUEST = LaunchRequest(task="-rf: fix the bug; don't `rm` anything", model="m-1",
                        base_url="http://127.0.0.1:8080/v1", max_steps=7, max_cost_usd=1.5)  # fmt: skip
KEY = "sk-key-that-must-stay-secret-0123456789"


def test_every_registered_adapter_loads_and_unknown_names_list_the_known_ones() -> None:
    for name in ADAPTERS:
        assert get_adapter(name).name == name
    with pytest.raises(
        AdapterError, match=r"Unknown agent adapter 'sweep'\. Known adapters: aider"
    ):
        get_adapter("sweep")


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_no_adapter_puts_the_key_on_its_command_line_and_each_runs_from_the_tool_mount(
    name: str,
) -> None:
    adapter = get_adapter(name)
    launch = adapter.launch(REQUEST)
    assert launch.secret_env, "the key must reach the tool through the environment"
    assert KEY not in " ".join(launch.argv)
    assert not set(launch.secret_env) & set(launch.env)
    assert any(arg.startswith(TOOL_DIR) for arg in launch.argv[:2])
    # The task is one argument, never split or taken as an option.
    assert sum(REQUEST.task in arg for arg in launch.argv) == 1
    env = tool_env(launch)
    assert env["HOME"].startswith("/tmp/")
    assert REQUEST.base_url in env.values() or any(REQUEST.base_url in a for a in launch.argv)
    assert adapter.tool.requirement.startswith(adapter.tool.package)


def test_mini_swe_agent_runs_unattended_on_litellm_with_the_budget() -> None:
    launch = get_adapter("mini-swe-agent").launch(REQUEST)
    argv = list(launch.argv)
    assert argv[:4] == [f"{TOOL_DIR}/bin/python", "-I", "-m", "minisweagent.run.mini"]
    assert f"--task={REQUEST.task}" in argv
    assert {"--yolo", "--exit-immediately"} <= set(argv)
    assert argv[argv.index("--agent-class") + 1] == "default"
    assert argv[argv.index("--model") + 1] == "openai/m-1"
    assert argv[argv.index("--cost-limit") + 1] == "1.5"
    assert "agent.step_limit=7" in argv
    config = argv[argv.index("--config") + 1]
    assert config.startswith(f"{TOOL_DIR}/lib/python3.")
    assert config.endswith("/mini.yaml")
    assert argv[argv.index("--output") + 1] == f"{OUT_DIR}/trajectory.json"
    assert launch.env["OPENAI_BASE_URL"] == REQUEST.base_url
    assert launch.env["MSWEA_CONFIGURED"] == "true"
    assert launch.secret_env == ("OPENAI_API_KEY",)


def test_aider_keeps_its_files_out_of_the_repository_and_commits_nothing() -> None:
    launch = get_adapter("aider").launch(REQUEST)
    argv = list(launch.argv)
    assert argv[:4] == [f"{TOOL_DIR}/bin/python", "-I", "-m", "aider"]
    assert f"--message={REQUEST.task}" in argv
    assert {"--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
            "--no-check-update", "--analytics-disable"} <= set(argv)  # fmt: skip
    for option in ("--chat-history-file", "--input-history-file", "--llm-history-file"):
        assert argv[argv.index(option) + 1].startswith(f"{OUT_DIR}/")
    assert launch.env["OPENAI_API_BASE"] == REQUEST.base_url


def test_claude_code_runs_in_print_mode_against_an_anthropic_endpoint() -> None:
    adapter = get_adapter("claude-code")
    launch = adapter.launch(REQUEST)
    argv = list(launch.argv)
    assert adapter.wire == "anthropic"
    assert argv[0] == f"{TOOL_DIR}/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
    assert argv[-2:] == ["--", REQUEST.task]
    assert {"--print", "--dangerously-skip-permissions"} <= set(argv)
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert launch.env["ANTHROPIC_BASE_URL"] == REQUEST.base_url
    assert launch.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert launch.secret_env == ("ANTHROPIC_API_KEY",)


def test_codex_declares_its_provider_on_the_command_line() -> None:
    launch = get_adapter("codex").launch(REQUEST)
    argv = list(launch.argv)
    assert argv[:3] == [
        "/usr/bin/node",
        f"{TOOL_DIR}/node_modules/@openai/codex/bin/codex.js",
        "exec",
    ]
    assert argv[-2:] == ["--", REQUEST.task]
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert 'model_provider="shipyard"' in overrides
    assert f'model_providers.shipyard.base_url="{REQUEST.base_url}"' in overrides
    assert 'model_providers.shipyard.env_key="OPENAI_API_KEY"' in overrides
    assert 'model_providers.shipyard.wire_api="responses"' in overrides
    assert {
        "--ignore-user-config",
        "--ephemeral",
        "--dangerously-bypass-approvals-and-sandbox",
    } <= set(argv)


def test_the_key_file_is_shell_quoted_for_every_secret_variable() -> None:
    launch = get_adapter("mini-swe-agent").launch(REQUEST)
    text = secret_file(launch, "it's $(reboot) `x`")
    assert text == "OPENAI_API_KEY='it'\"'\"'s $(reboot) `x`'\n"


def test_kept_logs_are_masked_and_everything_else_the_tool_left_is_removed(tmp_path: Path) -> None:
    (tmp_path / "trajectory.json").write_text(json.dumps({"env": {"OPENAI_API_KEY": KEY}}))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / ".env").write_text(f"KEY={KEY}")
    (tmp_path / "stray.log").write_text(KEY)
    kept = keep_logs(tmp_path, ("trajectory.json",), Masker(KEY))
    assert kept == (tmp_path / "trajectory.json",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trajectory.json"]
    assert KEY not in (tmp_path / "trajectory.json").read_text()


def test_masking_hides_the_key_and_other_credentials_but_leaves_short_placeholders() -> None:
    mask = Masker("replay-9f8e7d")
    assert mask("key=replay-9f8e7d and ghp_" + "a" * 30) == "key=*** and ***"
    assert Masker("x")("x marks the spot") == "x marks the spot"


def test_mini_swe_agent_finishes_only_when_it_submitted(tmp_path: Path) -> None:
    adapter = get_adapter("mini-swe-agent")
    trajectory = tmp_path / "trajectory.json"
    info = {"exit_status": "Submitted", "submission": "Done.\n",
            "model_stats": {"api_calls": 3, "instance_cost": 0.25}}  # fmt: skip
    trajectory.write_text(json.dumps({"info": info}))
    done = adapter.outcome(0, "", tmp_path)
    assert (done.finished, done.summary, done.steps, done.cost_usd) == (True, "Done.", 3, 0.25)
    trajectory.write_text(json.dumps({"info": {**info, "exit_status": "LimitsExceeded"}}))
    limited = adapter.outcome(0, "", tmp_path)
    assert not limited.finished
    assert "LimitsExceeded" in limited.reason
    trajectory.unlink()
    assert not adapter.outcome(0, "crashed", tmp_path).finished


def test_claude_code_reads_its_json_result() -> None:
    adapter = get_adapter("claude-code")
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "Fixed it.",
              "num_turns": 4, "total_cost_usd": 0.12}  # fmt: skip
    done = adapter.outcome(0, "noise\n" + json.dumps(result), Path("/nonexistent"))
    assert (done.finished, done.summary, done.steps, done.cost_usd) == (True, "Fixed it.", 4, 0.12)
    stopped = adapter.outcome(1, json.dumps(result | {"subtype": "error_max_turns"}), Path("/x"))
    assert not stopped.finished
    assert "error_max_turns" in stopped.reason
