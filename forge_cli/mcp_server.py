"""`forge mcp`: the forge as an MCP server, so a coding agent (Claude Code, Cursor, any MCP client)
can see the missions proposed from the repository it works in, read their cards and eval tables,
submit and follow jobs, while a person still approves.

Built on the official Python SDK (`mcp`, its `MCPServer`), over stdio or streamable HTTP on
127.0.0.1. It talks to the daemon only through `forge_client` (the socket, or `forge --host`'s
bridge to another machine's), each tool one typed method of `forge_api.methods`: its inputs are
the method's params and its output the method's result model, so it adds no second way into the
store and reaches no path the daemon does not already allow. Every error an agent gets is the
daemon's one-line reason, naming the param. Approving a mission is a person's decision unless
the daemon's config says `[mcp] allow_approve = true`; otherwise the tool answers how a person
approves.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from forge_api import methods as M
from forge_api.names import TERMINAL_JOB_STATUSES, JobKind, MissionStage, ModelKind
from forge_api.schema import (
    DatasetsListResult,
    DatasetsPreviewResult,
    Job,
    JobsListResult,
    JobsLogsResult,
    Mission,
    MissionsListResult,
    ModelsListResult,
    ScanResult,
    Source,
    SourcesListResult,
    SystemHealth,
    SystemStatus,
)
from forge_client.client import AsyncClient, DaemonNotRunning, DaemonUnresponsive, RemoteError
from forge_client.record_text import CLI_HINTS, mission_markdown

R = TypeVar("R", bound=BaseModel)


class MissionView(BaseModel):
    """A mission for an agent: the record, and the same as a person reads it."""

    mission: Mission
    text: str = Field(description="the mission as Markdown: card, plan, timing, eval table")


INSTRUCTIONS = """AI Forge fine-tunes local LLMs on the user's own git repositories.
The daemon watches repositories (sources), proposes training missions when enough new material
has come in, and runs approved missions: train an adapter, evaluate it against the base and the
deployed model, deploy the better one to Ollama. Use missions_list and mission_show to see what
is proposed (its dataset card, plan, rationale and, once evaluated, its eval table). A person
approves missions; missions_approve works only where they allowed it. jobs_submit queues a job
with the same checks as the CLI; job_follow reports its progress until it ends."""

NOT_ALLOWED = (
    "approving is a person's decision here: they run `forge missions approve {id}` (or press `a` "
    "on it in `forge tui`). To let coding agents approve, they set `allow_approve = true` under "
    "`[mcp]` in the daemon's config.toml."
)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


class DaemonLink:
    """The daemon as the tools reach it: a fresh socket connection per call, its refusals
    turned into the one-line tool errors an agent reads."""

    def __init__(self, daemon_socket: Path) -> None:
        self.socket = daemon_socket

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[AsyncClient]:
        try:
            client = await AsyncClient(self.socket).connect()
        except (DaemonNotRunning, DaemonUnresponsive, OSError) as exc:
            raise ToolError(f"the forge daemon does not answer: {_one_line(exc)}") from None
        try:
            yield client
        except RemoteError as exc:
            raise ToolError(_one_line(exc)) from None
        except (ConnectionError, OSError) as exc:
            raise ToolError(f"the connection to the forge daemon broke: {exc}") from None
        finally:
            await client.close()

    async def ask(self, method: M.Method[Any, R], **params: Any) -> R:
        """`method`'s result as its model; params left None are not sent (the defaults hold)."""
        async with self.connected() as client:
            return await client.ask(method, **{k: v for k, v in params.items() if v is not None})


def build_server(daemon_socket: Path) -> MCPServer:
    """The MCP server: every tool and resource, each one daemon method."""
    server: MCPServer = MCPServer("ai-forge", instructions=INSTRUCTIONS, log_level="WARNING")
    link = DaemonLink(daemon_socket)
    for add in (_system_tools, _mission_tools, _job_tools, _catalog_tools, _resources):
        add(server, link)
    return server


def _system_tools(server: MCPServer, link: DaemonLink) -> None:
    """The daemon's state and checks, and the repositories it watches."""
    tool = server.tool

    @tool(description="The daemon: version, accelerator, memory, the queue and running jobs.")
    async def status() -> SystemStatus:
        return await link.ask(M.SYSTEM_STATUS)

    @tool(description="Each part of the forge in a word or a sentence (`forge doctor`'s checks).")
    async def health() -> SystemHealth:
        return await link.ask(M.SYSTEM_HEALTH)

    @tool(description="Every watched repository, with what its last scan found pending.")
    async def sources_list() -> SourcesListResult:
        return await link.ask(M.SOURCES_LIST)

    @tool(
        description="Watch a git repository (a path on the daemon's machine, under "
        "agent.allowed_roots). Its material is scanned and a mission proposed when enough."
    )
    async def sources_add(path: str, name: str | None = None) -> Source:
        return await link.ask(M.SOURCES_ADD, path=path, name=name)

    @tool(description="Look at a source now; the mission it proposed, if it had enough material.")
    async def sources_scan(id: str) -> ScanResult:
        return await link.ask(M.SOURCES_SCAN, id=id)


def _mission_tools(server: MCPServer, link: DaemonLink) -> None:
    """Missions: read them; approve only where the person allowed agents to."""
    tool = server.tool

    @tool(description="Missions, newest first, by stage and source.")
    async def missions_list(
        stage: list[MissionStage] | None = None, source_id: str | None = None
    ) -> MissionsListResult:
        return await link.ask(M.MISSIONS_LIST, stage=stage, source_id=source_id)

    @tool(
        description="One mission: its dataset card, plan, rationale, timing and, once evaluated,"
        " its eval table; `text` is the same as a person reads it."
    )
    async def mission_show(id: str) -> MissionView:
        mission: Mission = await link.ask(M.MISSIONS_GET, id=id)
        return MissionView(mission=mission, text=mission_markdown(mission, hints=CLI_HINTS))

    @tool(
        description="Approve a proposed mission (with changes to its plan in `set`), where the "
        "person allowed agents to: `[mcp] allow_approve` in the daemon's config."
    )
    async def missions_approve(id: str, set: dict[str, Any] | None = None) -> Mission:
        allowed = (await link.ask(M.SYSTEM_STATUS)).mcp_allow_approve
        if not allowed:
            raise ToolError(NOT_ALLOWED.format(id=id))
        return await link.ask(M.MISSIONS_APPROVE, id=id, set=set)

    @tool(description="Reject a proposed mission; the reason is kept.")
    async def missions_reject(id: str, reason: str | None = None) -> Mission:
        return await link.ask(M.MISSIONS_REJECT, id=id, reason=reason)

    @tool(description="Run a failed mission again from the step that failed.")
    async def missions_retry(id: str) -> Mission:
        return await link.ask(M.MISSIONS_RETRY, id=id)


def _job_tools(server: MCPServer, link: DaemonLink) -> None:
    """Jobs: submit with the checks at submit, list, read, follow, cancel."""
    tool = server.tool

    @tool(
        description="Queue a job (prepare-model, train, eval, merge, deploy, infer, export) with "
        "its params, checked as `forge jobs submit` checks them."
    )
    async def jobs_submit(kind: JobKind, params: dict[str, Any], name: str | None = None) -> Job:
        return await link.ask(M.JOBS_SUBMIT, kind=kind, params=params, name=name)

    @tool(description="Jobs, newest first, by status and kind.")
    async def jobs_list(
        status: list[str] | None = None, kind: list[JobKind] | None = None, limit: int = 50
    ) -> JobsListResult:
        return await link.ask(M.JOBS_LIST, status=status, kind=kind, limit=limit)

    @tool(description="One job: params, progress, result, error.")
    async def job_show(id: str) -> Job:
        return await link.ask(M.JOBS_GET, id=id)

    @tool(description="A job's log lines, a page at a time from `after_seq`, or its last `tail`.")
    async def job_logs(
        id: str, after_seq: int = 0, limit: int = 200, tail: int | None = None
    ) -> JobsLogsResult:
        return await link.ask(M.JOBS_LOGS, id=id, after_seq=after_seq, limit=limit, tail=tail)

    @tool(description="Cancel a queued or running job.")
    async def jobs_cancel(id: str) -> Job:
        return await link.ask(M.JOBS_CANCEL, id=id)

    @tool(
        description="Follow a job until it ends, with progress notifications (step of total and"
        " ETA) while it runs; the job as it ended."
    )
    async def job_follow(id: str, ctx: Context) -> Job:
        return await _follow(link.connected, id, ctx)


def _catalog_tools(server: MCPServer, link: DaemonLink) -> None:
    """Models and datasets."""
    tool = server.tool

    @tool(description="Models: base models, adapters with their eval metrics, merged, Ollama.")
    async def models_list(kind: ModelKind | None = None) -> ModelsListResult:
        return await link.ask(M.MODELS_LIST, kind=kind)

    @tool(description="Datasets, newest first, of one source or all.")
    async def datasets_list(source_id: str | None = None) -> DatasetsListResult:
        return await link.ask(M.DATASETS_LIST, source_id=source_id)

    @tool(description="The first examples of a dataset, as the model will see them.")
    async def datasets_preview(id: str, limit: int = 5) -> DatasetsPreviewResult:
        return await link.ask(M.DATASETS_PREVIEW, id=id, limit=limit)


def _resources(server: MCPServer, link: DaemonLink) -> None:
    """A job's log and a mission's card, as resources to read."""

    @server.resource("forge://jobs/{id}/log", mime_type="text/plain")
    async def job_log(id: str) -> str:
        """The last 500 lines of a job's log."""
        logs: JobsLogsResult = await link.ask(M.JOBS_LOGS, id=id, tail=500)
        return "\n".join(line.line for line in logs.lines)

    @server.resource("forge://missions/{id}/card", mime_type="text/markdown")
    async def mission_card(id: str) -> str:
        """A mission as a person reads it: card, plan, eval table."""
        mission: Mission = await link.ask(M.MISSIONS_GET, id=id)
        return mission_markdown(mission, hints=CLI_HINTS)


async def _follow(
    connected: Callable[[], contextlib.AbstractAsyncContextManager[AsyncClient]],
    ref: str,
    ctx: Context,
) -> Job:
    """The job's progress events as MCP progress notifications, until it ends."""
    async with connected() as client:
        job = await client.ask(M.JOBS_GET, id=ref)
        await client.call("events.subscribe", since=0, job_id=job.id, types=["job."])
        job = await client.ask(M.JOBS_GET, id=job.id)  # what changed before the subscription
        if job.status in TERMINAL_JOB_STATUSES:
            return job
        async for event in client.events():
            kind, data = event.get("type"), event.get("data") or {}
            if kind == "job.progress" and data.get("total"):
                eta = data.get("eta_s")
                said = f"{data.get('stage', 'step')} {data['step']}/{data['total']}"
                await ctx.report_progress(
                    float(data["step"]),
                    float(data["total"]),
                    said + (f", about {eta:.0f} s left" if eta is not None else ""),
                )
            elif kind == "job.status" and data.get("status") in TERMINAL_JOB_STATUSES:
                return await client.ask(M.JOBS_GET, id=job.id)
    return await _reread(connected, ref)


async def _reread(
    connected: Callable[[], contextlib.AbstractAsyncContextManager[AsyncClient]], ref: str
) -> Job:
    async with connected() as client:
        return await client.ask(M.JOBS_GET, id=ref)


LOOPBACK = "127.0.0.1"


def serve_stdio(daemon_socket: Path) -> None:
    """Serve one MCP client on this process's stdin and stdout (what an MCP client launches)."""
    build_server(daemon_socket).run("stdio")


def serve_http(daemon_socket: Path, port: int) -> None:
    """Streamable HTTP on 127.0.0.1 only: every request must carry `Authorization: Bearer
    <token>` (a fresh token each start, said on stderr) and a loopback Host (no DNS
    rebinding); the first line on stderr says where and the token."""
    import anyio
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    token = secrets.token_urlsafe(24)
    security = TransportSecuritySettings(
        allowed_hosts=[f"{LOOPBACK}:*", "localhost:*"],
        allowed_origins=[f"http://{LOOPBACK}:*", "http://localhost:*"],
    )
    app = build_server(daemon_socket).streamable_http_app(
        transport_security=security, host=LOOPBACK
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    bound = listener.getsockname()[1]
    print(
        f"forge mcp: http://{LOOPBACK}:{bound}/mcp (send the header Authorization: Bearer"
        f" {token}); 127.0.0.1 only, Ctrl+C stops it",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        BearerOnly(app, token), log_level="warning", lifespan="on", access_log=False
    )
    anyio.run(uvicorn.Server(config).serve, [listener])


class BearerOnly:
    """An ASGI app that answers 401 to any HTTP request without the token, before the MCP app
    sees it (compared in constant time)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                body = b'{"error": "forge mcp: a request needs the token forge mcp printed"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
