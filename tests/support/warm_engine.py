"""The tests' own warm engine host: the jobs a test runs straight through the engine (not through a
daemon) are forked from one `python -m engine.host` per test worker, as the daemon forks its
local jobs, instead of each importing torch, transformers and peft again (5–6 s, more under
coverage). What they prove is unchanged: the child runs `engine.__main__.main` on the same spec,
in its own session, with the test's environment and working folder, and its exit code comes
back; the host's own behaviour (go-ahead, cancel before start, dying with its parent) is what
tests/forged/test_engine_host.py proves, and the cold `python -m engine` path keeps its own runs
(the tiny model, jobs that may not run warm).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY_TIMEOUT_S = 300.0


class WarmEngine:
    """One host process and the requests sent to it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="forge-test-host-"))
        self.socket_file = self.folder / "engine-host.sock"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.host", str(self.socket_file), "3600"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        ready = selector.select(READY_TIMEOUT_S)
        selector.close()
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"the test engine host did not start (said {line!r})")

    def run(self, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run one engine job forked from the host; its exit code and its output (stdout and
        stderr together, as the daemon reads a job's)."""
        out_r, out_w = os.pipe()
        go_r, go_w = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(self.socket_file))
            request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
            socket.send_fds(conn, [json.dumps(request).encode()], [out_w, go_r])
        finally:
            os.close(out_w)
            os.close(go_r)
        conn.settimeout(timeout)
        replies = conn.makefile("rb")
        try:
            pid = int(json.loads(replies.readline())["pid"])
            os.write(go_w, b"g")
            os.close(go_w)
            output = read_all(out_r, pid, time.monotonic() + timeout)
            code = int(json.loads(replies.readline())["exit"])
        finally:
            os.close(out_r)
            replies.close()
            conn.close()
        return code, output

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        with contextlib.suppress(OSError):
            self.socket_file.unlink(missing_ok=True)
            self.folder.rmdir()


def read_all(fd: int, pid: int, deadline: float) -> str:
    """Everything the job writes until it closes its output; past the deadline its process
    group is killed, as `subprocess.run`'s timeout kills a cold one."""
    chunks: list[bytes] = []
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["engine", str(pid)], left)
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(chunk)
    finally:
        selector.close()


_host: WarmEngine | None = None
_broken = False


def warm_engine() -> WarmEngine | None:
    """This test worker's host, started on first use; None where it cannot run (jobs then run
    cold, as the daemon's do)."""
    global _host, _broken
    if _host is None and not _broken and sys.platform.startswith("linux"):
        try:
            _host = WarmEngine()
        except (OSError, RuntimeError):
            _broken = True
            return None
        atexit.register(_host.close)
    return _host
