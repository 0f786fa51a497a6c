"""``shipyard serve`` (the API, dashboard and scheduler on uvicorn), ``shipyard token`` and
``shipyard repo`` (the repositories the server may change)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shipyard.app import identity
from shipyard.config import shipyard_home
from shipyard.console import console, guard, print_json
from shipyard.store import Store

if TYPE_CHECKING:  # the web stack is imported when a command needs it, not on every CLI start
    from shipyard.web.auth import TokenInfo, TokenStore
    from shipyard.web.registry import RepoRecord

token_app = typer.Typer(
    help="API tokens for the server: create, list, revoke.", no_args_is_help=True
)
repo_app = typer.Typer(
    help="Repositories the server may change: add, list, remove (what POST /api/repos does).",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def serve(
    host: Annotated[
        str, typer.Option(help="Interface to listen on (put TLS in a reverse proxy in front).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    proxy_headers: Annotated[
        bool,
        typer.Option(help="Trust X-Forwarded-* from --forwarded-allow-ips (behind a proxy)."),
    ] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="Proxies whose X-Forwarded-* headers are trusted.")
    ] = "127.0.0.1",
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not start due schedules from this process.")
    ] = False,
) -> None:
    """Serve the REST API, live streams, webhooks, /metrics and the dashboard."""
    import uvicorn

    from shipyard.web import ServeSettings, create_app

    def body() -> None:
        settings = ServeSettings.from_env(host=host, port=port, scheduler=not no_scheduler)
        app = create_app(settings)
        console.print(f"shipyard serving on http://{host}:{port} (home {settings.home})")
        uvicorn.run(
            app,
            host=host,
            port=port,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
            log_level="info",
        )

    guard(body)


def _tokens() -> tuple[Store, TokenStore]:
    from shipyard.web.auth import TokenStore

    store = Store.open(home=shipyard_home())
    return store, TokenStore(store)


def _row(info: TokenInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "role": info.role.label,
        "created_at": info.created_at,
        "created_by": info.created_by,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who uses it: a person or a bot.")],
    role: Annotated[str, typer.Option("--role", help="viewer, reviewer or admin.")],
    json_out: JsonOpt = False,
) -> None:
    """Create a token; it is printed once and only its hash is kept."""

    from shipyard.web.auth import Role

    def body() -> tuple[TokenInfo, str]:
        store, tokens = _tokens()
        with store:
            return tokens.create(name=name, role=Role.parse(role), created_by=identity())

    info, secret = guard(body)
    if json_out:
        print_json({**_row(info), "token": secret})
        return
    console.print(f"token {info.id} for {info.name} ({info.role.label}); shown only now:")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(json_out: JsonOpt = False) -> None:
    """List tokens (never their secrets)."""

    def body() -> list[TokenInfo]:
        store, tokens = _tokens()
        with store:
            return tokens.list()

    found = guard(body)
    if json_out:
        print_json([_row(t) for t in found])
        return
    table = Table(title="API tokens", title_justify="left")
    for column in ("id", "name", "role", "created (UTC)", "last used (UTC)", "state"):
        table.add_column(column)
    for t in found:
        table.add_row(
            t.id,
            t.name,
            t.role.label,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
            "active" if t.active else f"revoked {t.revoked_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_...).")],
) -> None:
    """Revoke a token: requests and dashboard sessions using it are refused from now on."""

    def body() -> TokenInfo:
        store, tokens = _tokens()
        with store:
            return tokens.revoke(token_id)

    info = guard(body)
    console.print(f"token {info.id} ({info.name}) revoked")


def _repo_row(record: RepoRecord) -> dict[str, object]:
    return {
        "name": record.name,
        "path": record.path,
        "github": record.github,
        "index_url": record.index_url,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }


@repo_app.command("add")
def repo_add(
    name: Annotated[str, typer.Argument(help="The name requests use for it, e.g. `shop`.")],
    path: Annotated[Path, typer.Argument(help="The git repository on this host.")],
    github: Annotated[
        str | None, typer.Option(help="owner/name on GitHub, for the issues webhook.")
    ] = None,
    index_url: Annotated[
        str | None, typer.Option("--index-url", help="Package index its runs install from.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a repository: requests name it, its path and index come from here."""
    from shipyard.web.registry import Registry

    def body() -> RepoRecord:
        with Store.open(home=shipyard_home()) as store:
            return Registry(store).add_repo(
                name=name, path=path, by=identity(), github=github, index_url=index_url
            )

    record = guard(body)
    if json_out:
        print_json(_repo_row(record))
        return
    console.print(f"repository {record.name} registered: {record.path}", markup=False)


@repo_app.command("list")
def repo_list(json_out: JsonOpt = False) -> None:
    """List the registered repositories."""
    from shipyard.web.registry import Registry

    def body() -> list[RepoRecord]:
        with Store.open(home=shipyard_home()) as store:
            return Registry(store).repos()

    found = guard(body)
    if json_out:
        print_json([_repo_row(r) for r in found])
        return
    table = Table(title="Repositories", title_justify="left")
    for column in ("name", "path", "github", "index"):
        table.add_column(column)
    for r in found:
        table.add_row(r.name, r.path, r.github or "", r.index_url or "")
    console.print(table)


@repo_app.command("remove")
def repo_remove(name: Annotated[str, typer.Argument(help="The registered name.")]) -> None:
    """Unregister a repository (its runs stay in the record; the repository is not touched)."""
    from shipyard.web.registry import Registry

    def body() -> None:
        with Store.open(home=shipyard_home()) as store:
            Registry(store).remove_repo(name)

    guard(body)
    console.print(f"repository {name} removed", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``token`` and ``repo`` to the ``shipyard`` command."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
    app.add_typer(repo_app, name="repo")
