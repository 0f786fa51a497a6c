"""`make demo`: shipyard's main job on the bundled example, start to finish, with no model and no
network.

1. `shipyard run deps` verifies each outdated pin: a compatible release merges, a breaking major
   halts.
2. `shipyard submit` of a patch touching src/auth/ halts on the forbidden-path guardrail.
3. `shipyard submit` of a patch that "fixes" the pricing tests by skipping one and emptying another
   halts on the test-integrity gate, although the pass rate would allow it.
4. `shipyard run task`: a coding agent (its model played by the replay server) implements a small
   feature in the sandbox; it waits for review, and `shipyard review approve` merges it.
"""

from __future__ import annotations

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


def main() -> None:
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
                "run", "task", "--repo", str(repo),
                "--title", "Report items that are low on stock", "--as", "coding-agent",
                "--task", "Add Stock.low_stock(threshold=5): the (SKU, quantity) of every item "
                "with fewer units than the threshold, fewest first, with a test.",
                *url, env={**env, "OPENAI_BASE_URL": model.url},
            )  # fmt: skip
    shipyard("review", "list", env=env)
    waiting = json.loads(shipyard("review", "list", "--json", env=env, quiet=True))
    for run in waiting:
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


if __name__ == "__main__":
    main()
