"""Job start-up: jobs forked from the warm engine host against jobs that import torch,
transformers and peft themselves (`jobs.warm_engine_idle_s = 0`), in one run.

Two scratch daemons, one of each, each run N short model-loading jobs (a playground answer of
8 tokens from the tiny model: import, load, generate) one after another; each job is timed
from submit to completed. The job that builds the tiny model comes first and is not counted
(in the warm daemon it also starts the host); the ratio is of the medians.

    .venv/bin/python -m bench.job_start [--jobs 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.scratch_daemon import scratch_daemon
from forge_api.paths import ForgePaths
from forge_client.client import Client


def run_jobs(prefix: str, config: str, count: int) -> list[float]:
    """Seconds from submit to completed for `count` answers on one daemon."""

    def configure(paths: ForgePaths) -> None:
        paths.config_file.write_text(config)

    with scratch_daemon(prefix, configure) as (paths, _), Client(paths.socket_file) as c:
        model = build_model(c)
        times = []
        for _ in range(count):
            start = time.perf_counter()
            params = {"base_model": model, "prompt": "Hello", "max_new_tokens": 8}
            job = c.call("jobs.submit", kind="infer", params=params)
            while c.call("jobs.get", id=job["id"])["status"] not in ("completed", "failed"):
                time.sleep(0.02)
            times.append(time.perf_counter() - start)
            assert c.call("jobs.get", id=job["id"])["status"] == "completed"
    return times


def build_model(c: Client) -> str:
    """The tiny model, built by a first job (it also starts the warm daemon's host)."""
    job = c.call("jobs.submit", kind="prepare-model", params={})
    while (status := c.call("jobs.get", id=job["id"]))["status"] not in ("completed", "failed"):
        time.sleep(0.1)
    assert status["status"] == "completed", status
    models = c.call("models.list")["models"]
    return str(Path(models[0]["path"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6)
    args = parser.parse_args()
    cold = run_jobs("cold", "[jobs]\nwarm_engine_idle_s = 0\n", args.jobs)
    warm = run_jobs("warm", "", args.jobs)
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"cold (each job imports the libraries): median {c:.2f} s over {len(cold)} jobs")
    print(f"warm (forked from the engine host):    median {w:.2f} s over {len(warm)} jobs")
    print(f"ratio: {c / w:.1f}x faster to a finished short job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
