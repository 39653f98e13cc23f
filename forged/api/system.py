"""system.*: what the daemon and the machine are doing, and whether all is well."""

from __future__ import annotations

import os
import shutil
import time

from forged import __version__
from forged.context import Session
from forged.hardware import memory_available, memory_total
from forged.rpc import Registry
from forged.schema import NoParams, QueueState, SystemHealth, SystemStatus

LOW_DISK_BYTES = 2 * 1024**3


def register(reg: Registry[Session]) -> None:
    @reg.method("system.status", NoParams)
    async def system_status(p: NoParams, s: Session) -> SystemStatus:
        """Accelerator, memory, the queue and the running jobs."""
        svc = s.services
        running, _ = svc.store.list_jobs(status=["running"], limit=100)
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
        )

    @reg.method("system.health", NoParams)
    async def system_health(p: NoParams, s: Session) -> SystemHealth:
        """Each part's state in a word or a sentence; ok is false when any part is not ok."""
        svc = s.services
        checks: dict[str, str] = {}
        try:
            svc.store.db.execute("SELECT 1").fetchone()
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"error: {exc}"
        checks["runner"] = "ok" if not svc.runner.stopping else "stopping"
        free = shutil.disk_usage(svc.paths.data_dir).free
        checks["disk"] = (
            "ok" if free >= LOW_DISK_BYTES else f"low: {free // 1024**2} MiB free in data dir"
        )
        fixed = svc.permissions_fixed
        checks["permissions"] = f"ok (fixed at start: {'; '.join(fixed)})" if fixed else "ok"
        return SystemHealth(
            ok=all(v == "ok" or v.startswith("ok (") for v in checks.values()), checks=checks
        )
