"""system.*: what the daemon and the machine are doing, and whether all is well."""

from __future__ import annotations

import os
import shutil
import time

from forge_api import methods as M
from forge_api.config import ConfigError
from forge_api.protocol import INVALID_STATE
from forge_api.schema import ConfigReloaded, NoParams, QueueState, SystemHealth, SystemStatus
from forged import __version__
from forged.context import Session
from forged.hardware import memory_available, memory_total
from forged.rpc import Registry, RpcError
from forged.runner import JobRunner
from forged.store import Store

LOW_DISK_BYTES = 2 * 1024**3


def register(reg: Registry[Session]) -> None:
    register_reload(reg)

    @reg.method(M.SYSTEM_STATUS)
    async def system_status(p: NoParams, s: Session) -> SystemStatus:
        """Accelerator, memory, the queue and the running jobs."""
        svc = s.services
        running, _ = svc.store.list_jobs(status=["running"], limit=100)
        running = svc.runner.with_stall(running)
        return SystemStatus(
            version=__version__,
            pid=os.getpid(),
            uptime_s=round(time.time() - svc.started_at, 3),
            socket=str(svc.paths.socket_file),
            data_dir=str(svc.paths.data_dir),
            accelerator=svc.hardware.accelerator,
            memory_total_bytes=memory_total(),
            memory_available_bytes=memory_available(),
            queue=QueueState(
                queued=svc.store.count_jobs("queued"),
                running=len(running),
                max_parallel=svc.config.jobs.max_parallel,
            ),
            running=running,
            subscribers=len(svc.bus.subscriptions),
            last_seq=svc.store.last_seq(),
            mcp_allow_approve=svc.config.mcp.allow_approve,
        )

    @reg.method(M.SYSTEM_HEALTH)
    async def system_health(p: NoParams, s: Session) -> SystemHealth:
        """Each part's state in a word or a sentence; ok is false when any part is not ok."""
        svc = s.services
        checks: dict[str, str] = {}
        checks["store"] = _store_check(svc.store, svc.store_note)
        checks["runner"] = _runner_check(svc.runner)
        free = shutil.disk_usage(svc.paths.data_dir).free
        checks["disk"] = (
            "ok" if free >= LOW_DISK_BYTES else f"low: {free // 1024**2} MiB free in data dir"
        )
        keeper = svc.keeper
        checks["config"] = (
            f"error: {keeper.error}; the daemon runs on the last good config"
            if keeper is not None and keeper.error
            else "ok"
        )
        fixed = svc.permissions_fixed
        checks["permissions"] = f"ok (fixed at start: {'; '.join(fixed)})" if fixed else "ok"
        return SystemHealth(
            ok=all(v == "ok" or v.startswith("ok (") for v in checks.values()), checks=checks
        )


def register_reload(reg: Registry[Session]) -> None:
    @reg.method(M.SYSTEM_RELOAD_CONFIG)
    async def system_reload_config(p: NoParams, s: Session) -> ConfigReloaded:
        """Read config.toml again and apply it; says what changed and what needs a restart.
        A file that does not validate changes nothing (file:line and key in the error)."""
        keeper = s.services.keeper
        assert keeper is not None
        try:
            changed, later = keeper.reload()
        except ConfigError as exc:
            raise RpcError(
                INVALID_STATE, f"{exc}; nothing changed", {"file": str(keeper.path)}
            ) from None
        return ConfigReloaded(changed=changed, restart_needed=later)


def _store_check(store: Store, note: str | None) -> str:
    """Reads, whether writes are failing now (a full disk fails writes, not reads), and
    whether a corrupt store was set aside at start."""
    try:
        store.db.execute("SELECT 1 FROM jobs LIMIT 1").fetchone()
    except Exception as exc:
        return f"error: cannot read: {exc}"
    if store.write_error is not None:
        since = time.strftime("%H:%M:%S", time.localtime(store.write_failed_at))
        return f"error: writes fail since {since}: {store.write_error} (free some disk space)"
    return f"recovered at start: {note}" if note else "ok"


def _runner_check(runner: JobRunner) -> str:
    if runner.stopping:
        return "stopping"
    loop = runner.loop_task
    if loop is not None and loop.done():
        return "error: the job runner stopped; restart the daemon"
    if runner.unrecorded:
        waiting = ", ".join(f"{job} {status}" for job, status in runner.unrecorded.items())
        return f"error: jobs ended but the store cannot record it yet: {waiting}"
    if stalled := runner.stalled():
        silent = ", ".join(f"{job} silent for {s:.0f} s" for job, s in stalled.items())
        return f"stalled: {silent} (stopped or hung? `forge jobs cancel` frees its slot)"
    return "ok"
