"""A real daemon in a temporary FORGE_HOME, for the tests, in a process or in the test's own.

No mocks: both run the daemon's own `serve` on a real Unix socket, and tests talk to it with
the real client. A daemon process costs an interpreter and the daemon's imports per start; one
in the test process costs neither, so a test gets one unless it needs what only a process has.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from forge_api.paths import resolve_paths
from forge_client.client import Client


def short_tmp(prefix: str) -> Path:
    """A short folder under /tmp: Unix socket paths must stay under ~100 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


D = TypeVar("D", bound="Daemon", covariant=True)


class Factory(Protocol[D]):
    """What `make_daemon` and `make_process_daemon` give: a daemon (not yet started) in a fresh
    or given home, stopped and removed after the test."""

    def __call__(self, home: Path | None = None, config: str | None = None) -> D: ...


DaemonFactory = Factory["Daemon"]
ProcessDaemonFactory = Factory["ProcessDaemon"]


class Daemon:
    """One daemon for one FORGE_HOME, and what a test does with it through its socket. Where it
    runs is the subclass's: `InProcessDaemon` (a thread of the test process, the default) or
    `ProcessDaemon` (`python -m forged`, for what only a process has: a kill, a restart after
    a crash, its own environment, memory or mounts)."""

    def __init__(self, home: Path, config: str | None = None) -> None:
        self.home = home
        config = config or ""
        if "[agent]" not in config:
            # Test repositories live under /tmp, outside the default allowed root (~).
            config += '\n[agent]\nallowed_roots = ["/tmp"]\n'
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config)
        self.paths = resolve_paths({"FORGE_HOME": str(home)})
        self.log = home / "daemon.log"
        self.env = dict(os.environ, FORGE_HOME=str(home), PYTHONUNBUFFERED="1")
        """The environment of a process of this instance (a daemon, the CLI, `forge web`)."""
        self.env.pop("FORGE_SOCKET", None)
        self.env.pop("NOTIFY_SOCKET", None)

    @property
    def socket(self) -> Path:
        return self.paths.socket_file

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> Self:
        """Start it and wait until its socket answers. `extra_env` is for a process's own
        environment, which only `ProcessDaemon` has."""
        raise NotImplementedError

    def stop(self, timeout: float = 60.0) -> int:
        """Stop it as SIGTERM stops a service (jobs checkpoint); its exit code."""
        raise NotImplementedError

    def answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.socket))
            return True
        except OSError:
            return False

    def client(self, timeout: float | None = 60.0) -> Client:
        return Client(self.socket, timeout=timeout)

    def call(self, method: str, **params: Any) -> Any:
        with self.client() as c:
            return c.call(method, **params)

    def imported(self, path: Path) -> str:
        """The id of `path` imported as a dataset: jobs train only on files in the data dir."""
        return str(self.call("datasets.import", path=str(path))["id"])

    def wait_job(self, job_id: str, statuses: set[str], timeout: float = 120.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job: dict[str, Any] = self.call("jobs.get", id=job_id)
            return job if job["status"] in statuses else None

        result: dict[str, Any] = wait_for(reached, timeout, interval=0.1)
        return result

    def halt(self) -> None:
        """Stop whatever still runs at the end of a test."""

    def cleanup(self) -> None:
        self.halt()
        # Engine children are in their own process groups; make sure none outlives the test.
        for run in self.paths.runs_dir.glob("*") if self.paths.runs_dir.exists() else []:
            _kill_group_of(run)
        shutil.rmtree(self.home, ignore_errors=True)


class ProcessDaemon(Daemon):
    """A daemon process, started exactly as a user or systemd starts it; it can be killed."""

    def __init__(self, home: Path, config: str | None = None) -> None:
        super().__init__(home, config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.prefix: list[str] = []
        """A command the daemon runs under (e.g. unshare to give it a small disk)."""

    def spawn(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "forged"],
                env=self.env | (extra_env or {}),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return proc

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> Self:
        self.proc = self.spawn(extra_env)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{self.log.read_text()}")
            return self.answers()

        wait_for(up, timeout)
        return self

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def halt(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Asked to stop first, so that it exits as a service does (and its line coverage
            # is saved); killed if it does not within a few seconds.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def engine_processes(
    run_dir: Path | str | None = None, *, under: Path | None = None
) -> dict[int, str]:
    """Live engine processes: pid → the spec they run; only those of `run_dir`, or of any run
    dir `under` a daemon's runs folder, when given (tests run side by side: never touch
    another's). An engine, cold (`… -m engine RUN_DIR/spec.json`) or forked by the warm engine
    host, runs in its run dir and leads its own process group; that is how it is found."""
    found: dict[int, str] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"engine" not in (proc / "cmdline").read_bytes():
                continue
            folder = Path(os.readlink(proc / "cwd"))
            leader = os.getpgid(int(proc.name)) == int(proc.name)
        except OSError:
            continue
        spec = folder / "spec.json"
        if not leader or not spec.is_file():
            continue
        if run_dir is not None and folder != Path(run_dir):
            continue
        if under is not None and not folder.is_relative_to(under):
            continue
        found[int(proc.name)] = str(spec)
    return found


def _kill_group_of(run_dir: Path) -> None:
    for pid in engine_processes(run_dir):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
