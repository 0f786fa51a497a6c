"""Tokens, cost and time per merged change for the agent blueprints, on the replay corpus.

Every task in ``examples/agents/corpus.json`` runs as ``shipyard run task`` on a fresh copy of the
example repository, its model played by the replay server from the task's fixture (token counts
are the fixture's, as a real provider would report them; prices from the example's shipyard.toml).
A change the policy sends to review is approved, as the person reviewing would, so each task ends
merged or halted. Reported per task and in total: model calls, tokens, cost, time to decision,
and the tokens and cost per merged change.

    .venv/bin/python benchmarks/agents.py [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from scenario import build_index, make_repo  # noqa: E402
from shipyard.agent.replay import ReplayServer  # noqa: E402
from shipyard.app import App  # noqa: E402
from shipyard.deps.localindex import serve  # noqa: E402
from shipyard.events import EventType  # noqa: E402
from shipyard.model import ChangeType, RunStatus  # noqa: E402

AGENTS = ROOT / "examples" / "agents"


def run_task(app: App, repo: Path, entry: dict[str, str], index_url: str) -> dict[str, Any]:
    with ReplayServer(AGENTS / entry["fixture"]) as model:
        os.environ["OPENAI_BASE_URL"] = model.url
        try:
            state = app.run_agent(
                "task", repo=repo, title=entry["title"], params={"task": entry["task"]},
                change_type=ChangeType(entry["type"]), index_url=index_url,
            )  # fmt: skip
        finally:
            del os.environ["OPENAI_BASE_URL"]
    if state.status is RunStatus.AWAITING_REVIEW:
        state = app.approve(state.run_id, by="benchmark-reviewer", comment="benchmark")
    events = app.store.events(state.run_id)
    spend = app.agent_record(state.run_id).spend or {}
    created = next(e.at for e in events if e.type == EventType.RUN_CREATED)
    decided = next(e.at for e in events if e.type == EventType.DECISION_MADE)
    return {
        "task": entry["fixture"],
        "status": state.status.value,
        "decision": (state.decision or {}).get("action"),
        "steps": spend.get("steps", 0),
        "tokens": spend.get("tokens", 0),
        "cost_usd": spend.get("cost_usd", 0.0),
        "to_decision_seconds": (decided - created).total_seconds(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    corpus = json.loads((AGENTS / "corpus.json").read_text())
    index_dir = build_index(ROOT / "build" / "example-index")
    rows: list[dict[str, Any]] = []
    with serve(index_dir) as index:
        for _ in range(args.repeat):
            for entry in corpus:
                with tempfile.TemporaryDirectory(prefix="shipyard-bench-agents-") as tmp:
                    repo = make_repo(Path(tmp) / "repo")
                    app = App(home=Path(tmp) / "home")
                    try:
                        rows.append(run_task(app, repo, entry, index.url))
                    finally:
                        app.close()
    merged = [r for r in rows if r["status"] == "merged"]
    summary = {
        "runs": len(rows),
        "merged": len(merged),
        "tokens_per_merged_change": sum(r["tokens"] for r in rows) / max(len(merged), 1),
        "cost_per_merged_change_usd": sum(r["cost_usd"] for r in rows) / max(len(merged), 1),
        "median_to_decision_seconds": statistics.median(r["to_decision_seconds"] for r in rows),
    }
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=2))
        return
    for row in rows:
        print(
            f"{row['task']:<22} {row['decision']:<7} → {row['status']:<8} {row['steps']:>2} calls "
            f"{row['tokens']:>7,} tokens ${row['cost_usd']:.4f} "
            f"{row['to_decision_seconds']:.1f} s to decision"
        )
    print(
        f"{summary['merged']} of {summary['runs']} merged; per merged change "
        f"{summary['tokens_per_merged_change']:,.0f} tokens, "
        f"${summary['cost_per_merged_change_usd']:.4f}; median "
        f"{summary['median_to_decision_seconds']:.1f} s to decision"
    )


if __name__ == "__main__":
    main()
