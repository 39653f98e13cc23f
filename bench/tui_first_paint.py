"""TUI first paint: `forge tui` in a real 80×24 pseudo-terminal, from exec to the first frame
(the header with its title drawn) and to the first frame with the daemon's data (it says online),
against a Textual hello-world app drawing "Hello" (target: first paint under 1.5 s).

Both run `--runs` times, alternated, against a throw-away daemon; medians are printed.

    .venv/bin/python -m bench.tui_first_paint [--runs 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.scratch_daemon import scratch_daemon

HELLO = """\
from textual.app import App, ComposeResult
from textual.widgets import Static


class Hello(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("Hello")


Hello().run()
"""


def seconds_until(argv: list[str], markers: list[bytes], timeout: float = 30.0) -> list[float]:
    """Start `argv` on a fresh 80×24 pty; seconds until each marker first shows in its output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    seen: dict[bytes, float] = {}
    output = b""
    try:
        while len(seen) < len(markers) and time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    output += os.read(master, 65536)
                except OSError:
                    break
                for marker in markers:
                    if marker not in seen and marker in output:
                        seen[marker] = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    missing = [m.decode() for m in markers if m not in seen]
    if missing:
        raise RuntimeError(f"{argv[-1]} never showed {missing} in {timeout:.0f} s")
    return [seen[m] for m in markers]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    hello = Path(tempfile.mkdtemp(prefix="forge-bench-tui-")) / "hello.py"
    hello.write_text(HELLO)
    forge = [sys.executable, "-m", "forge_cli", "tui"]
    ours_paint, ours_online, theirs = [], [], []
    with scratch_daemon("forge-bench-tui-"):
        for _ in range(args.runs):
            theirs += seconds_until([sys.executable, str(hello)], [b"Hello"])
            paint, online = seconds_until(forge, [b"AI Forge", b"online"])
            ours_paint.append(paint)
            ours_online.append(online)
    hello.unlink()
    hello.parent.rmdir()
    mine, base = statistics.median(ours_paint), statistics.median(theirs)
    print(f"textual hello-world: first paint median {base * 1000:.0f} ms over {args.runs} runs")
    print(f"forge tui: first paint median {mine * 1000:.0f} ms (target < 1500 ms)")
    online = statistics.median(ours_online)
    print(f"forge tui: online with the daemon's data, median {online * 1000:.0f} ms")
    print(f"ratio: {mine / base:.2f}x")
    return 0 if mine < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
