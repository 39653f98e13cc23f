"""Kill -9 at 12 random points of missions' lives (FORGE_CRASH_KILLS sets how many; 100 makes
a good soak): while a proposal's dataset is built, right after an approval, mid-training (with a
checkpoint being written), during eval and deploy. After each kill the store must open intact,
every mission and job seen before is still there, nothing ran twice, a training job goes on from
a complete checkpoint or fails with the reason, and no half-written folder is taken for a good
one. A third of the kills take the engines down with the daemon (a power cut), so a checkpoint
can be torn mid-write.

The seed is printed; FORGE_CRASH_SEED replays a run. The suite's 12 kills cover each phase
(4 torn checkpoints, then proposals, approvals and running jobs) in about two minutes on two
cores; every kill costs a daemon restart and the engine it may have killed."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

from engine.synthetic import write_dataset
from tests.support.daemon_harness import (
    ProcessDaemon,
    ProcessDaemonFactory,
    engine_processes,
    wait_for,
)
from tests.support.missions import agent_config, make_repo
from tests.support.ollama_server import FakeOllama
from tests.support.repos import commit

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("FORGE_CRASH_KILLS", "12"))
TORN_CHECKPOINT_KILLS = 4
"""The first kills hit a manual train job that checkpoints every step, so torn writes happen."""


def power_cut(daemon: ProcessDaemon) -> None:
    """The daemon and every engine at once, as a power cut or the OOM killer would: the daemon
    first, so it cannot record the engines' deaths, then the engines, which by then may be
    writing the checkpoint the daemon's death asked for."""
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGKILL)
    for pid in engine_processes(under=daemon.paths.runs_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    daemon.proc.wait(10)


def in_background(daemon: ProcessDaemon, method: str, **params: Any) -> None:
    """A call the kill may cut off mid-way (its connection then breaks, which is fine)."""

    def call() -> None:
        with contextlib.suppress(Exception):
            daemon.call(method, **params)

    threading.Thread(target=call, daemon=True).start()


class Snapshot:
    """What the store held just before a kill, to compare with what it holds after."""

    def __init__(self, daemon: ProcessDaemon) -> None:
        self.jobs = {j["id"]: j for j in daemon.call("jobs.list", limit=1000)["jobs"]}
        self.missions = {m["id"]: m for m in daemon.call("missions.list", limit=1000)["missions"]}


def store_is_intact(daemon: ProcessDaemon) -> None:
    db = sqlite3.connect(daemon.paths.db_file)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def complete_checkpoint(path: str) -> bool:
    folder = Path(path)
    if folder.name.endswith(".partial") or not (folder / "state.json").exists():
        return False
    # safetensors checks the header and that the file holds every tensor it lists.
    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as weights:
        return len(list(weights.keys())) > 0


def check_after_restart(daemon: ProcessDaemon, before: Snapshot) -> str:
    """The invariants; returns what became of the jobs that were running at the kill."""

    def recovered() -> Snapshot | None:
        # The daemon serves while it stops a dead daemon's leftover engines (up to 10 s each);
        # a job it has not got to yet still shows the old process.
        now = Snapshot(daemon)
        stale = [
            j
            for j in before.jobs.values()
            if j["status"] == "running"
            and (now.jobs[j["id"]]["status"], now.jobs[j["id"]]["pid"]) == ("running", j["pid"])
        ]
        return None if stale else now

    after = wait_for(recovered, timeout=30)
    assert before.jobs.keys() <= after.jobs.keys(), "a job vanished"
    assert before.missions.keys() <= after.missions.keys(), "a mission vanished"
    outcomes: list[str] = []
    for job_id, old in before.jobs.items():
        new = after.jobs[job_id]
        if old["status"] in ("completed", "failed", "cancelled"):
            assert (new["status"], new["finished_at"]) == (old["status"], old["finished_at"])
        if new["checkpoint"] and new["status"] in ("queued", "running", "failed"):
            assert complete_checkpoint(new["checkpoint"]), new
        if old["status"] == "running":
            if new["status"] == "failed":
                assert new["error"], new
                outcomes.append(f"{new['kind']} failed: {new['error'][:90]}")
            elif new["status"] in ("queued", "running") and new["checkpoint"]:
                assert new["kind"] == "train", new
                outcomes.append(f"train resumes from {Path(new['checkpoint']).name}")
            elif new["status"] in ("queued", "running"):
                assert new["status"] == "queued" or new["attempt"] > old["attempt"], new
                outcomes.append(f"{new['kind']} starts over (no checkpoint yet)")
            else:
                outcomes.append(f"{new['kind']} had {new['status']}")
    for mission in after.missions.values():  # no step of a chain ran twice
        kinds = [j["kind"] for j in after.jobs.values() if j["mission_id"] == mission["id"]]
        assert all(kinds.count(k) == 1 for k in kinds), (mission["id"], kinds)
    for dataset in daemon.call("datasets.list")["datasets"]:
        assert ".partial" not in dataset["path"] and Path(dataset["path"]).exists(), dataset
    for adapter in daemon.call("models.list", kind=["adapter"])["models"]:
        assert (Path(adapter["path"]) / "adapter_model.safetensors").exists(), adapter
    running: dict[str, int] = {}
    for spec in engine_processes(under=daemon.paths.runs_dir).values():
        running[spec] = running.get(spec, 0) + 1
    assert all(n == 1 for n in running.values()), running  # no job runs twice at once
    return "; ".join(outcomes) or "nothing was running"


def open_mission(daemon: ProcessDaemon) -> dict[str, Any] | None:
    active = ["approved", "training", "evaluating", "deploying"]
    missions = daemon.call("missions.list", stage=active)["missions"]
    return dict(missions[0]) if missions else None


def running_kind(daemon: ProcessDaemon) -> str:
    jobs = daemon.call("jobs.list", status=["running"])["jobs"]
    return ",".join(j["kind"] for j in jobs) or "between jobs"


@pytest.mark.timeout(900)  # 12 kills and restarts, each mission trained to its end
def test_kill_nine_anywhere_in_a_missions_life(
    make_process_daemon: ProcessDaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FORGE_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\ncrash-anywhere seed {seed} (FORGE_CRASH_SEED={seed} replays it)")
    ollama = FakeOllama().start()
    # Its subject is the mission chain: no calibration run before each proposal (which a kill
    # every second or so would never let finish).
    config = agent_config(tiny_model, ollama.host).replace(
        "[agent]", f'bases = {{"{tiny_model}" = "llama3.2:1b"}}\n\n[agent]'
    )
    daemon = make_process_daemon(config=config + "\n[jobs]\nmax_parallel = 1\n").start()
    repo = make_repo(tmp_path)
    manual = write_dataset(daemon.paths.datasets_dir / "manual.jsonl", 120, seed=2)
    params = {"base_model": str(tiny_model), "dataset": str(manual), "max_seq_len": 256}
    manual_job = daemon.call(
        "jobs.submit", kind="train", params=params | {"max_steps": 80, "checkpoint_every": 1}
    )
    wait_for(lambda: daemon.call("jobs.get", id=manual_job["id"])["checkpoint"], timeout=120)
    rounds = 0
    try:
        for kill in range(1, KILLS + 1):
            if kill <= TORN_CHECKPOINT_KILLS:
                phase, delay, cut = "checkpoint write", rng.uniform(4.0, 8.0), True
            else:
                if kill == TORN_CHECKPOINT_KILLS + 1:
                    job = daemon.call("jobs.get", id=manual_job["id"])
                    if job["status"] in ("queued", "running"):
                        daemon.call("jobs.cancel", id=job["id"])
                    daemon.wait_job(job["id"], {"cancelled", "completed", "failed"})
                cut = rng.random() < 0.33
                mission = open_mission(daemon)
                proposed = daemon.call("missions.list", stage=["proposed"])["missions"]
                if mission is not None:
                    phase, delay = "mission running", rng.uniform(1.0, 12.0)
                elif proposed:
                    phase, delay = "approve", rng.uniform(0.0, 0.3)
                    in_background(daemon, "missions.approve", id=proposed[0]["id"])
                else:
                    phase, delay = "proposal", rng.uniform(0.0, 1.5)
                    propose(daemon, repo, rounds := rounds + 1)
            time.sleep(delay)
            before = Snapshot(daemon)
            if phase == "mission running":
                phase = f"mission running ({running_kind(daemon)})"
            power_cut(daemon) if cut else daemon.kill()
            torn = list(daemon.paths.runs_dir.glob("*/checkpoints/*.partial"))
            store_is_intact(daemon)
            daemon.start()
            outcome = check_after_restart(daemon, before)
            how = "daemon + engines" if cut else "daemon"
            extra = f", {len(torn)} torn checkpoint folder(s) left" if torn else ""
            print(f"kill {kill:2}: {phase} after {delay:.2f}s, {how}{extra} -> {outcome}")

        # Left alone now: the open mission ends, and one more runs from proposal to its end.
        wait_for(lambda: open_mission(daemon) is None, timeout=300)
        proposed = daemon.call("missions.list", stage=["proposed"])["missions"]
        if not proposed:
            propose(daemon, repo, rounds + 1)
            proposed = wait_for(
                lambda: daemon.call("missions.list", stage=["proposed"])["missions"], 120
            )
        daemon.call("missions.approve", id=proposed[0]["id"])
        last = wait_for(lambda: ended(daemon, proposed[0]["id"]), timeout=300)
        assert last["stage"] == "done", last
        missions = daemon.call("missions.list", limit=1000)["missions"]
        print("missions:", [(m["stage"], m["data"].get("deploy", "")[:50]) for m in missions])
    finally:
        ollama.stop()


def propose(daemon: ProcessDaemon, repo: Path, round_: int) -> None:
    """Add the source, or commit new material to it and scan: either builds a dataset."""
    sources = daemon.call("sources.list")["sources"]
    if not sources:
        in_background(daemon, "sources.add", path=str(repo))
        return
    for n in range(2):
        body = f"def step_{round_}_{n}(x: int) -> int:\n    return x + {n}\n" * 3
        commit(repo, {f"step_{round_}_{n}.py": body}, f"Add step {round_}.{n}")
    in_background(daemon, "sources.scan", id=sources[0]["id"])


def ended(daemon: ProcessDaemon, mission_id: str) -> dict[str, Any] | None:
    mission: dict[str, Any] = daemon.call("missions.get", id=mission_id)
    return mission if mission["stage"] in ("done", "failed") else None
