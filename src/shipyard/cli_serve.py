"""``shipyard serve`` (the API, dashboard and scheduler on uvicorn) and ``shipyard token``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shipyard.app import identity
from shipyard.config import shipyard_home
from shipyard.console import console, guard, print_json
from shipyard.store import Store

if TYPE_CHECKING:  # the web stack is imported when a command needs it, not on every CLI start
    from shipyard.web.auth import TokenInfo, TokenStore

token_app = typer.Typer(
    help="API tokens for the server: create, list, revoke.", no_args_is_help=True
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


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``token`` to the ``shipyard`` command."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
