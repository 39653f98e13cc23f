"""A job's process group: every job runs in its own, so a signal reaches all it started
(tokenizer workers, data loaders), and what a dead daemon left running can be found and
stopped before the job runs again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to a job's process group; one already gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there (and ours to signal)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


async def reap_orphan(pgid: int, run_dir: Path) -> None:
    """Kill what is left of a job's process group from a previous daemon, and wait for it."""
    if not group_alive(pgid):
        return
    if Path(f"/proc/{pgid}").exists() and not runs_in(pgid, run_dir):
        return  # the pid was reused by something that is not our job
    log.warning("stopping the leftover process group %d of %s", pgid, run_dir.name)
    signal_group(pgid, signal.SIGTERM)
    for _ in range(50):
        if not group_alive(pgid):
            return
        await asyncio.sleep(0.1)
    signal_group(pgid, signal.SIGKILL)
    for _ in range(50):
        if not group_alive(pgid):
            return
        await asyncio.sleep(0.1)


def runs_in(pid: int, run_dir: Path) -> bool:
    """Whether process `pid` is a job of `run_dir` (Linux's /proc): every engine, cold or forked
    by the warm host, runs in its run dir."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == run_dir
    except OSError:
        return False
