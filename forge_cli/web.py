"""`forge web`: the same TUI in a browser, served by textual-serve on this machine only.

Each browser tab runs its own `forge tui` process behind a websocket, so the browser sees exactly
what a terminal sees. The server listens on 127.0.0.1 and nothing else, and every request must
carry a token that only the person who started it has: the URL it prints holds the token; the
first visit trades it for a cookie (HttpOnly, SameSite=Strict) and is sent on to `/`, so the token
leaves the address bar. A websocket from another origin is refused even with the cookie, so a page
on another local port cannot drive the TUI. To reach it from another machine, forward the port
over ssh (`ssh -L PORT:127.0.0.1:PORT`), or run `forge --host … web` on your own machine.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from forge_cli.context import AddCommand, Cli, Subparsers

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Middleware

DEFAULT_PORT = 8470
COOKIE = "forge_web"
LOOPBACK = "127.0.0.1"

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def tui_command() -> str:
    """The command each browser tab runs: this Python's `forge tui`. The daemon it talks to is
    the one this process would talk to (FORGE_HOME, FORGE_SOCKET, or an ssh bridge of `--host`),
    since the child inherits this environment."""
    return shlex.join([sys.executable, "-m", "forge_cli", "tui"])


def token_guard(token: str, port: int) -> Middleware:
    """An aiohttp middleware: the token (in the query or the cookie) or a 403 that says why."""
    from aiohttp import web

    origins = {f"http://{LOOPBACK}:{port}", f"http://localhost:{port}"}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.query.get("token")
        if given is not None and secrets.compare_digest(given, token):
            if request.path == "/":
                # Trade the token for a cookie, and leave the token out of the address bar.
                found = web.HTTPFound("/")
                found.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
                raise found
            return await handler(request)
        if not secrets.compare_digest(request.cookies.get(COOKIE, ""), token):
            raise web.HTTPForbidden(
                text="forge web: open the URL with its token, as `forge web` printed it\n"
            )
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin is not None and origin not in origins:
            raise web.HTTPForbidden(text=f"forge web: websocket from {origin} refused\n")
        return await handler(request)

    return guard


def make_server(port: int, token: str, command: str | None = None) -> Any:
    """A textual-serve `Server` for the TUI on 127.0.0.1:`port`, behind `token_guard`."""
    from textual_serve.server import Server

    class GuardedServer(Server):
        async def _make_app(self) -> web.Application:
            app: web.Application = await super()._make_app()
            app.middlewares.append(token_guard(token, port))
            return app

        async def on_startup(self, app: web.Application) -> None:
            # aiohttp starts listening only after its start-up hooks, and the one call it makes
            # once listening (run_app's `print`) is textual-serve's own no-op: say the URL once
            # the port answers, so a person (or a script) opening it at once is never refused.
            self._announce = asyncio.create_task(self._announce_when_listening())

        async def _announce_when_listening(self) -> None:
            while True:
                try:
                    _, writer = await asyncio.open_connection(LOOPBACK, port)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                break
            print(f"forge web: the TUI at {self.public_url}/?token={token}", flush=True)
            print("forge web: 127.0.0.1 only; Ctrl+C stops it", flush=True)

    return GuardedServer(command or tui_command(), host=LOOPBACK, port=port, title="AI Forge")


def cmd_web(cli: Cli) -> int:
    token = secrets.token_urlsafe(24)
    make_server(cli.args.port, token).serve()
    return 0


def register(sub: Subparsers, add: AddCommand) -> None:
    """`forge web`, under `forge`."""
    web_ = sub.add_parser(
        "web", help="the TUI in a browser, on 127.0.0.1 with a token in the URL (textual-serve)"
    )
    web_.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    web_.set_defaults(fn=cmd_web, json=False)
