"""`forge web`: the same TUI in a browser, served by textual-serve on this machine only.

Each browser tab runs its own `forge tui` process behind a websocket, so the browser sees exactly
what a terminal sees. The server listens on 127.0.0.1 and nothing else, and every request must
carry a session that only the person who started it has: the URL it prints holds a one-time
token; the first visit trades it for a session cookie (HttpOnly, SameSite=Strict) and is sent on
to `/`, so the token leaves the address bar, and the link opens nothing after that. Every
request must name this server in its Host header (a DNS-rebound name is refused) and, where it
says where it comes from (Origin), come from this server's own pages, so a page on another
local port cannot drive the TUI. To reach it from another machine, forward the port
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


class Tokens:
    """The one-time token of the printed URL, and the sessions it opened. The first visit with
    the token trades it for a session cookie; after that the URL opens nothing (a link that
    leaked from a shell's history or a screen share is spent)."""

    def __init__(self, token: str) -> None:
        self.token: str | None = token
        self.sessions: set[str] = set()

    def trade(self, given: str) -> str | None:
        """A new session for the token, once; None for any other value, or the token again."""
        if self.token is None or not secrets.compare_digest(given, self.token):
            return None
        self.token = None
        session = secrets.token_urlsafe(32)
        self.sessions.add(session)
        return session

    def holds(self, cookie: str) -> bool:
        return any(secrets.compare_digest(cookie, s) for s in self.sessions)


def token_guard(tokens: Tokens, port: int) -> Middleware:
    """An aiohttp middleware: every request must name this server as its Host, come from its
    own pages when it says where from (Origin), and carry a session cookie, which only the
    printed URL's first visit gets; else a 403 that says why."""
    from aiohttp import web

    hosts = {f"{LOOPBACK}:{port}", f"localhost:{port}"}
    origins = {f"http://{host}" for host in hosts}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host not in hosts:  # a DNS-rebound name reaches 127.0.0.1 with its own Host
            raise web.HTTPForbidden(text=f"forge web: requests for {host!r} refused\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in origins:
            raise web.HTTPForbidden(text=f"forge web: a request from {origin} refused\n")
        given = request.query.get("token")
        if given is not None and request.path == "/":
            session = tokens.trade(given)
            if session is None:
                raise web.HTTPForbidden(
                    text="forge web: this link was used already (or is not this server's):"
                    " start `forge web` again for a new one\n"
                )
            # The session goes in a cookie, and the token leaves the address bar.
            found = web.HTTPFound("/")
            found.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")
            raise found
        if not tokens.holds(request.cookies.get(COOKIE, "")):
            raise web.HTTPForbidden(
                text="forge web: open the URL with its token, as `forge web` printed it\n"
            )
        return await handler(request)

    return guard


def make_server(port: int, token: str, command: str | None = None) -> Any:
    """A textual-serve `Server` for the TUI on 127.0.0.1:`port`, behind `token_guard`."""
    from textual_serve.server import Server

    class GuardedServer(Server):
        async def _make_app(self) -> web.Application:
            app: web.Application = await super()._make_app()
            app.middlewares.append(token_guard(Tokens(token), port))
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
