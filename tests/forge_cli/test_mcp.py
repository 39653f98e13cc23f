"""`forge mcp` driven by the MCP SDK's own client, as a coding agent drives it: over stdio
against a real daemon (a repository added, its mission proposed and read, approval refused by
default and allowed once the person allows it, the train job followed to its end with progress,
the eval table read), and over HTTP, where a request without the token is refused."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon_harness import Daemon, DaemonFactory, wait_for
from tests.support.missions import agent_config, make_repo

mcp = pytest.importorskip("mcp", reason="needs the MCP SDK (pip install 'ai-forge[mcp]')")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from mcp_types import TextResourceContents  # noqa: E402


def forge_mcp(daemon: Daemon, *args: str) -> StdioServerParameters:
    env = dict(os.environ, FORGE_SOCKET=str(daemon.paths.socket_file))
    return StdioServerParameters(
        command=sys.executable, args=["-m", "forge_cli", "mcp", *args], env=env
    )


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content
    return data


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(c.text for c in result.content if getattr(c, "text", None))


async def drive(daemon: Daemon, repo: Path, config_file: Path) -> None:
    async with Client(forge_mcp(daemon), read_timeout_seconds=600) as agent:
        tools = {t.name for t in (await agent.list_tools()).tools}
        assert {"sources_add", "missions_list", "mission_show", "missions_approve"} <= tools
        assert {"jobs_submit", "job_follow", "job_logs", "models_list", "datasets_preview"} <= tools

        # Outside the daemon's allowed roots: the daemon's one-line reason, the param named.
        refused = await agent.call_tool("sources_add", {"path": "/etc"})
        said = error_text(refused)
        assert "allowed_roots" in said and "Traceback" not in said, said

        source = structured(await agent.call_tool("sources_add", {"path": str(repo)}))
        mission = wait_for(
            lambda: daemon.call("missions.list", source_id=source["id"])["missions"],
            timeout=300,
        )[0]
        shown = structured(await agent.call_tool("mission_show", {"id": mission["id"]}))
        assert shown["mission"]["stage"] == "proposed"
        assert shown["mission"]["data"]["card"]["examples"] > 0
        assert "### Dataset" in shown["text"]

        # A person approves unless they allowed agents to.
        said = error_text(await agent.call_tool("missions_approve", {"id": mission["id"]}))
        assert f"forge missions approve {mission['id']}" in said and "allow_approve" in said
        assert daemon.call("missions.get", id=mission["id"])["stage"] == "proposed"
        config_file.write_text(config_file.read_text() + "\n[mcp]\nallow_approve = true\n")
        daemon.call("system.reload_config")
        approved = structured(
            await agent.call_tool("missions_approve", {"id": mission["id"], "set": {"steps": 2}})
        )
        train = approved["data"]["train_job"]

        # Followed to its end, with progress notifications on the way.
        seen: list[tuple[float, float | None, str | None]] = []

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        followed = await agent.call_tool("job_follow", {"id": train}, progress_callback=progress)
        assert structured(followed)["status"] == "completed"
        assert seen and seen[-1][0] == seen[-1][1], seen

        # The eval table, once the chain has evaluated the adapter.
        def evaluated() -> dict[str, Any] | None:
            m: dict[str, Any] = daemon.call("missions.get", id=mission["id"])
            return m if m["data"].get("results") else None

        wait_for(evaluated, timeout=600)
        shown = structured(await agent.call_tool("mission_show", {"id": mission["id"]}))
        assert "base" in json.dumps(shown["mission"]["data"]["results"])
        card = (await agent.read_resource(f"forge://missions/{mission['id']}/card")).contents[0]
        assert isinstance(card, TextResourceContents) and "### Dataset" in card.text


@pytest.mark.training
def test_an_agent_drives_the_forge_over_stdio_and_a_person_approves(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_daemon(config=agent_config(tiny_model)).start()
    repo = make_repo(tmp_path)
    asyncio.run(drive(daemon, repo, daemon.paths.config_file))


def test_forge_mcp_over_http_refuses_a_request_without_its_token(daemon: Daemon) -> None:
    import httpx2 as httpx

    env = dict(os.environ, FORGE_SOCKET=str(daemon.paths.socket_file))
    proc = subprocess.Popen(
        [sys.executable, "-m", "forge_cli", "mcp", "--http", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/mcp) .*Bearer ([\w-]+)", line)
        assert found, line
        url, token = found.groups()
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream"}
        bare = httpx.post(url, json=ping, headers=headers)
        assert bare.status_code == 401, bare.text
        wrong = httpx.post(url, json=ping, headers=headers | {"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        rebound = httpx.post(
            url, json=ping, headers=headers | {"Authorization": f"Bearer {token}", "Host": "evil"}
        )
        assert rebound.status_code in (400, 403, 421), rebound.text

        async def with_token() -> set[str]:
            client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            from mcp.client.streamable_http import streamable_http_client

            async with Client(streamable_http_client(url, http_client=client)) as agent:
                return {t.name for t in (await agent.list_tools()).tools}

        assert "missions_list" in asyncio.run(with_token())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
