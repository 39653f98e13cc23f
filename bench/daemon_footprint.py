"""Daemon footprint: idle RSS, and `forge status` against `python -c pass`, in one run.

A daemon is started in a temporary FORGE_HOME and left idle for a few seconds; its resident
memory is read from /proc (target: under 100 MB). Then `forge status` (a full round trip: start
Python, import the CLI, connect, ask, print) is timed against the bare interpreter start-up,
median of N runs each, alternating so machine noise hits both alike (target: under 5×).

    .venv/bin/python -m bench.daemon_footprint [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.scratch_daemon import scratch_daemon


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with scratch_daemon("fp") as (_, daemon):
        time.sleep(3)
        idle = rss_mb(daemon.pid)
        env = dict(os.environ)  # FORGE_HOME names the scratch daemon
        ours, base = [], []
        for _ in range(args.runs):
            ours.append(timed([sys.executable, "-m", "forge_cli", "status"], env))
            base.append(timed([sys.executable, "-c", "pass"], env))
    o, b = statistics.median(ours), statistics.median(base)
    print(f"idle daemon RSS: {idle:.1f} MB (target < 100 MB)")
    print(f"forge status: median {o * 1000:.0f} ms over {args.runs} runs")
    print(f"python -c pass: median {b * 1000:.0f} ms")
    print(f"ratio: {o / b:.2f}x (target < 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
