"""The daemon's side of the warm engine host (`engine.host`): start it when the first local job
starts, hand it each job that may run warm, and follow the forked engine like a child of ours.

A job that cannot run warm starts cold, as `python -m engine <spec>` (the runner's `_spawn`):
one that reaches the hub (`hf:` paths: the host imported huggingface_hub offline), one on the
Unsloth backend (Unsloth patches transformers and must be imported first), a data-parallel job
(accelerate's launcher starts its processes), any job while `jobs.warm_engine` is off or off
Linux (macOS's system libraries are not safe to fork once loaded), and every job whenever the
host cannot be reached; nothing is lost by a cold start but the seconds of imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from forged.job_handle import ProcessGroup, read_lines

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0
"""How long the host may take to import the libraries before jobs start cold instead."""


def runs_warm(command: list[str], params: dict[str, Any]) -> bool:
    """Whether a job's engine may be forked from the host (see the module's docstring)."""
    return (
        sys.platform.startswith("linux")
        and command[1:3] == ["-m", "engine"]
        and len(command) == 4
        and not str(params.get("path") or "").startswith("hf:")
        and params.get("backend") != "unsloth"
    )


class WarmProcess(ProcessGroup):
    """A job's engine forked by the host: its output pipe, its pid (its own process group), and
    the host's connection that tells its exit code. A `JobHandle`, as `LocalProcess` is."""

    def __init__(
        self,
        pid: int,
        output: asyncio.StreamReader,
        conn: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        go: int,
    ) -> None:
        self.pid = pid
        self.go: int | None = go
        """The go-ahead pipe: the engine waits on it until `begin`."""
        self.output = output
        self.conn = conn
        self.writer = writer
        """Kept: a writer that is collected closes the connection the exit code comes on."""
        self.note: str | None = None

    def lines(self) -> AsyncIterator[bytes]:
        return read_lines(self.output)

    async def wait(self) -> int:
        line = await self.conn.readline()
        self.writer.close()
        try:
            code = int(json.loads(line)["exit"])
        except (ValueError, KeyError, TypeError):
            self.note = "the engine host ended before the job did (it stops with the daemon)"
            return -signal.SIGTERM
        return code

    def begin(self) -> None:
        if self.go is not None:
            with contextlib.suppress(OSError):  # it was killed meanwhile: its end tells
                os.write(self.go, b"g")
            self.go = self._closed(self.go)

    def stop(self) -> None:
        super().stop()
        self.go = self._closed(self.go)

    def kill(self) -> None:
        super().kill()
        self.go = self._closed(self.go)

    @staticmethod
    def _closed(fd: int | None) -> None:
        if fd is not None:
            os.close(fd)

    def end_note(self) -> str | None:
        return self.note


class EngineHost:
    """One warm host per daemon, started on first use and again whenever it has left."""

    def __init__(self, python: str, socket_file: Path, idle_s: float) -> None:
        self.python = python
        self.socket_file = socket_file
        self.idle_s = idle_s
        self.proc: asyncio.subprocess.Process | None = None
        self.starting: asyncio.Lock = asyncio.Lock()
        self.broken = False
        """It failed to start once: this daemon's jobs start cold from then on."""

    async def spawn(
        self, command: list[str], cwd: Path, env: dict[str, str], limit: int
    ) -> WarmProcess | None:
        """Fork the job's engine from the host; None when the host cannot (start cold)."""
        if not await self._ready():
            return None
        read_end, write_end = os.pipe()
        go_read, go_write = os.pipe()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, str(self.socket_file))
            request = json.dumps({"argv": command, "cwd": str(cwd), "env": env}).encode()
            sock.setblocking(True)
            socket.send_fds(sock, [request], [write_end, go_read])
            sock.setblocking(False)
        except OSError as exc:
            for fd in (read_end, go_write):
                os.close(fd)
            sock.close()
            log.warning("the engine host cannot take a job (%s); it starts cold", exc)
            return None
        finally:
            os.close(write_end)
            os.close(go_read)
        conn, writer = await asyncio.open_unix_connection(sock=sock)
        output = asyncio.StreamReader(limit=limit)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(output), os.fdopen(read_end, "rb", 0)
        )
        try:
            pid = int(json.loads(await conn.readline())["pid"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("the engine host did not start the job (%s); it starts cold", exc)
            os.close(go_write)
            writer.close()
            return None
        return WarmProcess(pid, output, conn, writer, go_write)

    async def _ready(self) -> bool:
        """The host is running and has imported the libraries (started here if need be)."""
        async with self.starting:
            if self.proc is not None and self.proc.returncode is None:
                return True
            if self.broken:
                return False
            command = [self.python, "-m", "engine.host", str(self.socket_file), str(self.idle_s)]
            line = b""
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
                self.proc = proc
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.warning("the engine host did not start: %s", exc)
            if line.strip() != b"ready":
                log.warning("no engine host: this daemon's jobs start cold")
                self.broken = True
                await self.close()
                return False
            log.info("engine host %d is ready", proc.pid)
            return True

    async def close(self) -> None:
        """Stop the host (after the jobs: its children get SIGTERM when it dies)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
