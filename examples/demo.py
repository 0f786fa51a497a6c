"""`make demo`: shipyard's main job on the bundled example, start to finish, with no model and no
network.

1. `shipyard run deps` verifies each outdated pin: a compatible release merges, a breaking major
   halts.
2. `shipyard submit` of a patch touching src/auth/ halts on the forbidden-path guardrail.
3. `shipyard submit` of a patch that "fixes" the pricing tests by skipping one and emptying another
   halts on the test-integrity gate, although the pass rate would allow it.
4. `shipyard run task`: a coding agent (its model played by the replay server) implements a small
   feature in the sandbox; it waits for review, and `shipyard review approve` merges it.

`--leave-review` stops before that approval: the feature keeps waiting for review. `--serve`
(`make dashboard`) does that too, then registers the example repository with the server, creates an
admin token named `reviewer`, prints the dashboard's address and the token, and runs
`shipyard serve` on 127.0.0.1 until Ctrl-C, with a local package index for the runs it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario import PATCHES, branches, build_index, make_repo
from shipyard.agent.replay import ReplayServer
from shipyard.deps.localindex import serve

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "demo"
AGENTS = ROOT / "examples" / "agents"
LOW_STOCK_TASK = (
    "--title", "Report items that are low on stock", "--as", "coding-agent",
    "--task", "Add Stock.low_stock(threshold=5): the (SKU, quantity) of every item "
    "with fewer units than the threshold, fewest first, with a test.",
)  # fmt: skip
"""The coding agent's task; the replay server plays its model from ``agents/low-stock.json``."""
REVIEWER = "reviewer"
"""The dashboard's token: not the demo's requesters (deps-bot, coding-agent), so it may approve."""
console = Console(highlight=False)


def shipyard(*args: str, env: dict[str, str], quiet: bool = False) -> str:
    """Run the real CLI as a user would, echoing the command."""
    argv = [str(Path(sys.executable).with_name("shipyard")), *args]
    if not quiet:
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        console.print(f"\n[bold]$ shipyard {shown}[/]")
    done = subprocess.run(
        argv, env=env, text=True, capture_output=quiet, timeout=900, check=False, cwd=WORK
    )
    if done.returncode != 0:
        console.print(f"[red]shipyard {args[0]} exited with {done.returncode}[/]")
        if quiet:
            console.print(done.stderr)
        sys.exit(done.returncode)
    return done.stdout if quiet else ""


def register_for_dashboard(repo: Path, index_url: str, *, env: dict[str, str]) -> str:
    """Register ``repo`` with the server as ``shop`` and create an admin token; the token."""
    shipyard("repo", "add", "shop", str(repo), "--index-url", index_url, env=env)
    created = shipyard(
        "token", "create", "--name", REVIEWER, "--role", "admin", "--json", env=env, quiet=True
    )
    return str(json.loads(created)["token"])


def serve_dashboard(repo: Path, index_dir: Path, *, env: dict[str, str], port: int) -> None:
    """Serve the dashboard over the demo's home until Ctrl-C (``make dashboard``)."""
    with serve(index_dir) as index:
        token = register_for_dashboard(repo, index.url, env=env)
        console.rule("[bold]the dashboard")
        console.print(f"open   http://127.0.0.1:{port}/")
        console.print(f"log in with this token ({REVIEWER}, admin; shown only now):")
        console.print(token, markup=False, highlight=False, soft_wrap=True)
        console.print(
            "the feature the coding agent wrote waits under Reviews: approve it, then read Metrics.\n"
            "Ctrl-C stops the server; `make dashboard` again starts over."
        )
        argv = [str(Path(sys.executable).with_name("shipyard")), "serve", "--port", str(port)]
        with contextlib.suppress(KeyboardInterrupt):  # the server runs until Ctrl-C: no timeout
            subprocess.run(argv, env=env, cwd=WORK, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--leave-review", action="store_true", help="leave the feature waiting for review"
    )
    parser.add_argument(
        "--serve", action="store_true", help="then serve the dashboard (implies --leave-review)"
    )
    parser.add_argument("--port", type=int, default=8000, help="the dashboard's port (8000)")
    options = parser.parse_args()
    shutil.rmtree(WORK / "home", ignore_errors=True)  # each demo starts with an empty history
    WORK.mkdir(parents=True, exist_ok=True)
    repo = make_repo(WORK / "repo")
    index_dir = build_index(ROOT / "build" / "example-index")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SHIPYARD_", "OPENAI_"))
    }
    env["SHIPYARD_HOME"] = str(WORK / "home")
    env["COLUMNS"] = env.get("COLUMNS", "120")
    console.rule("[bold]shipyard demo")
    console.print(f"example repository: {repo}")
    with serve(index_dir) as index:
        console.print(f"local package index: {index.url}")
        url = ["--index-url", index.url]
        # The scheduled dependency job and the coding agent request runs; a person reviews them.
        shipyard("run", "deps", "--repo", str(repo), "--as", "deps-bot", *url, env=env)
        shipyard(
            "submit", "--repo", str(repo), "--patch", str(PATCHES / "auth-shortcut.patch"),
            "--type", "bugfix", "--title", "Let admins skip the token check", "--as", "coding-agent",
            *url, env=env,
        )  # fmt: skip
        shipyard(
            "submit", "--repo", str(repo), "--patch", str(PATCHES / "weaken-pricing-tests.patch"),
            "--type", "bugfix", "--title", "Make the pricing tests pass", "--as", "coding-agent",
            *url, env=env,
        )  # fmt: skip
        # A coding agent implements a feature; the replay server plays its model (no model needed).
        with ReplayServer(AGENTS / "low-stock.json") as model:
            shipyard(
                "run", "task", "--repo", str(repo), *LOW_STOCK_TASK, *url,
                env={**env, "OPENAI_BASE_URL": model.url},
            )  # fmt: skip
    shipyard("review", "list", env=env)
    waiting = json.loads(shipyard("review", "list", "--json", env=env, quiet=True))
    for run in waiting if not (options.leave_review or options.serve) else []:
        shipyard("review", "approve", run["run_id"], "-m", "Reviewed in the demo", env=env)
    runs = json.loads(shipyard("runs", "list", "--json", env=env, quiet=True))
    halted = [r for r in runs if r["status"] == "halted" and r["task"]["blueprint"] == "deps"]
    if halted:
        shipyard("runs", "show", halted[0]["run_id"], env=env)
    shipyard("runs", "list", env=env)
    console.rule("[bold]the example repository now")
    for name, commit in sorted(branches(repo).items()):
        console.print(f"  {name:<24} {commit[:12]}")
    log = subprocess.run(
        ["git", "log", "--oneline", "--graph", "-n", "12", "main"],
        cwd=repo, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    console.print(log.stdout)
    console.print(f"reports: {WORK / 'home' / 'runs'}/<run-id>/report.md")
    if options.serve:
        serve_dashboard(repo, index_dir, env=env, port=options.port)


if __name__ == "__main__":
    main()
