"""`python -m engine.host <socket>`: a warm parent for engine jobs, so a job does not pay for
importing torch, transformers and peft (5–6 s on two cores, more on a busy machine) each time.

The daemon starts one host when its first local job starts. The host imports the libraries
once, says `ready` on stdout and waits on a Unix socket. For each job the daemon sends one
request (the engine's argv, working folder and environment) with the write end of the job's
output pipe; the host forks, and the child becomes what `python -m engine <spec>` would be: its
own session and process group, output on the pipe, the job's folder and environment, its process
title the cold command's. The host answers the child's pid, then its exit code (negative: the
signal that ended it), on the same connection.

The host never runs a job itself and touches no accelerator (CUDA starts in the child, so fork
is safe). It dies with the daemon (Linux's parent-death signal), its children then with it,
as a cold engine dies with the daemon; and it leaves after `idle_s` seconds without a job.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from engine import control

PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.llama.modeling_llama",
    "peft",
)
"""What every model-loading job imports anyway, loaded once here; nothing that starts a thread
pool or an accelerator."""

EXIT_NOT_STARTED = 143
"""A job cancelled before its go-ahead ends as a stopped one does (`engine.__main__`)."""

MAX_REQUEST = 1024 * 1024
"""The largest request accepted (argv, folder and environment of one job)."""


@dataclass
class Job:
    """One request, as the forked child runs it."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    out_fd: int
    go_fd: int
    """The daemon writes one byte here once the job is recorded as running; a job cancelled
    before that (the pipe closes with nothing in it) never runs."""


def preload() -> None:
    """Import the heavy libraries with the settings every engine process sets first (engine's
    `__main__` sets them as it is imported, before anything else is)."""
    importlib.import_module("engine.__main__")
    # Jobs that reach the hub (`forge models pull`) never come here: the daemon starts them cold.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from forge_api.jobs import KINDS

    for name in [*PRELOAD, "engine.events", *(kind.runs for kind in KINDS.values())]:
        with contextlib.suppress(ImportError):  # a job that needs it says so itself
            importlib.import_module(name)


def read_request(conn: socket.socket) -> Job:
    """One request: a JSON line, and two pipe ends passed along with it: the job's output
    (written) and its go-ahead (read)."""
    data, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 2)
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        raise ValueError("a request comes with two file descriptors: the output, the go-ahead")
    try:
        body = json.loads(data)
        job = Job(
            argv=[str(a) for a in body["argv"]],
            cwd=str(body["cwd"]),
            env={str(k): str(v) for k, v in body["env"].items()},
            out_fd=fds[0],
            go_fd=fds[1],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        os.close(fds[0])
        os.close(fds[1])
        raise ValueError(f"not a job request: {exc}") from exc
    return job


def become_job(job: Job, keep_out: list[int]) -> int:
    """In the forked child: turn into the job's engine process and run it; its exit code."""
    for fd in keep_out:
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(job.out_fd, 1)
    os.dup2(job.out_fd, 2)
    os.close(job.out_fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = sys.stdout
    try:
        import setproctitle

        setproctitle.setproctitle(" ".join(job.argv))  # `ps` shows the job, not the host
        # (before the environment changes: it takes over the memory where that began)
    except ImportError:
        pass
    os.chdir(job.cwd)
    os.environ.clear()
    os.environ.update(job.env)
    go = os.read(job.go_fd, 1)
    os.close(job.go_fd)
    if go != b"g":
        return EXIT_NOT_STARTED
    sys.argv = job.argv[2:]  # [python, -m, engine, spec] (forged.engine_host.runs_warm)
    from engine.__main__ import main
    from engine.events import Emitter

    Emitter().log(f"forked from the warm engine host (pid {os.getppid()}): libraries loaded")
    return main(sys.argv)


def wait_for_session(pid: int, timeout_s: float = 5.0) -> None:
    """Until the forked child leads its own session (and so its process group), as a cold
    engine does from its start: a stop sent to the group the moment the job is recorded running
    must reach it. (A session, not only a group: a group in the host's session would be orphaned
    when the host dies, and the kernel would hang up a stopped engine in it.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.getsid(pid) == pid:
                return
        except ProcessLookupError:
            return  # it has already ended; its exit code tells why
        time.sleep(0.0005)


class Host:
    """The accept loop: requests in, children forked, exit codes out."""

    def __init__(self, listener: socket.socket, idle_s: float) -> None:
        self.listener = listener
        self.idle_s = idle_s
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.last_busy = time.monotonic()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.inherited: list[int] = []
        """In a forked child: the host's descriptors, to close before the job runs."""

    def serve(self) -> Job | None:
        """Run until idle or told to stop (None); in a forked child, return its job."""
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select(timeout=1.0):
                if key.fileobj is self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        self.wake_r.recv(4096)
                elif key.fileobj is self.listener:
                    job = self.accept()
                    if job is not None:
                        return job
            self.reap()
            if not self.children and time.monotonic() - self.last_busy > self.idle_s:
                return None

    def accept(self) -> Job | None:
        conn, _ = self.listener.accept()
        conn.setblocking(True)
        try:
            job = read_request(conn)
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            conn.close()
            return None
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            # The child keeps only the job's pipe: the host's sockets close in become_job.
            self.inherited = [self.listener.fileno(), self.wake_r.fileno(), self.wake_w.fileno()]
            self.inherited += [c.fileno() for c in self.children.values()] + [conn.fileno()]
            self.selector.close()
            job.env["FORGE_PARENT_PID"] = str(os.getppid())  # its parent-death signal: the host
            return job
        wait_for_session(pid)
        os.close(job.out_fd)
        os.close(job.go_fd)
        self.children[pid] = conn
        self.last_busy = time.monotonic()
        self.send(conn, {"pid": pid})
        return None

    def reap(self) -> None:
        """Tell each ended child's requester its exit code."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            self.last_busy = time.monotonic()
            if conn is not None:
                self.send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                conn.close()

    @staticmethod
    def send(conn: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the daemon went away: nothing to tell
            conn.sendall(json.dumps(message).encode() + b"\n")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m engine.host <socket> [idle-seconds]", file=sys.stderr)
        return 2
    if not control.die_with_parent(os.getppid()):
        return 0
    preload()
    path = argv[1]
    idle_s = float(argv[2]) if len(argv) == 3 else 600.0
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(16)
    print("ready", flush=True)
    host = Host(listener, idle_s)
    job = host.serve()
    if job is None:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return 0
    code = become_job(job, host.inherited)
    # The job has closed what it opened (its tracker, its files); skip the interpreter's
    # teardown of everything the host imported, a second or more that a job that did not load
    # torch itself never paid. (Coverage's `_exit` patch still saves a measured child's data.)
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
