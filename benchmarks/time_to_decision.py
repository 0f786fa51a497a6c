"""Time from task to decision for dependency updates on the bundled example (`make bench`).

Each repetition uses a fresh copy of the example repository and a fresh shipyard home, so nothing is cached
between repetitions except pip's download cache. Times come from the run's own events: `run.created` to
`decision.made`, and to the final delivery event.

    .venv/bin/python benchmarks/time_to_decision.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from scenario import build_index, make_repo  # noqa: E402
from shipyard.app import App  # noqa: E402
from shipyard.deps.localindex import serve  # noqa: E402
from shipyard.events import EventType  # noqa: E402


def seconds_between(events: list, first: str, last: set[str]) -> float:  # type: ignore[type-arg]
    start = next(e.at for e in events if e.type == first)
    end = next(e.at for e in reversed(events) if e.type in last)
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    index_dir = build_index(ROOT / "build" / "example-index")
    rows: dict[str, list[tuple[float, float]]] = {}
    walls = []
    with serve(index_dir) as index:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
                repo = make_repo(Path(tmp) / "repo")
                app = App(home=Path(tmp) / "home")
                started = time.perf_counter()
                plan = app.run_deps(repo=repo, index_url=index.url)
                walls.append(time.perf_counter() - started)
                for run in plan.runs:
                    events = app.store.events(run.run_id)
                    decision = seconds_between(
                        events, EventType.RUN_CREATED, {EventType.DECISION_MADE}
                    )
                    delivered = seconds_between(
                        events,
                        EventType.RUN_CREATED,
                        {
                            EventType.DELIVERY_MERGED,
                            EventType.RUN_HALTED,
                            EventType.REVIEW_REQUESTED,
                        },
                    )
                    title = f"{run.task['title']} ({run.status.value})"
                    rows.setdefault(title, []).append((decision, delivered))
                app.close()
    print(f"{'run':<48} {'to decision (median)':>22} {'to delivery (median)':>22}")
    for title, values in rows.items():
        decision = statistics.median(v[0] for v in values)
        delivered = statistics.median(v[1] for v in values)
        print(f"{title:<48} {decision:>20.2f} s {delivered:>20.2f} s")
    print(f"whole `run deps` (discovery + {len(rows)} runs), median of {len(walls)}: "
          f"{statistics.median(walls):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
