"""``shipyard retrieval index``: embed a repository's files ahead of its first run, so that run
does not spend its indexing budget (``[agent.retrieval] index_seconds``) on them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from shipyard.agent.context.retrieval import IndexStats, open_retriever
from shipyard.agent.context.rules import CommitTree
from shipyard.app import App
from shipyard.config import RetrievalConfig
from shipyard.console import console, guard, print_json
from shipyard.errors import ConfigError

retrieval_app = typer.Typer(
    help="Retrieval of code chunks by local embeddings: warm the vector cache.",
    no_args_is_help=True,
)


@retrieval_app.command("index")
def index(
    repo: Annotated[Path, typer.Option("--repo", help="The git repository to index.")] = Path("."),
    commit: Annotated[str, typer.Option("--commit", help="The commit whose files are indexed.")] = (
        "HEAD"
    ),
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop after this long (default: finish).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Embed the committed files of REPO not indexed yet, into the cache runs search."""
    with App() as shipyard:
        stats = guard(lambda: _index(shipyard, repo, commit, seconds, quiet=json_out))
    if json_out:
        print_json(stats)
        return
    console.print(
        f"{stats.covered} of {stats.files} files indexed: {stats.embedded} chunks embedded now, "
        f"{stats.reused} already cached, in {stats.seconds:.1f} s"
    )


def _index(
    shipyard: App, repo: Path, commit: str, seconds: float | None, *, quiet: bool
) -> IndexStats:
    if not (repo / ".git").exists():
        raise ConfigError(f"{repo} is not a git repository; pass one with --repo PATH.")
    tree = CommitTree.at(repo.resolve(), commit)
    retriever, note = open_retriever(
        RetrievalConfig(mode="on"), store=shipyard.store, home=shipyard.home
    )
    if retriever is None:
        raise ConfigError(
            "retrieval is off on this host ($SHIPYARD_RETRIEVAL=off); unset it to index."
        )
    if note:
        console.print(note)
    columns = (
        *Progress.get_default_columns()[:2],
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
            task = bar.add_task("indexing files", total=None)
            return retriever.index(
                tree, seconds=seconds,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    finally:
        retriever.close()
