"""Jobs end to end: a real `python -m engine` child per job, its events in the store and on the
subscription stream, and each way a job can end."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from engine.synthetic import write_dataset
from tests.support.daemon_harness import Daemon, DaemonFactory, wait_for
from tests.support.fake_engine import fake_engine


def collect_until_status(
    events: Any, job_id: str, final: set[str], limit: float = 120
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit
    for event in events:
        seen.append(event)
        if (
            event["job_id"] == job_id
            and event["type"] == "job.status"
            and event["data"]["status"] in final
        ):
            return seen
        assert time.monotonic() < deadline, "job did not finish in time"
    raise AssertionError("stream ended")


def test_prepare_model_job_builds_the_tiny_model(daemon: Daemon) -> None:
    with daemon.client() as c:
        sub = c.call("events.subscribe", types=["job."])
        job = c.call("jobs.submit", kind="prepare-model", params={})
        assert job["status"] == "queued"
        events = collect_until_status(c.events(), job["id"], {"completed", "failed"})

    types = [e["type"] for e in events]
    statuses = [e["data"]["status"] for e in events if e["type"] == "job.status"]
    assert statuses == ["queued", "running", "completed"], events[-3:]
    assert {"job.progress", "job.log", "job.checkpoint", "job.artifact"} <= set(types)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e["seq"] > sub["last_seq"] for e in events)

    # `completed` is recorded when the engine says done; its exit code follows when it exits.
    done = wait_for(
        lambda: (j := daemon.call("jobs.get", id=job["id"]))["exit_code"] is not None and j
    )
    assert done["status"] == "completed"
    assert done["exit_code"] == 0 and done["error"] is None
    assert done["progress"]["step"] == done["progress"]["total"] == 3
    model_dir = Path(done["artifacts"][0]["path"])
    assert model_dir == daemon.paths.models_dir / "tiny-llama"
    assert (model_dir / "model.safetensors").stat().st_size > 1_000_000
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 2048

    models = daemon.call("models.list")["models"]
    assert [(m["kind"], m["name"], m["path"]) for m in models] == [
        ("base", "tiny-llama", str(model_dir))
    ]
    assert 1_000_000 < models[0]["data"]["parameters"] < 5_000_000

    # Every line the engine wrote is kept in the run dir too.
    recorded = [
        json.loads(x) for x in (Path(done["run_dir"]) / "events.jsonl").read_text().splitlines()
    ]
    assert recorded[-1]["type"] == "done"
    assert any(r["type"] == "artifact" for r in recorded)
    logs = daemon.call("jobs.logs", id=job["id"])["lines"]
    assert any("BPE tokenizer" in x["line"] for x in logs)
    assert daemon.call("jobs.logs", id=job["id"], tail=1)["lines"][0]["line"] == "done"
    # The daemon's own log (journalctl's, under a service) tells the job's life.
    said = daemon.log.read_text()
    for line in (f"job {job['id']} queued (kind prepare-model)", f"job {job['id']} running (pid "):
        assert line in said, said[-2000:]
    assert f"job {job['id']} completed" in said
    assert f"model {models[0]['id']} added (job {job['id']}, name tiny-llama)" in said


def test_job_that_fails_reports_exit_code_and_last_error(daemon: Daemon, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama",\n  oops}')
    job = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(broken)})
    failed = daemon.wait_job(job["id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert failed["exit_code"] == 1
    assert f"{broken}/config.json:2: not valid JSON" in failed["error"]


def test_job_killed_by_a_signal_fails_with_the_signal(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    daemon = make_daemon().start()
    job = long_train(daemon, tiny_model)
    running = daemon.wait_job(job["id"], {"running"})
    os.killpg(running["pid"], signal.SIGKILL)
    failed = daemon.wait_job(job["id"], {"failed"})
    assert failed["exit_code"] == -9
    assert "killed by SIGKILL" in failed["error"]
    # The queue goes on.
    nxt = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    assert daemon.wait_job(nxt["id"], {"completed", "failed"})["status"] == "completed"


def long_train(daemon: Daemon, tiny_model: Path) -> dict[str, Any]:
    """A train job that runs until it is stopped."""
    data = write_dataset(daemon.paths.datasets_dir / "chat.jsonl", 100, seed=3)
    params = {"base_model": str(tiny_model), "dataset": str(data), "max_steps": 100_000}
    job: dict[str, Any] = daemon.call("jobs.submit", kind="train", params=params)
    return job


def test_cancel_queued_and_running(make_daemon: DaemonFactory, tiny_model: Path) -> None:
    daemon = make_daemon(config="[jobs]\ncancel_grace_s = 2\n").start()
    first = long_train(daemon, tiny_model)
    second = daemon.call("jobs.submit", kind="prepare-model", params={"name": "b"})
    daemon.wait_job(first["id"], {"running"})
    # One model-loading job at a time by default: the second waits.
    assert daemon.call("jobs.get", id=second["id"])["status"] == "queued"

    cancelled = daemon.call("jobs.cancel", id=second["id"])
    assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None

    pid = daemon.call("jobs.get", id=first["id"])["pid"]
    daemon.call("jobs.cancel", id=first["id"][:8])  # a unique prefix of the id works too
    done = daemon.wait_job(first["id"], {"cancelled", "completed", "failed"}, timeout=30)
    assert done["status"] == "cancelled"
    wait_for(lambda: not _group_alive(pid), timeout=10)

    again = daemon.call("jobs.get", id=first["id"])
    assert again["error"] == "cancelled by request"
    with daemon.client() as c:
        try:
            c.call("jobs.cancel", id=first["id"])
        except Exception as exc:
            assert getattr(exc, "code", None) == -32002
            assert "already cancelled" in str(exc)
        else:
            raise AssertionError("cancelling a cancelled job must be refused")


def test_a_job_cancelled_as_it_is_launched_never_runs(daemon: Daemon) -> None:
    """Cancel lands while the runner is spawning the engine: the job stays cancelled."""
    ids = []
    with daemon.client() as c:
        for n in range(5):
            job = c.call("jobs.submit", kind="prepare-model", params={"name": f"race-{n}"})
            c.call("jobs.cancel", id=job["id"])
            ids.append(job["id"])
    # A job queued behind them runs to its end: by then the runner has passed each of them, so
    # a wrongly started one would have shown itself.
    after = daemon.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"})  # no model
    daemon.wait_job(after["id"], {"completed", "failed"})
    for job_id in ids:
        job = daemon.call("jobs.get", id=job_id)
        assert job["status"] == "cancelled" and job["started_at"] is None, job
    assert not (daemon.paths.models_dir / "race-0").exists()


def test_max_parallel_is_configurable(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    # The runner's limit is the subject: each job holds its slot until the test releases it.
    release = tmp_path / "release"
    held = f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.02)\n"
    config = fake_engine(tmp_path, held + 'emit(type="done")') + "max_parallel = 2\n"
    daemon = make_daemon(config=config).start()
    jobs = [
        daemon.call("jobs.submit", kind="prepare-model", params={"name": f"p{i}"}) for i in range(3)
    ]

    def states() -> list[str]:
        now = [daemon.call("jobs.get", id=j["id"])["status"] for j in jobs]
        assert now.count("running") <= 2, now
        return now

    wait_for(lambda: states().count("running") == 2, timeout=60)
    # Two of three run, however long they run: the third waits for a slot.
    assert sorted(states()) == ["queued", "running", "running"]
    release.touch()
    for j in jobs:
        assert daemon.wait_job(j["id"], {"completed", "failed"})["status"] == "completed"


def test_jobs_list_filters(daemon: Daemon) -> None:
    a = daemon.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"}, name="alpha")
    b = daemon.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"}, name="beta")
    daemon.wait_job(a["id"], {"failed"})
    daemon.wait_job(b["id"], {"failed"})
    c = daemon.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"}, name="gamma")
    daemon.call("jobs.cancel", id=c["id"]) if daemon.call("jobs.get", id=c["id"])[
        "status"
    ] == "queued" else daemon.wait_job(c["id"], {"failed"})
    names = [j["name"] for j in daemon.call("jobs.list")["jobs"]]
    assert names == ["gamma", "beta", "alpha"]
    assert [j["name"] for j in daemon.call("jobs.list", text="ph")["jobs"]] == ["alpha"]
    failed = daemon.call("jobs.list", status=["failed"])
    assert {j["name"] for j in failed["jobs"]} >= {"alpha", "beta"}
    assert daemon.call("jobs.list", kind=["train"])["total"] == 0
    page = daemon.call("jobs.list", limit=1, offset=1)
    assert page["total"] == 3 and [j["name"] for j in page["jobs"]] == ["beta"]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
