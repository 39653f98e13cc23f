"""RPC latency: `jobs.list` over the socket against the same query on the raw SQLite file.

The store is filled with 10,000 finished jobs, the daemon is started on it, and a training job
of the tiny model runs while we measure (the daemon is storing its events meanwhile). Then N
calls of `jobs.list` (the newest 100) through the client are timed, alternated with the same
`SELECT` on the database file with sqlite3, and p50/p99 of both are printed with the overhead
(target: p99 overhead under 5 ms).

    .venv/bin/python -m bench.daemon_rpc [--jobs 10000] [--calls 500]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time

from bench.scratch_daemon import scratch_daemon
from engine.synthetic import write_dataset
from forge_api.paths import ForgePaths
from forge_client.client import Client
from forged.store import Store

QUERY = "SELECT * FROM jobs ORDER BY created_at DESC LIMIT 100"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def fill(paths: ForgePaths, count: int) -> None:
    store = Store(paths.db_file, paths.runs_dir)
    for n in range(count):
        store.create_job("eval", f"old job {n}", {"dataset": f"/data/{n}.jsonl"}, None, None)
    with store.tx() as tx:
        tx.execute("UPDATE jobs SET status = 'completed', finished_at = created_at")
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with scratch_daemon("rpc", lambda paths: fill(paths, args.jobs)) as (paths, _):
        with Client(paths.socket_file) as c:
            prep = c.call("jobs.submit", kind="prepare-model", params={})
            while c.call("jobs.get", id=prep["id"])["status"] not in ("completed", "failed"):
                time.sleep(0.2)
            data = write_dataset(paths.datasets_dir / "chat.jsonl", 400, seed=1)
            train = c.call(
                "jobs.submit",
                kind="train",
                params={"dataset": str(data), "max_steps": 100_000, "max_seq_len": 256},
            )
            while c.call("jobs.get", id=train["id"])["status"] != "running":
                time.sleep(0.2)
            time.sleep(3)  # into the training steps
            raw = sqlite3.connect(paths.db_file)
            ours, base = [], []
            for _ in range(args.calls):
                start = time.perf_counter()
                listed = c.call("jobs.list", limit=100)
                ours.append(time.perf_counter() - start)
                start = time.perf_counter()
                rows = raw.execute(QUERY).fetchall()
                base.append(time.perf_counter() - start)
            assert len(listed["jobs"]) == len(rows) == 100
            running = c.call("jobs.get", id=train["id"])["status"]
            c.call("jobs.cancel", id=train["id"])
        print(f"{listed['total']} jobs in the store; the training job was {running} throughout")
        for name, values in (("jobs.list over the socket", ours), ("raw SQLite query", base)):
            p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
            print(f"{name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({args.calls} calls)")
        overhead = (percentile(ours, 99) - percentile(base, 99)) * 1000
        ratio = percentile(ours, 50) / percentile(base, 50)
        print(f"p99 overhead: {overhead:.2f} ms (target < 5 ms); p50 ratio {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
