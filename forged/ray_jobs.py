"""Engine jobs on a Ray cluster, through Ray's Jobs API (`ray[default]`, the `ray` extra).

Each job is submitted as the same engine command a local job runs (`forged.engine_command`), with
the resources it needs (GPUs for the model-loading kinds, none for the rest) and a submission
id of our own (`forge-<job>-<attempt>`), kept in the job's `placement` so a restarted daemon
re-attaches to it instead of running it twice. Its output comes back through the job server's
log stream into the same recorder as a local child's, so the store, the CLI and the TUI see one
kind of job. Ray is imported only when a job goes to a cluster: never at daemon start.

The run dir, the dataset and the models are read and written by path: the cluster's workers
must see the daemon's data folder at the same path (a shared filesystem; see the guide).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shlex
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_api.engine_events import LogEvent, event_line

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

log = logging.getLogger(__name__)

POLL_S = 1.0
"""Seconds between looks at a job's status on the cluster."""

TAIL_GRACE_S = 2.0
"""How long the log stream may run on after the cluster says the job ended; the rest of the log
is then fetched whole."""


class RayUnavailable(RuntimeError):
    """The cluster cannot be reached, or Ray is not installed here."""


def submission_id(job_id: str, attempt: int) -> str:
    """Ours, not Ray's: the same start of the same job always has the same id, so a submit
    the daemon did not live to record is found again rather than made twice."""
    return f"forge-{job_id}-{attempt}"


class RayCluster:
    """The daemon's link to one cluster's job server, made at its first use."""

    def __init__(self, address: str, lost_after_s: float) -> None:
        self.address = address
        self.lost_after_s = lost_after_s
        self._client: JobSubmissionClient | None = None

    async def client(self) -> JobSubmissionClient:
        if self._client is None:
            self._client = await asyncio.to_thread(self._connect)
        return self._client

    def _connect(self) -> JobSubmissionClient:
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as exc:
            raise RayUnavailable(
                f"jobs.executor is 'ray' but Ray is not installed here ({exc}); "
                "install the extra: pip install 'ai-forge[ray]'"
            ) from exc
        try:
            return JobSubmissionClient(self.address or None)
        except Exception as exc:
            raise RayUnavailable(f"cannot reach the Ray cluster at {self.address!r}: {exc}") from (
                exc
            )

    async def submit(
        self,
        job_id: str,
        attempt: int,
        spec_file: Path,
        command: list[str],
        cpus: float,
        gpus: float,
        stop_grace_s: float,
        log_start: int,
    ) -> RayJob:
        """Start the job's engine on the cluster; one already submitted under the same id (the
        daemon died before it could record it) is attached to instead."""
        client = await self.client()
        ray_id = submission_id(job_id, attempt)
        run_dir = shlex.quote(str(spec_file.parent))
        missing = (
            f'echo "this Ray worker ($(hostname)) cannot see the job\'s run dir" {run_dir} '
            '"(forge\'s data folder must be on a path every worker shares)"; exit 2'
        )
        entrypoint = f"cd {run_dir} 2>/dev/null || {{ {missing}; }}; exec {shlex.join(command)}"
        env = {
            "PYTHONUNBUFFERED": "1",
            # Ray's supervisor waits this long between its SIGTERM and SIGKILL on a stop.
            "RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(stop_grace_s)),
        }
        try:
            await asyncio.to_thread(
                client.submit_job,
                entrypoint=entrypoint,
                submission_id=ray_id,
                runtime_env={"env_vars": env},
                metadata={"forge_job": job_id},
                entrypoint_num_cpus=cpus,
                entrypoint_num_gpus=gpus or None,
            )
        except Exception as exc:
            if "already exists" not in str(exc):
                raise RayUnavailable(
                    f"the Ray cluster at {self.address!r} refused the job: {exc}"
                ) from exc
            log.info("job %s: %s was already submitted; attaching to it", job_id, ray_id)
        return RayJob(self, client, ray_id, log_start, skip=0)

    async def attach(self, placement: dict[str, Any], skip: int) -> RayJob:
        """The job a previous daemon started, found by its submission id; the first `skip`
        lines of its output were recorded then and are not recorded twice."""
        client = await self.client()
        return RayJob(self, client, str(placement["ray_job_id"]), int(placement["log_start"]), skip)


class RayJob:
    """One engine job on the cluster: its log stream, its status and its stop."""

    def __init__(
        self,
        cluster: RayCluster,
        client: JobSubmissionClient,
        ray_id: str,
        log_start: int,
        skip: int,
    ) -> None:
        self.cluster = cluster
        self.client = client
        self.ray_id = ray_id
        self.log_start = log_start
        """Lines the job's events.jsonl held when this submission started."""
        self.skip = skip
        self.code: int | None = None
        self.note: str | None = None
        self.ended = asyncio.Event()
        self._stops: set[asyncio.Task[None]] = set()

    # ---- JobHandle ----------------------------------------------------------------------------

    async def lines(self) -> AsyncIterator[bytes]:
        """The log as it is written; once the job has ended, whatever the stream had not yet
        brought is read from the whole log, so no line is lost to the stream's own pace."""
        chunks: asyncio.Queue[str | None] = asyncio.Queue()
        tail = asyncio.create_task(self._tail(chunks), name=f"ray-tail-{self.ray_id}")
        watch = asyncio.create_task(self._watch(tail, chunks), name=f"ray-watch-{self.ray_id}")
        consumed = 0  # complete lines seen so far
        partial = ""
        try:
            while (chunk := await chunks.get()) is not None:
                *complete, partial = (partial + chunk).split("\n")
                for line in complete:
                    consumed += 1
                    if self._wanted(line):
                        yield self._as_recorded(line)
            await watch
            if self.note is None:
                rest = await self._whole_log_after(consumed)
                if rest is not None:
                    partial = ""
                    for line in rest:
                        if self._wanted(line):
                            yield self._as_recorded(line)
            if partial and self._wanted(partial):
                yield self._as_recorded(partial).rstrip(b"\n")
        finally:
            for task in (tail, watch):
                task.cancel()

    async def wait(self) -> int:
        await self.ended.wait()
        assert self.code is not None
        return self.code

    def stop(self) -> None:
        task = asyncio.create_task(self._stop())
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    def kill(self) -> None:
        # Ray's supervisor kills the job itself after its grace (RAY_JOB_STOP_WAIT_TIME_S);
        # asking again covers a first request that did not arrive.
        self.stop()

    def detach(self) -> bool:
        return True

    def record(self) -> dict[str, Any]:
        return {
            "pid": None,
            "placement": {
                "executor": "ray",
                "address": self.cluster.address,
                "ray_job_id": self.ray_id,
                "log_start": self.log_start,
            },
        }

    def end_note(self) -> str | None:
        return self.note

    def begin(self) -> None:
        pass  # submitted as it is: the cluster has started it

    def end(self) -> None:
        pass  # Ray ends a finished job's processes itself

    # ---- inside -------------------------------------------------------------------------------

    def _as_recorded(self, line: str) -> bytes:
        """The line as the recorder takes it. Ray's supervisor writes its own first line
        ("Running entrypoint for job …") through a buffer it flushes after starting the
        entrypoint, so in the log it can follow what the entrypoint said first (a failed `cd`'s
        reason). It is passed on as a log event: in the job's log, never taken as the engine's
        last words."""
        if line.startswith(f"Running entrypoint for job {self.ray_id}:"):
            return event_line(LogEvent(message=line)).encode() + b"\n"
        return line.encode() + b"\n"

    def _wanted(self, line: str) -> bool:
        """False for a line a previous daemon already recorded (counted as the recorder counts:
        blank lines are not recorded)."""
        if self.skip and line.strip():
            self.skip -= 1
            return False
        return True

    async def _tail(self, chunks: asyncio.Queue[str | None]) -> None:
        try:
            async for chunk in self.client.tail_job_logs(self.ray_id):
                await chunks.put(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The stream broke (the cluster went away, or its job server restarted): the status
            # watch decides whether the job is lost; its log is read whole at the end.
            log.info("the log stream of %s ended: %s", self.ray_id, exc)
        await chunks.put(None)

    async def _watch(self, tail: asyncio.Task[None], chunks: asyncio.Queue[str | None]) -> None:
        """Poll the job's status until it ends or the cluster has not answered for
        `lost_after_s`; then end the log stream if it is still open."""
        failing_since: float | None = None
        try:
            while True:
                try:
                    info = await asyncio.to_thread(self.client.get_job_info, self.ray_id)
                    failing_since = None
                except Exception as exc:
                    if "does not exist" in str(exc):
                        self._lost(
                            f"the Ray cluster at {self.cluster.address!r} has no job "
                            f"{self.ray_id} any more (was the cluster restarted?)"
                        )
                        break
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since >= self.cluster.lost_after_s:
                        self._lost(
                            f"lost the Ray cluster at {self.cluster.address!r} "
                            f"(no answer for {self.cluster.lost_after_s:.0f} s): {exc}"
                        )
                        break
                else:
                    if info.status.is_terminal():
                        self._ended_as(str(info.status), info.driver_exit_code, info.message)
                        break
                await asyncio.sleep(POLL_S)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(tail), TAIL_GRACE_S)
        finally:
            if not tail.done():
                tail.cancel()
                chunks.put_nowait(None)  # the reader waits for the end the cut stream never sent
            if self.code is None:
                self._lost(f"stopped watching {self.ray_id} on {self.cluster.address!r}")
            self.ended.set()

    def _ended_as(self, status: str, exit_code: int | None, message: str | None) -> None:
        if status == "SUCCEEDED":
            self.code = 0
        elif status == "STOPPED":
            self.code = -signal.SIGTERM
            self.note = "the job was stopped on the Ray cluster"
        else:
            self.code = exit_code if exit_code is not None else 1
            if exit_code is None:
                first = (message or "no reason given").strip().splitlines()[0]
                self.note = f"the Ray cluster failed the job: {first}"

    def _lost(self, why: str) -> None:
        self.code = -1
        self.note = why

    async def _whole_log_after(self, consumed: int) -> list[str] | None:
        try:
            text: str = await asyncio.to_thread(self.client.get_job_logs, self.ray_id)
        except Exception as exc:
            log.warning("could not read the whole log of %s: %s", self.ray_id, exc)
            return None
        return text.split("\n")[consumed:]

    async def _stop(self) -> None:
        try:
            await asyncio.to_thread(self.client.stop_job, self.ray_id)
        except Exception as exc:
            log.warning("could not stop %s on the Ray cluster: %s", self.ray_id, exc)
