"""Streaming: 50 followers of a job that logs 1,000 lines a second. Lines lost (target 0) and the
p99 delay from the engine writing a line to a follower reading it (target < 250 ms).

Ours: the daemon runs bench/log_firehose.py as a job's engine (through `jobs.python`), so every
line takes the real path: the engine's stdout, the runner, the store, the event bus, and one
`events.subscribe` connection per follower. Baseline: the same firehose read by a bare asyncio
server that writes each raw line to the same 50 socket connections (no store, no JSON-RPC):
what any fan-out costs on this machine. The followers are the same code for both, spread over
a few processes so that reading is not what is measured.

    .venv/bin/python -m bench.daemon_streaming [--followers 50] [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.scratch_daemon import scratch_daemon
from forge_api.paths import ForgePaths
from forge_client.client import Client

FIREHOSE = Path(__file__).with_name("log_firehose.py")
SUBSCRIBE = b'{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": '
SUBSCRIBE += b'{"types": ["job.log"]}}\n'
PER_PROCESS = 10


async def _follow(path: str, rpc: bool, expected: int, ready: Any, wait_s: float) -> list[Any]:
    """One connection: (distinct lines seen, delays in seconds)."""
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
    if rpc:
        writer.write(SUBSCRIBE)
        await writer.drain()
        await reader.readline()  # the subscribe reply
    ready.release()
    seen: set[int] = set()
    delays: list[float] = []
    deadline = None
    while len(seen) < expected:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        except TimeoutError:
            break
        if not line:
            break
        now = time.time()
        at = line.find(b"line ")
        if at < 0:
            continue
        number, _, sent = line[at + 5 :].partition(b" sent ")
        seen.add(int(number))
        delays.append(now - float(sent[:17]))
        if deadline is None:
            deadline = time.monotonic() + wait_s
    writer.close()
    return [len(seen), delays]


def _followers(path: str, rpc: bool, count: int, expected: int, ready: Any, out: Any) -> None:
    async def main() -> list[list[Any]]:
        return list(
            await asyncio.gather(*(_follow(path, rpc, expected, ready, 60.0) for _ in range(count)))
        )

    out.put(asyncio.run(main()))


def measure(path: str, rpc: bool, followers: int, expected: int, start: Any) -> dict[str, Any]:
    """Connect the followers, call `start()`, and gather what each of them saw."""
    ctx = mp.get_context("fork")
    ready, out = ctx.Semaphore(0), ctx.Queue()
    procs = []
    for first in range(0, followers, PER_PROCESS):
        n = min(PER_PROCESS, followers - first)
        proc = ctx.Process(target=_followers, args=(path, rpc, n, expected, ready, out))
        proc.start()
        procs.append(proc)
    for _ in range(followers):
        ready.acquire(timeout=60)
    start()
    results = [r for _ in procs for r in out.get(timeout=600)]
    for proc in procs:
        proc.join()
    delays = sorted(d for _, ds in results for d in ds)
    return {
        "lost": sum(expected - seen for seen, _ in results),
        "p50_ms": statistics.median(delays) * 1000,
        "p99_ms": statistics.quantiles(delays, n=100)[98] * 1000,
    }


def ours(followers: int, expected: int) -> dict[str, Any]:
    def configure(paths: ForgePaths) -> None:
        wrapper = paths.data_dir / "firehose-engine"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIREHOSE}"\n')
        wrapper.chmod(0o755)
        paths.config_file.write_text(f'[jobs]\npython = "{wrapper}"\n')

    with scratch_daemon("forge-bench-stream-", configure) as (paths, _):
        client = Client(paths.socket_file)

        def start() -> None:
            client.call("jobs.submit", kind="prepare-model", params={}, name="firehose")

        result = measure(str(paths.socket_file), True, followers, expected, start)
        client.close()
        return result


def baseline(followers: int, expected: int) -> dict[str, Any]:
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = str(folder / f"forge-bench-fanout-{os.getpid()}.sock")
    ctx = mp.get_context("fork")
    go = ctx.Event()
    server = ctx.Process(target=_fanout, args=(path, followers, go))
    server.start()
    while not os.path.exists(path):
        time.sleep(0.01)
    result = measure(path, False, followers, expected, go.set)
    server.join()
    os.unlink(path)
    return result


def _fanout(path: str, followers: int, go: Any) -> None:
    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def joined(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)

        server = await asyncio.start_unix_server(joined, path)
        while not go.is_set() or len(writers) < followers:
            await asyncio.sleep(0.01)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(FIREHOSE), stdout=subprocess.PIPE, env=os.environ.copy()
        )
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            for writer in writers:
                writer.write(line)
        await proc.wait()
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
        server.close()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.environ["FIREHOSE_RATE"] = str(args.rate)
    os.environ["FIREHOSE_SECONDS"] = str(args.seconds)
    expected = int(args.rate * args.seconds)
    print(f"{args.followers} followers, {args.rate} lines/s for {args.seconds:.0f} s")
    theirs = baseline(args.followers, expected)
    print(
        f"baseline (bare fan-out): lost {theirs['lost']}, "
        f"p50 {theirs['p50_ms']:.1f} ms, p99 {theirs['p99_ms']:.1f} ms"
    )
    mine = ours(args.followers, expected)
    print(
        f"forged (events.subscribe): lost {mine['lost']}, "
        f"p50 {mine['p50_ms']:.1f} ms, p99 {mine['p99_ms']:.1f} ms"
    )
    ratio = mine["p99_ms"] / theirs["p99_ms"] if theirs["p99_ms"] else float("inf")
    print(f"p99 ratio: {ratio:.2f}x (targets: 0 lost, p99 < 250 ms)")
    return 0 if mine["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
