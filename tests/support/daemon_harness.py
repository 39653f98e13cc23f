"""A real `forge daemon` process in a temporary FORGE_HOME, for the tests.

No mocks: the daemon is started exactly as a user or systemd starts it, and tests talk to it
over its real Unix socket with the real client.
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
from typing import Any, Protocol

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


class DaemonFactory(Protocol):
    """The `make_daemon` fixture: a daemon (not yet started) in a fresh or given home."""

    def __call__(self, home: Path | None = None, config: str | None = None) -> Daemon: ...


class Daemon:
    """One daemon process for one FORGE_HOME; it can be stopped, killed and started again."""

    def __init__(self, home: Path, config: str | None = None) -> None:
        self.home = home
        config = config or ""
        if "[agent]" not in config:
            # Test repositories live under /tmp, outside the default allowed root (~).
            config += '\n[agent]\nallowed_roots = ["/tmp"]\n'
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config)
        self.env = dict(os.environ, FORGE_HOME=str(home), PYTHONUNBUFFERED="1")
        self.env.pop("FORGE_SOCKET", None)
        self.env.pop("NOTIFY_SOCKET", None)
        self.paths = resolve_paths({"FORGE_HOME": str(home)})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "daemon.log"
        self.prefix: list[str] = []
        """A command the daemon runs under (e.g. unshare to give it a small disk)."""

    @property
    def socket(self) -> Path:
        return self.paths.socket_file

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

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> Daemon:
        self.proc = self.spawn(extra_env)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{self.log.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.socket))
                return True
            except OSError:
                return False

        wait_for(up, timeout)
        return self

    def client(self, timeout: float | None = 60.0) -> Client:
        return Client(self.socket, timeout=timeout)

    def call(self, method: str, **params: Any) -> Any:
        with self.client() as c:
            return c.call(method, **params)

    def imported(self, path: Path) -> str:
        """The id of `path` imported as a dataset: jobs train only on files in the data dir."""
        return str(self.call("datasets.import", path=str(path))["id"])

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def wait_job(self, job_id: str, statuses: set[str], timeout: float = 120.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job: dict[str, Any] = self.call("jobs.get", id=job_id)
            return job if job["status"] in statuses else None

        result: dict[str, Any] = wait_for(reached, timeout, interval=0.1)
        return result

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Asked to stop first, so that it exits as a service does (and its line coverage
            # is saved); killed if it does not within a few seconds.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # Engine children are in their own process groups; make sure none outlives the test.
        for run in self.paths.runs_dir.glob("*") if self.paths.runs_dir.exists() else []:
            _kill_group_of(run)
        shutil.rmtree(self.home, ignore_errors=True)


def engine_processes(
    run_dir: Path | str | None = None, *, under: Path | None = None
) -> dict[int, str]:
    """Live engine processes (`… -m engine RUN_DIR/spec.json`): pid → the spec they run; only
    those of `run_dir`, or of any run dir `under` a daemon's runs folder, when given (tests run
    side by side: never touch another's). Each is its own process group's leader."""
    found: dict[int, str] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"engine" in argv and len(argv) > 3 and argv[-2].endswith(b"spec.json"):
            spec = argv[-2].decode()
            if run_dir is not None and Path(spec).parent != Path(run_dir):
                continue
            if under is not None and not Path(spec).is_relative_to(under):
                continue
            found[int(proc.name)] = spec
    return found


def _kill_group_of(run_dir: Path) -> None:
    for pid in engine_processes(run_dir):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
