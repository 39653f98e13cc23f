"""The job queue and runner: each job's engine runs from `<run-dir>/spec.json`, as a child
process group of the daemon (`jobs.executor = "local"`) or as a job on a Ray cluster ("ray").

Where a job runs is its `JobHandle` (`forged.job_handle`: a local process group, or
`forged.ray_jobs.RayJob`); its output is recorded by `forged.job_output` either way. At most
`jobs.max_parallel` accelerator-bound jobs run at once; the rest wait in the persistent queue
(the jobs table). This module is the queue and the supervision: starting, cancelling,
recovering after a restart (re-attaching to cluster jobs), and recording each job's end, even
while the store cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import checkpoint
from forge_api.config import JobsConfig, TrackingConfig
from forge_api.engine_events import (
    ArtifactEvent,
)
from forge_api.jobs import holds_accelerator
from forge_api.paths import ForgePaths
from forge_api.schema import Job
from forged.engine_command import TooFewDevices, engine_command, processes
from forged.engine_host import EngineHost
from forged.events import EventBus
from forged.job_handle import JobHandle
from forged.job_launch import spawn_local, submit_to_ray, write_spec
from forged.job_output import LOSSLESS, OutputRecorder, Running, failure_reason, recorded_lines
from forged.process_group import reap_orphan
from forged.ray_jobs import RayCluster, RayUnavailable
from forged.store import Store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Starts a job without a checkpoint gets when daemon restarts interrupt it; a job's own
failures are never retried, and one with a checkpoint always resumes from it."""

STORE_RETRY_S = (1.0, 30.0)
"""First and longest wait between tries to record a job's end while the store cannot be written."""


class JobRunner:
    """Starts queued jobs, supervises their processes and records what they report."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        paths: ForgePaths,
        config: JobsConfig,
        tracking: TrackingConfig | None = None,
        gpus: int = 0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.paths = paths
        self.config = config
        self.tracking = tracking or TrackingConfig()
        """Where train and eval metrics also go (`[tracking]`), read as each job starts."""
        self.python = config.python or sys.executable
        self.gpus = gpus
        """CUDA GPUs on this machine (a local train job's `devices` may use up to this many)."""
        self.running: dict[str, Running] = {}
        self.on_artifact: Callable[[str, ArtifactEvent], None] | None = None
        """Told of everything a job made (the registry records the models among them)."""
        self.on_job_finished: Callable[[Job], None] | None = None
        """Told of every job that reaches a final status (the daemon's one handler: the
        registry, then the mission chain)."""
        self.output = OutputRecorder(store, self._artifact, self._tell)
        self.unrecorded: dict[str, str] = {}
        """Jobs whose process ended but whose end the store could not take yet: id → status."""
        self.clusters: dict[str, RayCluster] = {}
        """The Ray clusters jobs were sent to, by address (`jobs.executor = "ray"`)."""
        self.stopping = False
        self._wake = asyncio.Event()
        self.loop_task: asyncio.Task[None] | None = None
        idle_s = config.warm_engine_idle_s
        self.host = (
            EngineHost(self.python, paths.runtime_dir / "engine-host.sock", idle_s)
            if idle_s
            else None
        )
        """The warm parent local engines are forked from (`jobs.warm_engine_idle_s`)."""

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.loop_task = asyncio.create_task(self._loop(), name="job-runner")
        self.wake()

    def stalled(self) -> dict[str, float]:
        """Running jobs silent for longer than jobs.stall_after_s: seconds since each spoke."""
        now = time.monotonic()
        silent = {job_id: now - r.last_seen for job_id, r in self.running.items()}
        return {j: round(s) for j, s in silent.items() if s > self.config.stall_after_s}

    def with_stall(self, jobs: list[Job]) -> list[Job]:
        """The jobs, each running one that has gone silent saying for how long."""
        stalled = self.stalled()
        return [
            j.model_copy(update={"stalled_s": stalled[j.id]}) if j.id in stalled else j
            for j in jobs
        ]

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self.stopping:
            await self._wake.wait()
            self._wake.clear()
            if self.stopping:
                break
            try:
                await self._start_ready_jobs()
            except Exception:
                log.exception("the job runner could not look at its queue; trying again soon")
                self._wake_later()
            if self.store.write_error is not None:
                self._wake_later()  # jobs wait for the store: look again when it may have room

    def _wake_later(self) -> None:
        asyncio.get_running_loop().call_later(STORE_RETRY_S[0] * 5, self.wake)

    async def _start_ready_jobs(self) -> None:
        busy = sum(1 for r in self.running.values() if holds_accelerator(r.job.kind, r.job.params))
        now = time.time()
        for job in self.store.queued_jobs():
            if job.id in self.running:
                continue
            if job.not_before and job.not_before > now:
                # Held (quiet hours): look again when it may start.
                asyncio.get_running_loop().call_later(job.not_before - now + 0.05, self.wake)
                continue
            if holds_accelerator(job.kind, job.params):
                if busy >= self.config.max_parallel:
                    continue
                busy += 1
            try:
                await self._launch(job)
                if job.id not in self.running and holds_accelerator(job.kind, job.params):
                    busy -= 1  # it failed to start: its place goes to the next one
            except sqlite3.Error as exc:
                # The store cannot be written (a full disk): the job stays queued for the next
                # look, and the ones behind it are not held up by it.
                log.warning("job %s could not start: the store failed: %s", job.id, exc)
            except Exception as exc:
                log.exception("job %s could not start", job.id)
                with contextlib.suppress(sqlite3.Error):
                    self._finish(job.id, "failed", error=f"the job could not start: {exc}")
                self.wake()

    async def shutdown(self) -> None:
        """Daemon stop: SIGTERM every job (they checkpoint), wait the grace period, then kill.

        Their rows stay `running`; the next start resumes or fails them, as after a crash.
        """
        self.stopping = True
        self._wake.set()
        for r in list(self.running.values()):
            if r.handle.detach():
                # A cluster job runs on without the daemon; the next start re-attaches to it.
                if r.task is not None:
                    r.task.cancel()
                self.running.pop(r.job.id, None)
            else:
                r.handle.stop()
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_s)
            for r in self.running.values():
                r.handle.kill()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self.host is not None:
            await self.host.close()
        if self.loop_task is not None:
            self.loop_task.cancel()

    # ---- recovery ------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Jobs a dead daemon left `running`: stop any leftover process, then run them again.

        A job with a checkpoint goes back to the queue and continues from it; one without starts
        over (every kind but `infer` may: they write their results atomically), up to
        MAX_ATTEMPTS starts, so a job that brings the machine down early is not retried for ever. An
        interrupted playground answer is marked failed: nobody is waiting for it any more.
        Either way no job runs twice at once.
        """
        jobs, _ = self.store.list_jobs(status=["running"], limit=10_000)
        for job in jobs:
            if job.placement is not None:
                await self._reattach(job)
                continue
            pid = self.store.job_pid(job.id)
            if pid is not None:
                await reap_orphan(pid, Path(job.run_dir))
            job = self._adopt_checkpoint_on_disk(job)
            resumable = job.checkpoint is not None  # only resumable kinds write checkpoints
            if self.store.cancel_requested(job.id):
                self._finish(job.id, "cancelled", error="cancelled (the daemon restarted)")
            elif job.kind == "infer" or (not resumable and job.attempt >= MAX_ATTEMPTS):
                why = (
                    "an answer is not replayed once its asker is gone"
                    if job.kind == "infer"
                    else f"it has been started {job.attempt} times without reaching a checkpoint"
                )
                self._finish(
                    job.id,
                    "failed",
                    error=f"interrupted: the daemon stopped while the job was running; {why}",
                )
            else:
                start = (
                    f"resuming from checkpoint {job.checkpoint}"
                    if resumable
                    else "starting it again (it had no checkpoint) "
                    f"(start {job.attempt + 1} of {MAX_ATTEMPTS})"
                )
                reason = f"the daemon restarted; {start}"
                self.store.update_job(
                    job.id,
                    {"status": "queued", "pid": None},
                    ("job.status", {"status": "queued", "reason": reason}),
                )
                self.output.log(job.id, reason)
        self.wake()

    async def _reattach(self, job: Job) -> None:
        """A job a previous daemon left on a Ray cluster: follow it again where it is (running
        or already ended), never start it a second time. Its output is recorded from where the
        previous daemon stopped."""
        placement = job.placement or {}
        cluster = self._cluster(str(placement.get("address", "")))
        skip = recorded_lines(Path(job.run_dir)) - int(placement.get("log_start", 0))
        try:
            handle = await cluster.attach(placement, max(skip, 0))
        except (RayUnavailable, KeyError, ValueError) as exc:
            self._finish(
                job.id,
                "failed",
                error=f"the daemon restarted and could not re-attach to its Ray job: {exc}",
            )
            return
        self.output.log(job.id, f"the daemon restarted; re-attached to Ray job {handle.ray_id}")
        self._watch(job, handle)
        if self.store.cancel_requested(job.id):
            self.running[job.id].cancel_requested = True
            handle.stop()

    def _cluster(self, address: str) -> RayCluster:
        cluster = self.clusters.get(address)
        if cluster is None:
            cluster = RayCluster(address, self.config.ray_lost_after_s)
            self.clusters[address] = cluster
        cluster.lost_after_s = self.config.ray_lost_after_s  # reloadable
        return cluster

    def _adopt_checkpoint_on_disk(self, job: Job) -> Job:
        """A checkpoint newer than the store's: the engine wrote it as the daemon died (it saves
        one when it is stopped), and nobody was left to hear of it."""
        on_disk = checkpoint.newest(Path(job.run_dir))
        if on_disk is None or (job.checkpoint and on_disk.name <= Path(job.checkpoint).name):
            return job
        log.info("job %s: taking the newer checkpoint %s found on disk", job.id, on_disk)
        job = self.store.update_job(job.id, {"checkpoint": str(on_disk)})
        return job

    # ---- submit and cancel --------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        name: str,
        params: dict[str, Any],
        mission_id: str | None = None,
        not_before: float | None = None,
    ) -> Job:
        job = self.store.create_job(kind, name, params, mission_id, not_before)
        self.wake()
        return job

    def resume(self, job_id: str) -> Job:
        """Back to the queue; the engine continues from the job's checkpoint."""
        job = self.store.update_job(
            job_id,
            {"status": "queued", "cancel_requested": 0, "finished_at": None, "error": None},
            ("job.status", {"status": "queued", "reason": "resumed on request"}),
        )
        self.wake()
        return job

    async def cancel(self, job_id: str) -> Job:
        """Queued: cancelled now. Running: SIGTERM to its group, SIGKILL after the grace period.

        The signal goes first and the store's note of the request after: a cancel works even
        while the store cannot be written, and the job's end is recorded once it can be."""
        job = self.store.get_job(job_id)
        if job.status == "queued":
            return self._finish(job_id, "cancelled", error="cancelled before it started")
        running = self.running.get(job_id)
        if running is None:
            if job_id in self.unrecorded:
                self.unrecorded[job_id] = "cancelled"
            return job
        running.cancel_requested = True
        running.handle.stop()
        loop = asyncio.get_running_loop()
        running.kill_timer = loop.call_later(self.config.cancel_grace_s, running.handle.kill)
        try:
            job = self.store.update_job(
                job_id,
                {"cancel_requested": 1},
                ("job.log", {"line": "cancel requested", "level": "warning"}),
            )
        except sqlite3.Error as exc:
            log.warning("job %s: cancel sent; the store could not note it: %s", job_id, exc)
        return job

    # ---- one job ------------------------------------------------------------------------------

    async def _launch(self, job: Job) -> None:
        try:
            spec_file = write_spec(job, self.paths, self.config, self.tracking)
        except OSError as exc:
            self._finish(job.id, "failed", error=f"could not write the job's run dir: {exc}")
            return
        except ValueError as exc:  # params the spec cannot carry (an old store's bad job)
            self._finish(job.id, "failed", error=f"the job's params cannot be used: {exc}")
            return
        on_ray = self.config.executor == "ray"
        try:
            n = processes(job.kind, job.params, None if on_ray else self.gpus)
        except TooFewDevices as exc:
            self._finish(job.id, "failed", error=str(exc))
            return
        command = engine_command(self.python, spec_file, n)
        try:
            if on_ray:
                cluster = self._cluster(self.config.ray_address)
                handle: JobHandle = await submit_to_ray(
                    cluster, self.config, job, spec_file, command, n
                )
            else:
                handle = await spawn_local(self.host, spec_file, command, job.params)
        except OSError as exc:
            self._finish(job.id, "failed", error=f"could not start the engine: {exc}")
            return
        except RayUnavailable as exc:
            self._finish(job.id, "failed", error=str(exc))
            return
        try:
            # Cancelled while the process was being spawned: it must not run after all.
            cancelled = self.store.get_job(job.id).status != "queued"
            if not cancelled:
                self._mark_running(job, handle)
                handle.begin()
        except BaseException:
            cancelled = True
            raise  # not recorded as running (the store failed): it must not run unseen
        finally:
            if cancelled:
                handle.kill()
                if not handle.detach():
                    await handle.wait()

    def _mark_running(self, job: Job, handle: JobHandle) -> None:
        where = handle.record()
        job = self.store.update_job(
            job.id,
            {
                "status": "running",
                **where,
                "started_at": job.started_at or time.time(),
                "attempt": job.attempt + 1,
                "exit_code": None,
                "error": None,
            },
            ("job.status", {"status": "running", **where, "attempt": job.attempt + 1}),
        )
        self._watch(job, handle)

    def _watch(self, job: Job, handle: JobHandle) -> None:
        running = Running(job=job, handle=handle)
        self.running[job.id] = running
        running.task = asyncio.create_task(self._supervise(running), name=f"job-{job.id}")

    async def _supervise(self, r: Running) -> None:
        job_id = r.job.id
        # Read while it runs, and end what it left behind as soon as it exits: a worker holding
        # its output open would otherwise keep the job from ever ending.
        drain = asyncio.create_task(self.output.drain(r), name=f"job-{job_id}-output")
        code = await r.handle.wait()
        r.handle.end()
        await drain
        if r.kill_timer is not None:
            r.kill_timer.cancel()
        self.running.pop(job_id, None)
        if self.stopping and not r.done and not r.cancel_requested:
            log.info(
                "job %s stopped with the daemon; it is resumed or failed at next start", job_id
            )
            return
        await self._settle(r, code)
        self.wake()

    async def _settle(self, r: Running, code: int) -> None:
        """Record how a job whose process has exited ended; while the store cannot be written
        (a full disk), try again with growing pauses: its end is never left unrecorded while
        the daemon runs, and a restart's recovery covers the rest."""
        job_id = r.job.id
        if r.done_recorded:
            # Recorded as completed when it said `done`; only note an unclean exit after that.
            with contextlib.suppress(sqlite3.Error):
                self.store.update_job(job_id, {"exit_code": code})
                if code != 0:
                    self.output.log(job_id, f"the engine exited with code {code} after finishing")
            return
        if r.cancel_requested:
            end = ("cancelled", "cancelled by request")
        elif r.done and not set(r.lost) - LOSSLESS - {"done"}:
            end = ("completed", "")
        elif r.lost:
            lost = ", ".join(f"{n} {kind}" for kind, n in sorted(r.lost.items()))
            end = (
                "failed",
                f"the store could not record what the job reported ({lost} events lost: "
                f"{r.store_error}); run it again once the disk has room",
            )
        else:
            end = ("failed", failure_reason(code, r))
        self.unrecorded[job_id] = end[0]
        pause = STORE_RETRY_S[0]
        while not self.stopping:
            status = self.unrecorded[job_id]
            error = end[1] if status == end[0] else "cancelled by request"
            try:
                self._finish(job_id, status, exit_code=code, error=error or None)
            except sqlite3.Error as exc:
                log.warning(
                    "job %s ended %s; the store cannot record it yet: %s", job_id, status, exc
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, STORE_RETRY_S[1])
                continue
            break
        self.unrecorded.pop(job_id, None)

    def _finish(
        self, job_id: str, status: str, *, exit_code: int | None = None, error: str | None = None
    ) -> Job:
        fields: dict[str, Any] = {"status": status, "finished_at": time.time(), "pid": None}
        if exit_code is not None:
            fields["exit_code"] = exit_code
        if error is not None:
            fields["error"] = error
        data: dict[str, Any] = {"status": status}
        if error:
            data["error"] = error
        if exit_code is not None:
            data["exit_code"] = exit_code
        job = self.store.update_job(job_id, fields, ("job.status", data))
        self._tell(job)
        return job

    def _artifact(self, job_id: str, artifact: ArtifactEvent) -> None:
        if self.on_artifact is not None:
            self.on_artifact(job_id, artifact)

    def _tell(self, job: Job) -> None:
        if self.on_job_finished is None:
            return
        try:
            self.on_job_finished(job)
        except Exception:
            log.exception("handling the end of %s failed", job.id)
