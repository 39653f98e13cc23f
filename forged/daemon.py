"""`forge daemon`: the one asyncio process that owns the store, the queue and the socket.

Start-up order: take the instance lock, open the store, listen, tell systemd READY=1, then settle
the jobs a dead daemon left running (stopping any leftover engine, which can take seconds) and
only then start the runner. Clients are answered from the first moment.

Shut-down (SIGTERM/SIGINT/SIGHUP): stop accepting, let running jobs checkpoint within the grace
period, close clients, tell systemd STOPPING=1, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from agent.advisor import Advisor, AdvisorSettings
from forge_api.config import Config, ConfigError, load_config
from forge_api.paths import ForgePaths, resolve_paths
from forge_api.private_dirs import UnsafeFolder
from forge_api.schema import Job
from forged.api import build_registry
from forged.config_reload import ConfigKeeper
from forged.context import Services, Session
from forged.events import EventBus
from forged.hardware import Hardware
from forged.job_submit import JobSubmitter
from forged.mission_chain import MissionChain
from forged.registry import ModelRegistry
from forged.runner import JobRunner
from forged.sdnotify import notify
from forged.server import AlreadyRunning, Connection, RpcServer, acquire_lock
from forged.source_scanner import SourceScanner
from forged.store_base import StoreError
from forged.store_open import open_store

log = logging.getLogger("forged")


async def serve(paths: ForgePaths, config: Config, stop: asyncio.Event | None = None) -> int:
    """Run the daemon until SIGTERM, SIGINT or SIGHUP, or until `stop` is set where the caller
    gives one (the daemon embedded in another program's event loop, which keeps its signals:
    the tests' in-process daemons)."""
    os.umask(0o077)  # what the daemon and its engines write is this user's alone
    try:
        fixed = paths.ensure()
    except UnsafeFolder as exc:
        print(f"forged: {exc}", file=sys.stderr)
        return 1
    for note in fixed:
        log.warning("permissions: %s", note)
    try:
        lock = acquire_lock(paths.lock_file)
    except AlreadyRunning as exc:
        print(f"forged: {exc}", file=sys.stderr)
        return 1
    try:
        store, store_note = open_store(paths.db_file, paths.runs_dir)
    except StoreError as exc:
        print(f"forged: {exc}", file=sys.stderr)
        return 1
    bus = EventBus(store, config.events.subscriber_queue)
    hardware = await Hardware.detect()
    gpus = hardware.accelerator.count if hardware.accelerator.kind == "cuda" else 0
    runner = JobRunner(store, bus, paths, config.jobs, config.tracking, gpus)
    # Registered first: the agent's chain reads the eval results the registry records.
    models = ModelRegistry(store, paths, config, hardware.accelerator.kind)
    advisor = Advisor(AdvisorSettings(**config.advisor.model_dump()))
    submitter = JobSubmitter(store, runner, models, paths, hardware)
    scanner = SourceScanner(submitter, paths, config.agent, models, advisor)
    chain = MissionChain(submitter, config.agent, models)

    def job_finished(job: Job) -> None:
        """Everything that follows a job's end, in this order: the registry records what it
        made (models, eval scores), a calibration waiting on it wakes, and the mission chain
        takes its next step, reading what the registry recorded."""
        models.on_job_finished(job)
        scanner.job_finished(job)
        chain.on_job_finished(job)

    runner.on_job_finished = job_finished
    runner.on_artifact = models.record_artifact
    services = Services(
        paths=paths,
        config=config,
        store=store,
        bus=bus,
        runner=runner,
        submitter=submitter,
        hardware=hardware,
        scanner=scanner,
        chain=chain,
        models=models,
        permissions_fixed=fixed,
        store_note=store_note,
    )
    keeper = services.keeper = ConfigKeeper(services)
    registry = build_registry()

    async def on_line(line: bytes, conn: Connection) -> bytes | None:
        return await registry.handle_line(line, Session(services, conn))

    def on_close(conn: Connection) -> None:
        for sid in conn.subscriptions:
            bus.unsubscribe(sid)

    server = RpcServer(paths.socket_file, on_line, on_close)
    try:
        await server.start()
    except (AlreadyRunning, OSError) as exc:
        print(f"forged: {exc}", file=sys.stderr)
        return 1

    halt = stop if stop is not None else asyncio.Event()
    if stop is None:
        loop = asyncio.get_running_loop()
        # SIGHUP: the terminal of a `forge daemon` started by hand went away (an SSH log-out).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, halt.set)
    log.info("forged listening on %s (data in %s)", paths.socket_file, paths.data_dir)
    notify("READY=1")
    keeper.start()

    async def recover_then_run() -> None:
        await runner.recover()
        if not halt.is_set():
            runner.start()
            chain.resume_chains()
            scanner.start()

    starting = asyncio.create_task(recover_then_run(), name="recover")
    await halt.wait()
    if not starting.done():
        starting.cancel()

    log.info(
        "stopping: no new connections; running jobs get %.0f s to checkpoint",
        services.config.jobs.shutdown_grace_s,
    )
    notify("STOPPING=1")
    keeper.stop()
    scanner.stop()
    await server.stop_accepting()
    await runner.shutdown()
    await server.close_all()
    store.close()
    lock.close()
    log.info("stopped")
    return 0


def run_daemon(paths: ForgePaths, config: Config) -> int:
    logging.basicConfig(
        level=config.daemon.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(serve(paths, config))


def main(paths: ForgePaths | None = None) -> int:
    """Run the daemon in the foreground on this instance's config (what `forge daemon`, the
    service and `python -m forged` start); a config error is one line and exit 2."""
    paths = paths or resolve_paths()
    try:
        config = load_config(paths.config_file)
    except ConfigError as exc:
        print(f"forged: {exc}", file=sys.stderr)
        return 2
    return run_daemon(paths, config)
