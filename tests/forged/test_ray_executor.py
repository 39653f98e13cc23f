"""`jobs.executor = "ray"`: engine jobs on a real Ray cluster started on this machine, through
the daemon. The same jobs as locally (prepare-model, train, eval) run there with their events
in the store as a local job's; cancel stops them on the cluster; a daemon killed mid-job
re-attaches to it after a restart instead of running it twice; a lost cluster fails the job
with the reason. Skipped, saying why, where Ray is not installed (the `ray` extra)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.synthetic import write_dataset
from tests.support.cli import forge
from tests.support.daemon_harness import ProcessDaemon, ProcessDaemonFactory, wait_for
from tests.support.private_mount import on_private_tmpfs, tmpfs_unavailable
from tests.support.ray_cluster import local_ray_cluster, ray_command, stop_ray_cluster

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    with local_ray_cluster(ray_command()) as address:
        yield address


def ray_daemon(
    make_process_daemon: ProcessDaemonFactory,
    address: str,
    extra: str = "",
    private_runs: bool = False,
) -> ProcessDaemon:
    """A daemon sending its jobs to the cluster at `address`; with `private_runs`, its runs
    folder is a tmpfs only it sees (as a data folder the workers do not share)."""
    config = (
        f'[jobs]\nexecutor = "ray"\nray_address = "{address}"\nray_gpus_per_job = 0\n'
        f"cancel_grace_s = 5\n{extra}"
    )
    daemon = make_process_daemon(config=config)
    if private_runs:
        daemon.paths.runs_dir.mkdir(parents=True)
        daemon.prefix = on_private_tmpfs(daemon.paths.runs_dir, "8m")
    return daemon.start()


RAY_LIVE = {"PENDING", "RUNNING"}
"""Ray job statuses that have not ended yet."""


def ray_jobs(address: str) -> dict[str, str]:
    """What the cluster itself says: submission id → status."""
    from ray.job_submission import JobSubmissionClient

    return {j.submission_id or "": str(j.status) for j in JobSubmissionClient(address).list_jobs()}


def log_lines(daemon: ProcessDaemon, job_id: str) -> list[str]:
    return [x["line"] for x in daemon.call("jobs.logs", id=job_id, tail=10_000)["lines"]]


def test_prepare_train_and_eval_run_on_the_cluster(
    make_process_daemon: ProcessDaemonFactory, ray_address: str
) -> None:
    daemon = ray_daemon(make_process_daemon, ray_address)
    prepared = daemon.call(
        "jobs.submit", kind="prepare-model", params={"name": "on-ray", "layers": 1}
    )
    done = daemon.wait_job(prepared["id"], {"completed", "failed"}, timeout=180)
    assert done["status"] == "completed", done["error"]
    assert done["placement"]["executor"] == "ray"
    ray_id = done["placement"]["ray_job_id"]
    # The daemon hears the engine's `done` before Ray's supervisor records the exit.
    ended = wait_for(lambda: (s := ray_jobs(ray_address)[ray_id]) not in RAY_LIVE and s, 60)
    assert ended == "SUCCEEDED"
    assert (daemon.paths.models_dir / "on-ray" / "model.safetensors").exists()

    data = daemon.imported(write_dataset(daemon.home / "chat.jsonl", 40, seed=3))
    model = str(daemon.paths.models_dir / "on-ray")
    train = daemon.call(
        "jobs.submit",
        kind="train",
        params={"base_model": model, "dataset": data, "max_steps": 6, "max_seq_len": 256},
    )
    trained = daemon.wait_job(train["id"], {"completed", "failed"}, timeout=180)
    assert trained["status"] == "completed", trained["error"]
    # Its events came back as a local job's: progress, metrics, artifacts, the log.
    metrics = daemon.call("jobs.metrics", id=train["id"], names=["loss"])["metrics"]
    assert metrics, trained
    assert trained["progress"]["step"] == 6
    adapters = [a for a in trained["artifacts"] if a["kind"] == "adapter"]
    assert adapters, trained["artifacts"]
    lines = log_lines(daemon, train["id"])
    assert sum(line == "done" for line in lines) == 1
    assert any(trained["placement"]["ray_job_id"] in line for line in lines)  # Ray's own line
    # The adapter came back into the registry.
    models = daemon.call("models.list")["models"]
    assert any(m.get("job_id") == train["id"] for m in models), models

    evaluated = daemon.call(
        "jobs.submit",
        kind="eval",
        params={"base_model": model, "dataset": data, "adapter": trained["run_dir"]},
    )
    result = daemon.wait_job(evaluated["id"], {"completed", "failed"}, timeout=180)
    assert result["status"] == "completed", result["error"]
    assert result["placement"]["executor"] == "ray"
    shown = forge("jobs", "show", evaluated["id"], home=daemon.home).stdout
    assert f"runs as    Ray job {result['placement']['ray_job_id']} on {ray_address}" in shown
    doctor = json.loads(forge("doctor", "--json", home=daemon.home).stdout)
    ray = next(c for c in doctor if c["name"] == "ray")
    assert ray["state"] == "ok" and ray_address in ray["says"], ray


def long_train(daemon: ProcessDaemon, model: str, steps: int) -> dict[str, Any]:
    data = daemon.imported(write_dataset(daemon.home / "chat.jsonl", 40, seed=5))
    params = {"base_model": model, "dataset": data, "max_seq_len": 256}
    params |= {"max_steps": steps, "checkpoint_every": 1_000_000, "batch_size": 2}
    job: dict[str, Any] = daemon.call("jobs.submit", kind="train", params=params)
    return job


def stepped(daemon: ProcessDaemon, job_id: str) -> bool:
    job = daemon.call("jobs.get", id=job_id)
    return bool(job["status"] == "running" and (job.get("progress") or {}).get("step", 0) >= 2)


def training_on_ray(
    make_process_daemon: ProcessDaemonFactory,
    address: str,
    model: Path,
    steps: int,
    extra: str = "",
) -> tuple[ProcessDaemon, dict[str, Any]]:
    """A daemon sending jobs to the cluster, and its train job once it has made two steps."""
    daemon = ray_daemon(make_process_daemon, address, extra)
    job = long_train(daemon, str(model), steps)
    wait_for(lambda: stepped(daemon, job["id"]), timeout=120, interval=0.2)
    return daemon, job


def test_cancel_stops_the_job_on_the_cluster(
    make_process_daemon: ProcessDaemonFactory, ray_address: str, tiny_model: Path
) -> None:
    daemon, job = training_on_ray(make_process_daemon, ray_address, tiny_model, 100_000)
    daemon.call("jobs.cancel", id=job["id"])
    done = daemon.wait_job(job["id"], {"cancelled", "completed", "failed"}, timeout=60)
    assert done["status"] == "cancelled", done
    ray_id = done["placement"]["ray_job_id"]
    wait_for(lambda: ray_jobs(ray_address)[ray_id] == "STOPPED", timeout=30)


def test_a_restarted_daemon_reattaches_instead_of_running_it_again(
    make_process_daemon: ProcessDaemonFactory, ray_address: str, tiny_model: Path
) -> None:
    daemon, job = training_on_ray(make_process_daemon, ray_address, tiny_model, 40)
    daemon.kill()  # kill -9: the job runs on, on the cluster
    ray_id = f"forge-{job['id']}-1"
    assert ray_jobs(ray_address)[ray_id] == "RUNNING"

    daemon.start()
    done = daemon.wait_job(job["id"], {"completed", "failed", "cancelled"}, timeout=180)
    assert done["status"] == "completed", done["error"]
    assert done["attempt"] == 1  # followed, not started again
    assert [i for i in ray_jobs(ray_address) if job["id"] in i] == [ray_id]
    lines = log_lines(daemon, job["id"])
    assert f"the daemon restarted; re-attached to Ray job {ray_id}" in lines
    # What the first daemon recorded is not recorded twice.
    assert sum(line == "done" for line in lines) == 1
    assert sum(line.startswith("Running entrypoint for job") for line in lines) == 1
    losses = daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"]
    assert len({m["step"] for m in losses}) == len(losses), losses


def test_an_unreachable_cluster_fails_the_job_with_the_reason(
    make_process_daemon: ProcessDaemonFactory,
) -> None:
    daemon = ray_daemon(make_process_daemon, "http://127.0.0.1:9")
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "nowhere"})
    done = daemon.wait_job(job["id"], {"completed", "failed"}, timeout=60)
    assert done["status"] == "failed"
    assert "cannot reach the Ray cluster at 'http://127.0.0.1:9'" in done["error"]
    doctor = json.loads(forge("doctor", "--json", home=daemon.home).stdout)
    ray = next(c for c in doctor if c["name"] == "ray")
    assert ray["state"] == "FAIL" and "does not answer" in ray["says"], ray


@pytest.mark.skipif(tmpfs_unavailable() is not None, reason=str(tmpfs_unavailable()))
def test_a_worker_that_cannot_see_the_data_folder_fails_the_job_saying_so(
    make_process_daemon: ProcessDaemonFactory, ray_address: str
) -> None:
    """The daemon's runs folder is a tmpfs of its own mount namespace: the cluster's worker
    (outside it) does not see the job's run dir, as a worker without the shared mount would."""
    daemon = ray_daemon(make_process_daemon, ray_address, private_runs=True)
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "unseen"})
    done = daemon.wait_job(job["id"], {"completed", "failed"}, timeout=120)
    assert done["status"] == "failed"
    assert "this Ray worker (" in done["error"], done["error"]
    assert f"cannot see the job's run dir {done['run_dir']}" in done["error"]
    assert "forge's data folder must be on a path every worker shares" in done["error"]


def test_a_cluster_lost_mid_job_fails_it_with_the_reason(
    make_process_daemon: ProcessDaemonFactory, ray_address: str, tiny_model: Path
) -> None:
    """Last in this module: it stops the module's cluster."""
    daemon, job = training_on_ray(
        make_process_daemon, ray_address, tiny_model, 100_000, "ray_lost_after_s = 3\n"
    )
    stop_ray_cluster(ray_command())
    done = daemon.wait_job(job["id"], {"completed", "failed", "cancelled"}, timeout=60)
    assert done["status"] == "failed"
    assert f"lost the Ray cluster at '{ray_address}' (no answer for 3 s)" in done["error"], done
