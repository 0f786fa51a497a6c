"""The ``shipyard`` command line. It only parses, calls the application layer and renders."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard import __version__
from shipyard.app import AgentRecord, App
from shipyard.cli_agent import adapter_app, run_agent_command
from shipyard.cli_policy import policy_app
from shipyard.cli_retrieval import retrieval_app
from shipyard.cli_rollout import rollout_app
from shipyard.cli_sandbox import bench_app, sandbox_app
from shipyard.cli_serve import register as register_serve
from shipyard.cli_worker import register as register_worker
from shipyard.config import CONFIG_FILE
from shipyard.console import (
    Progress,
    console,
    gate_details,
    gates_table,
    guard,
    print_json,
    runs_table,
    status_text,
    timeline_table,
    why,
)
from shipyard.errors import ConfigError
from shipyard.events import RunState
from shipyard.model import ChangeType, RunStatus

app = typer.Typer(
    help="Run coding agents unattended: sandboxed changes, verified by gates, delivered by policy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Start a blueprint on a repository.", no_args_is_help=True)
runs_app = typer.Typer(help="Look at runs and their timelines.", no_args_is_help=True)
review_app = typer.Typer(help="Changes that wait for a person.", no_args_is_help=True)
tests_app = typer.Typer(
    help="What the gates learned about a repository's tests.", no_args_is_help=True
)
index_app = typer.Typer(
    help="A local package index (PEP 503/691) for offline use.", no_args_is_help=True
)
app.add_typer(run_app, name="run")
app.add_typer(runs_app, name="runs")
app.add_typer(review_app, name="review")
app.add_typer(tests_app, name="tests")
app.add_typer(index_app, name="index")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(bench_app, name="bench")
app.add_typer(policy_app, name="policy")
app.add_typer(rollout_app, name="rollout")
app.add_typer(retrieval_app, name="retrieval")
app.add_typer(adapter_app, name="adapter")
run_app.command("agent")(run_agent_command)
register_serve(app)
register_worker(app)

RepoOpt = Annotated[Path, typer.Option("--repo", help="The git repository to change.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
IndexOpt = Annotated[
    str | None,
    typer.Option("--index-url", help="Package index (simple API) to read releases from."),
]

AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Who requests the run (default: $SHIPYARD_IDENTITY, else your user)."
    ),
]

FINISHED_BADLY = {RunStatus.FAILED}


@contextmanager
def _app(json_out: bool, *, progress: bool = True) -> Iterator[App]:
    listener = None if json_out or not progress else Progress()
    if listener is not None:
        listener.__enter__()
    shipyard = App(listener=listener)
    try:
        yield shipyard
    finally:
        shipyard.close()
        if listener is not None:
            listener.__exit__(None, None, None)


def _finish(states: list[RunState], json_out: bool) -> None:
    if json_out:
        print_json(states)
    elif states:
        console.print()
        console.print(runs_table(states, title="Summary"))
    if any(s.status in FINISHED_BADLY for s in states):
        raise typer.Exit(1)


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log library details.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


@app.command()
def version() -> None:
    """Print shipyard's version."""
    console.print(f"shipyard {__version__}")


@app.command()
def doctor() -> None:
    """Check that this host can run shipyard: git, bubblewrap, limits, uv and the store."""
    from rich.table import Table

    from shipyard.config import shipyard_home
    from shipyard.doctor import run_checks

    checks = run_checks(shipyard_home())
    table = Table(title="shipyard doctor", title_justify="left")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]problem[/]", check.detail)
    console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def init(repo: RepoOpt = Path(".")) -> None:
    """Write a shipyard.toml with the seed policy into a repository."""
    path = repo / CONFIG_FILE

    def body() -> None:
        if not repo.is_dir():
            raise ConfigError(f"{repo}: no such directory; pass the repository with --repo.")
        if path.exists():
            raise ConfigError(
                f"{path} already exists; edit it instead (see docs/configuration.md)."
            )
        path.write_text(DEFAULT_CONFIG, encoding="utf-8")

    guard(body)
    console.print(f"wrote {path} (policy preset: seed). Commit it, then try `shipyard run deps`.")


@run_app.command("deps")
def run_deps(
    repo: RepoOpt = Path("."),
    index_url: IndexOpt = None,
    requested_by: AsOpt = None,
    json_out: JsonOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the updates and advisories; change nothing.")
    ] = False,
) -> None:
    """Plan security fixes and updates by the rules, verify each run in a sandbox, deliver by policy."""
    if dry_run:
        from shipyard.cli_deps import print_dry_run

        def plan_only() -> None:
            with _app(json_out, progress=False) as shipyard:
                plan = shipyard.plan_deps(repo=repo, index_url=index_url)
                print_dry_run(plan.plan, json_out=json_out)

        guard(plan_only)
        return

    def body() -> list[RunState]:
        with _app(json_out) as shipyard:
            plan = shipyard.run_deps(repo=repo, index_url=index_url, requested_by=requested_by)
            if not plan.plan.runs and not json_out:
                console.print(
                    "nothing to start now"
                    + (
                        f": {len(plan.plan.deferred)} deferred"
                        if plan.plan.deferred
                        else ": every dependency is current under the rules"
                    )
                    + " (`--dry-run` shows every update found, what was deferred or left alone, and why)"
                )
            return plan.runs

    _finish(guard(body), json_out)


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model name (default: [agent] model in shipyard.toml)."),
]


def _agent_run(blueprint: str, json_out: bool, **kwargs: Any) -> None:
    def body() -> tuple[RunState, AgentRecord]:
        with _app(json_out) as shipyard:
            state = shipyard.run_agent(blueprint, **kwargs)
            return state, shipyard.agent_record(state.run_id)

    state, agent = guard(body)
    if json_out:
        print_json({"run": state, **asdict(agent)})
        if state.status in FINISHED_BADLY:
            raise typer.Exit(1)
        return
    _finish([state], json_out)


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; pass {what}.")


@run_app.command("task")
def run_task(
    task: Annotated[str, typer.Option("--task", help="What to implement or fix, in words.")],
    repo: RepoOpt = Path("."),
    title: Annotated[str, typer.Option("--title", help="One line for the change.")] = "",
    change_type: Annotated[
        ChangeType, typer.Option("--type", help="Declared change type (checked against the diff).")
    ] = ChangeType.FEATURE,
    model: ModelOpt = None,
    index_url: IndexOpt = None,
    requested_by: AsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """An agent implements the task in a sandbox; the gates verify it; the policy decides."""
    _agent_run(
        "task", json_out, repo=repo, title=title or task.splitlines()[0][:72],
        params={"task": task}, change_type=change_type, model=model, index_url=index_url,
        requested_by=requested_by,
    )  # fmt: skip


@run_app.command("fix-tests")
def run_fix_tests(
    repo: RepoOpt = Path("."),
    tests: Annotated[
        list[str] | None, typer.Option("--test", help="Only failing tests whose id contains this.")
    ] = None,
    model: ModelOpt = None,
    index_url: IndexOpt = None,
    requested_by: AsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """An agent makes the base's failing tests pass without weakening them."""
    _agent_run(
        "fix-tests", json_out, repo=repo, title="Fix failing tests", params={"tests": tests or []},
        change_type=ChangeType.BUGFIX, model=model, index_url=index_url,
        requested_by=requested_by,
    )  # fmt: skip


@run_app.command("lint-fix")
def run_lint_fix(
    repo: RepoOpt = Path("."),
    model: ModelOpt = None,
    index_url: IndexOpt = None,
    requested_by: AsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """ruff's automatic fixes, then an agent (when a model is configured) for what is left."""
    _agent_run(
        "lint-fix", json_out, repo=repo, title="Fix lint findings", params={},
        change_type=ChangeType.FORMATTING, model=model, index_url=index_url,
        requested_by=requested_by,
    )  # fmt: skip


@run_app.command("ci-fix")
def run_ci_fix(
    log: Annotated[Path, typer.Option("--log", help="The failing check's log file.")],
    repo: RepoOpt = Path("."),
    model: ModelOpt = None,
    index_url: IndexOpt = None,
    requested_by: AsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """An agent fixes the cause of a failing CI check from its log (at most 2 fix cycles)."""
    guard(lambda: _require_file(log, "the failing check's log"))
    _agent_run(
        "ci-fix", json_out, repo=repo, title=f"Fix the check failing in {log.name}",
        params={"log": str(log.resolve())}, change_type=ChangeType.BUGFIX, model=model,
        index_url=index_url, requested_by=requested_by,
    )  # fmt: skip


@app.command()
def submit(
    patch: Annotated[Path, typer.Option("--patch", help="Unified diff to apply.")],
    change_type: Annotated[ChangeType, typer.Option("--type", help="Declared change type.")],
    repo: RepoOpt = Path("."),
    title: Annotated[str, typer.Option("--title", help="One line describing the change.")] = "",
    index_url: IndexOpt = None,
    requested_by: AsOpt = None,
    allow_removed: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-removed-test",
            help="Test id pattern (fnmatch) the change may remove; repeat for several.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify a patch produced elsewhere and deliver it by policy."""

    def body() -> RunState:
        with _app(json_out) as shipyard:
            return shipyard.submit(
                repo=repo,
                patch=patch,
                change_type=change_type,
                title=title,
                index_url=index_url,
                requested_by=requested_by,
                allow_removed_tests=allow_removed or (),
            )

    _finish([guard(body)], json_out)


@runs_app.command("list")
def runs_list(
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """List recent runs."""
    with _app(json_out, progress=False) as shipyard:
        states = guard(lambda: shipyard.runs(limit=limit, status=status))
    if json_out:
        print_json(states)
    else:
        console.print(runs_table(states))


@runs_app.command("show")
def runs_show(run_id: str, json_out: JsonOpt = False) -> None:
    """Show a run: its outcome, why, and the timeline of its events."""
    with _app(json_out, progress=False) as shipyard:
        state = guard(lambda: shipyard.run(run_id))
        events = shipyard.store.events(state.run_id)
    if json_out:
        print_json({"run": state, "events": events})
        return
    console.print(
        f"[bold]run {state.run_id}[/]  {status_text(state)}  {state.task.get('title', '')}"
    )
    if why(state):
        console.print(f"why: {why(state)}")
    if state.gates:
        console.print(gates_table(state))
        for line in gate_details(state):
            console.print(line)
    console.print(timeline_table(events))


@tests_app.command("quarantine")
def quarantine_list(repo: RepoOpt = Path("."), json_out: JsonOpt = False) -> None:
    """Tests seen flaky (failed, then passed on a re-run) in this repository's runs."""
    with _app(json_out, progress=False) as shipyard:
        entries = guard(lambda: shipyard.quarantine(repo=repo))
    if json_out:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        console.print("no flaky tests seen")
        return
    table = Table(title="Quarantine: flaky tests", title_justify="left")
    for column in ("test", "times seen", "first seen (UTC)", "last seen (UTC)", "last run"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            e.test,
            str(e.times_seen),
            f"{e.first_seen:%Y-%m-%d %H:%M}",
            f"{e.last_seen:%Y-%m-%d %H:%M}",
            e.runs[-1] if e.runs else "",
        )
    console.print(table)


@review_app.command("list")
def review_list(json_out: JsonOpt = False) -> None:
    """Runs whose change waits for a person's approval."""
    with _app(json_out, progress=False) as shipyard:
        states = guard(shipyard.reviews)
    if json_out:
        print_json(states)
    elif not states:
        console.print("nothing waits for review")
    else:
        console.print(runs_table(states, title="Waiting for review", branches=True))


CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why; kept in the record.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who decides (default: your user).")]


@review_app.command("approve")
def review_approve(
    run_id: str, comment: CommentOpt = "", by: ByOpt = None, json_out: JsonOpt = False
) -> None:
    """Approve a change: it is merged into the branch it was verified against."""
    with _app(json_out) as shipyard:
        state = guard(lambda: shipyard.approve(run_id, by=by, comment=comment))
    if json_out:
        print_json(state)
    elif state.delivered_target:
        console.print(f"run {state.run_id}: {status_text(state)} into {state.delivered_target}")
    else:
        console.print(f"run {state.run_id}: {status_text(state)} — {why(state)}")
    if state.status not in (RunStatus.MERGED, RunStatus.ROLLING_OUT):
        raise typer.Exit(1)


@app.command()
def recover(json_out: JsonOpt = False) -> None:
    """Settle deliveries that a crash interrupted: record merges that happened, hand back the rest."""
    with _app(json_out, progress=False) as shipyard:
        settled = guard(shipyard.recover)
    if json_out:
        print_json(settled)
    elif not settled:
        console.print("nothing to recover: every delivery has its outcome recorded")
    else:
        for line in settled:
            console.print(line)


@review_app.command("reject")
def review_reject(
    run_id: str, comment: CommentOpt = "", by: ByOpt = None, json_out: JsonOpt = False
) -> None:
    """Reject a change: nothing is merged and its branch is deleted."""
    with _app(json_out, progress=False) as shipyard:
        state = guard(lambda: shipyard.reject(run_id, by=by, comment=comment))
    if json_out:
        print_json(state)
    else:
        console.print(f"run {state.run_id}: {status_text(state)}")


@index_app.command("serve")
def index_serve(
    directory: Annotated[Path, typer.Argument(help="Folder of wheels and sdists.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
) -> None:
    """Serve a folder of distributions as a package index on loopback until interrupted."""
    from shipyard.deps.localindex import serve_forever

    guard(lambda: serve_forever(directory, port=port))


DEFAULT_CONFIG = """\
# shipyard configuration: see docs/configuration.md
[policy]
preset = "seed"            # or "strict"; override parts below, e.g. [policy.paths]

[gates.tests]
paths = ["tests"]
requirements = ["requirements.txt", "requirements-dev.txt"]
coverage_source = ["src"]

[deps]
files = ["requirements.txt"]
# index_url = "https://pypi.org/simple/"
"""


def main() -> None:
    app()
