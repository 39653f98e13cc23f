"""What sending jobs to Ray costs: the same tiny train job through the local executor and through
a one-node Ray cluster started on this machine (`ray start --head`), each through a daemon.

* start-up latency: `jobs.submit` to the engine's first line in the job's log (for Ray: the
  submission, the cluster's job supervisor starting the engine, and the log stream back);
* throughput: the job's training speed as the engine measures it (tokens/s), and the wall time
  from submit to completed, as a person waits for it.

Baseline: the local executor (today's child processes), in the same run, on the same model and
data. The ratios are Ray's over local.

    .venv/bin/python -m bench.ray_overhead [--steps 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench.scratch_daemon import scratch_daemon
from engine.synthetic import write_dataset
from forge_api.paths import ForgePaths
from forge_cli.main import main as forge
from forge_client.client import Client
from forge_client.launch import spawn_daemon
from tests.support.ray_cluster import NOT_INSTALLED, local_ray_cluster, ray_cli

FIRST_ENGINE_LINE = "backend "
"""How a train job's engine starts its log."""


def wait_job(client: Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.call("jobs.get", id=job_id)
        if job["status"] in {"completed", "failed", "cancelled"}:
            if job["status"] != "completed":
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
            return job
        time.sleep(0.1)
    raise TimeoutError(job_id)


def one_run(client: Client, params: dict[str, Any]) -> dict[str, float]:
    """Submit one train job; time its first engine line and its end."""
    began = time.monotonic()
    job = client.call("jobs.submit", kind="train", params=params)
    first = None
    while first is None:
        lines = client.call("jobs.logs", id=job["id"], tail=50)["lines"]
        if any(x["line"].startswith(FIRST_ENGINE_LINE) for x in lines):
            first = time.monotonic() - began
        elif client.call("jobs.get", id=job["id"])["status"] in {"failed", "cancelled"}:
            wait_job(client, job["id"])  # raises with the reason
        else:
            time.sleep(0.02)
    done = wait_job(client, job["id"])
    return {
        "startup_s": first,
        "wall_s": time.monotonic() - began,
        "tokens_per_s": float(done["summary"]["tokens_per_s"]),
    }


def runs(client: Client, params: dict[str, Any], rounds: int) -> dict[str, float]:
    results = [one_run(client, params) for _ in range(rounds)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def restart_with(paths: ForgePaths, config: str) -> Client:
    forge(["daemon", "stop"])
    paths.config_file.write_text(config)
    spawn_daemon(paths)
    return Client(paths.socket_file)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps of each job")
    parser.add_argument("--rounds", type=int, default=2, help="jobs per executor (median)")
    args = parser.parse_args()
    ray = ray_cli()
    if ray is None:
        print(f"ray_overhead: skipped: {NOT_INSTALLED}")
        return 0
    with scratch_daemon("forge-bench-ray-") as (paths, _):
        client = Client(paths.socket_file)
        prepared = client.call("jobs.submit", kind="prepare-model", params={"name": "tiny"})
        wait_job(client, prepared["id"])
        data = write_dataset(paths.data_dir / "chat.jsonl", 200, seed=2)
        dataset = client.call("datasets.import", path=str(data))["id"]
        params = {
            "base_model": str(paths.models_dir / "tiny"),
            "dataset": dataset,
            "max_steps": args.steps,
            "max_seq_len": 256,
            "batch_size": 4,
            "val_fraction": 0.05,
        }
        local = runs(client, params, args.rounds)
        print(
            f"local: start-up {local['startup_s']:.2f} s, {local['tokens_per_s']:,.0f} tokens/s,"
            f" {local['wall_s']:.1f} s submit → completed"
        )
        started = time.monotonic()
        with local_ray_cluster(ray) as address:
            print(f"(ray start --head took {time.monotonic() - started:.1f} s)")
            client.close()
            client = restart_with(
                paths,
                f'[jobs]\nexecutor = "ray"\nray_address = "{address}"\nray_gpus_per_job = 0\n'
                # The cluster's two CPUs, as the local job has: Ray gives a job as many torch
                # threads as CPUs it asked for.
                "ray_cpus_per_job = 2\n",
            )
            on_ray = runs(client, params, args.rounds)
            client.close()
        print(
            f"ray: start-up {on_ray['startup_s']:.2f} s, {on_ray['tokens_per_s']:,.0f} tokens/s,"
            f" {on_ray['wall_s']:.1f} s submit → completed"
        )
        print(f"startup_ratio {on_ray['startup_s'] / local['startup_s']:.2f}")
        print(f"wall_ratio {on_ray['wall_s'] / local['wall_s']:.2f}")
        print(f"throughput_ratio {on_ray['tokens_per_s'] / local['tokens_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
