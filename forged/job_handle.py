"""What the runner holds of one started job, wherever it runs: its output as lines, its end, and
the two ways to stop it. `LocalProcess` is a child process group on this machine, a
`forged.engine_host.WarmProcess` one forked by the warm engine host; a job on a Ray cluster is
`forged.ray_jobs.RayJob`. The runner, the output recorder and the store see no
difference between them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any, Protocol

from forged.process_group import group_alive, signal_group

log = logging.getLogger(__name__)
END_GRACE_S = 5.0
EXIT_POLL_S = 0.2


class JobHandle(Protocol):
    """One started engine process, here or on a cluster."""

    def lines(self) -> AsyncIterator[bytes]:
        """The engine's output, line by line, to its end (stdout and stderr together)."""
        ...

    async def wait(self) -> int:
        """The engine's exit code, once it has ended (negative: killed by that signal)."""
        ...

    def begin(self) -> None:
        """The job is recorded as running: it may start its work. A warm engine waits for this,
        so one cancelled while it was being started never runs; others have already begun."""
        ...

    def stop(self) -> None:
        """Ask it to stop: SIGTERM, so it checkpoints first."""
        ...

    def kill(self) -> None:
        """Stop it now: what `stop` asked did not happen within the grace period."""
        ...

    def detach(self) -> bool:
        """The daemon stops: True when the job may run on without it (a cluster job, re-attached
        at the next start), False when it must be stopped with the daemon (a local child)."""
        ...

    def record(self) -> dict[str, Any]:
        """The store's columns that find this job again after a restart."""
        ...

    def end_note(self) -> str | None:
        """Why it ended, when that is not the engine's own exit (a lost cluster), else None."""
        ...

    def end(self) -> None:
        """The engine has exited: end what it left running (its children), whatever its status."""
        ...


class ProcessGroup:
    """A job's engine on this machine, however it was started: its own process group, stopped
    by signals to the group, never left running when the daemon stops."""

    pid: int

    def begin(self) -> None:
        pass

    def stop(self) -> None:
        signal_group(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        signal_group(self.pid, signal.SIGKILL)

    def detach(self) -> bool:
        return False

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "placement": None}

    def end_note(self) -> str | None:
        return None

    def end(self) -> None:
        """SIGTERM to what is left of the group (a worker the engine started and did not wait
        for), then SIGKILL to what is still there a few seconds later."""
        if not group_alive(self.pid):
            return
        log.warning("job process group %d outlived its engine: stopping it", self.pid)
        signal_group(self.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(END_GRACE_S, self._kill_left)

    def _kill_left(self) -> None:
        if group_alive(self.pid):
            signal_group(self.pid, signal.SIGKILL)


class LocalProcess(ProcessGroup):
    """A job's engine as a child process group of the daemon."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid

    def lines(self) -> AsyncIterator[bytes]:
        assert self.proc.stdout is not None
        return read_lines(self.proc.stdout)

    async def wait(self) -> int:
        """The exit code as soon as the process exits. (asyncio's own `wait` also waits for its
        output to close, which a worker it left behind holds open.)"""
        closed = asyncio.ensure_future(self.proc.wait())
        try:
            while self.proc.returncode is None and not closed.done():
                await asyncio.wait({closed}, timeout=EXIT_POLL_S)
        finally:
            if not closed.done():
                closed.cancel()
        code = self.proc.returncode
        assert code is not None
        return code


async def read_lines(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """A process's output, line by line to its end; a line longer than the stream's read limit
    comes in pieces."""
    while True:
        try:
            yield await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                yield exc.partial
            return
        except asyncio.LimitOverrunError as exc:
            yield await stream.readexactly(exc.consumed)
