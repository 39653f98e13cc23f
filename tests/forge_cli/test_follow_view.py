"""The live view of a followed job on a real terminal (a pty): log lines scroll above the
status line, never onto it."""

from __future__ import annotations

import os
import pty
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import time
from forge_cli.follow_view import LiveView
view = LiveView("job-1")
view.status("running")
time.sleep(0.3)  # the status line is drawn before the first log line comes
view.log("first log line")
view.log("second log line", "warning")
view.close()
"""


def on_a_terminal(script: str) -> bytes:
    """What `script` writes to a pseudo-terminal (stdout and stderr both a tty)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-c", script])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out


def test_the_first_log_line_starts_a_line_of_its_own() -> None:
    out = on_a_terminal(SCRIPT)
    assert b"starting the engine" in out, out
    before = out[: out.index(b"first log line")]
    # The live line was cleared (or a new line begun) first, not written after.
    assert before.endswith((b"\r\x1b[2K", b"\n")), before[-80:]
    assert b"second log line" in out
