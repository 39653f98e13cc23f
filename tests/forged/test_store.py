"""The SQLite store: WAL, the schema version, refusing a database from a newer forge, and a
mission moved only where its life leads (`forge_api.mission_flow`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import get_args

import pytest

from forge_api.mission_data import MissionData
from forge_api.mission_flow import STEPS, TRANSITIONS, StageTransitionError
from forge_api.names import MissionStage
from forge_api.schema import Event
from forged.store import Store
from forged.store_base import StoreError
from forged.store_schema import SCHEMA_VERSION
from tests.support.daemon_harness import DaemonFactory


def test_new_store_is_wal_and_versioned(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "events", "metrics", "missions", "sources", "datasets", "models"} <= tables
    store.close()


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    job = store.create_job("prepare-model", "n", {"a": 1})
    queued = store.last_seq()
    store.add_metrics(job.id, 3, {"loss": 1.5})
    store.close()
    again = Store(tmp_path / "forge.db", tmp_path / "runs")
    assert again.get_job(job.id).params == {"a": 1}
    assert [(m.step, m.name, m.value) for m in again.metrics(job.id)] == [(3, "loss", 1.5)]
    assert again.last_seq() == queued + 1
    assert again.get_job(job.id).run_dir == str(tmp_path / "runs" / job.id)


def test_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    job = store.create_job("prepare-model", "n", {})
    before = store.last_seq()
    with pytest.raises(sqlite3.OperationalError):
        store.update_job(job.id, {"no_such_column": 1}, ("job.status", {"status": "x"}))
    assert store.last_seq() == before
    assert store.get_job(job.id).status == "queued"


def test_a_missions_job_is_recorded_on_it_in_the_same_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    source = store.add_source(str(tmp_path), "repo", {})
    mission = store.propose_mission(source.id, "train on repo", MissionData(head="abc"))
    store.decide_mission(mission.id, "approved", None)
    train = store.create_job("train", "t", {}, mission.id)
    evaluation = store.create_job("eval", "e", {}, mission.id)
    store.close()
    again = Store(tmp_path / "forge.db", tmp_path / "runs")
    mission = again.get_mission(mission.id)
    assert mission.data.changes() == {
        "head": "abc",
        "train_job": train.id,
        "eval_job": evaluation.id,
    }
    assert mission.stage == "evaluating"
    assert [j.id for j in again.mission_jobs(mission.id)] == [train.id, evaluation.id]


def test_a_mission_moves_only_where_its_table_leads_and_a_refused_move_writes_nothing(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    source = store.add_source(str(tmp_path), "repo", {})
    mission = store.propose_mission(source.id, "train on repo", MissionData(head="abc"))
    # A step's job cannot start a mission nobody approved: neither the job nor the stage.
    with pytest.raises(StageTransitionError, match="is proposed and cannot become training"):
        store.create_job("train", "t", {}, mission.id)
    assert store.list_jobs()[0] == [] and store.get_mission(mission.id).stage == "proposed"
    store.decide_mission(mission.id, "rejected", "not now")
    before = store.last_seq()
    for stage in ("approved", "training", "proposed"):
        with pytest.raises(StageTransitionError, match="it has ended"):
            store.set_mission_stage(mission.id, stage)
    assert store.get_mission(mission.id).stage == "rejected" and store.last_seq() == before
    # Every stage has its row, and every step's stage is one a mission can be in.
    assert set(TRANSITIONS) == set(get_args(MissionStage))
    assert all(step.stage in TRANSITIONS["failed"] for step in STEPS)  # a retry of any step


def test_approval_and_its_train_job_are_one_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    announced: list[list[str]] = []
    store.on_commit = lambda *events: announced.append([e.type for e in events])
    source = store.add_source(str(tmp_path), "repo", {})
    mission = store.propose_mission(source.id, "train on repo", MissionData(head="abc"))
    job = store.approve_mission(mission.id, MissionData(held_until=5.0), ("train", "t", {}))
    assert announced[-1] == ["mission.stage", "job.status", "mission.stage"]  # one commit
    now = store.get_mission(mission.id)
    assert now.stage == "training" and now.data.train_job == job.id and now.decided_at
    assert now.data.held_until == 5.0
    # Approving again is refused by the table, and the refused job is not left behind.
    with pytest.raises(StageTransitionError):
        store.approve_mission(mission.id, MissionData(), ("train", "t2", {}))
    assert [j.id for j in store.mission_jobs(mission.id)] == [job.id]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "forge.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this forge knows"):
        Store(tmp_path / "forge.db", tmp_path / "runs")


def test_job_prefix_resolution(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    job = store.create_job("prepare-model", "n", {})
    assert store.resolve_job_id(job.id) == job.id
    assert store.resolve_job_id(job.id[:8]) == job.id
    assert store.resolve_job_id(job.id[4:10]) == job.id  # without the "job-" prefix
    assert store.resolve_job_id("job") is None
    assert store.resolve_job_id("%%%%") is None


def test_text_filter_is_literal(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    store.create_job("prepare-model", "100% tiny", {})
    store.create_job("prepare-model", "plain_name", {})
    store.create_job("prepare-model", "plainXname", {})
    assert [j.name for j in store.list_jobs(text="%")[0]] == ["100% tiny"]
    assert [j.name for j in store.list_jobs(text="n_n")[0]] == ["plain_name"]


def test_missions_from_before_stages_get_the_stage_their_chain_reached(tmp_path: Path) -> None:
    """Schema 3 kept a status and flags in data; migrating gives each mission its stage."""
    from forged.store_schema import MIGRATIONS

    db = sqlite3.connect(tmp_path / "forge.db")
    for version, script in enumerate(MIGRATIONS[:3], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version={version}")
    missions = {
        "msn-done": ("approved", {"completed": True}, ["train", "eval"]),
        "msn-failed": ("approved", {"stopped": "eval job x failed: boom"}, ["train", "eval"]),
        "msn-running": ("approved", {}, ["train", "eval"]),
        "msn-queued": ("approved", {}, []),
        "msn-open": ("proposed", {}, []),
        "msn-old": ("expired", {}, []),
    }
    for n, (mission_id, (status, data, kinds)) in enumerate(missions.items()):
        db.execute(
            "INSERT INTO missions(id, source_id, status, title, created_at, data)"
            " VALUES (?, NULL, ?, 't', ?, ?)",
            (mission_id, status, n, json.dumps(data)),
        )
        for k, kind in enumerate(kinds):
            db.execute(
                "INSERT INTO jobs(id, kind, status, name, params, created_at, mission_id)"
                " VALUES (?, ?, 'completed', 'j', '{}', ?, ?)",
                (f"job-{mission_id}-{kind}", kind, n + k / 10, mission_id),
            )
    db.commit()
    db.close()
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    got = {m: (store.get_mission(m).stage, store.get_mission(m).failed_step) for m in missions}
    assert got == {
        "msn-done": ("done", None),
        "msn-failed": ("failed", "eval"),
        "msn-running": ("evaluating", None),
        "msn-queued": ("approved", None),
        "msn-open": ("proposed", None),
        "msn-old": ("superseded", None),
    }
    assert store.get_mission("msn-failed").failure == "eval job x failed: boom"


def _damage_pages(db: Path) -> None:
    """Overwrite the middle of the file (b-tree pages, not the header) with noise."""
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 4 * page, len(data)
    data[page + 16 : len(data) - 16] = bytes(
        (i * 37 + 11) % 256 for i in range(len(data) - page - 32)
    )
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["noise in its pages", "not a database at all"])
def test_a_corrupt_store_is_set_aside_said_once_and_the_daemon_starts(
    make_daemon: DaemonFactory, damage: str, tmp_path: Path
) -> None:
    daemon = make_daemon().start()
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"text": "an example long enough to fill the pages of a store"}\n')
    for i in range(60):
        daemon.call("datasets.import", path=str(mine), name=f"set-{i}")
    daemon.stop()
    db = daemon.paths.db_file
    if damage == "not a database at all":
        db.write_bytes(b"these are not the bytes of a database\n" * 200)
    else:
        _damage_pages(db)
    damaged = db.read_bytes()

    daemon.start()
    health = daemon.call("system.health")
    assert health["ok"] is False
    note = health["checks"]["store"]
    assert note.startswith(f"recovered at start: the store {db} was corrupt ("), note
    kept = next(db.parent.glob("forge.db.corrupt-*"))
    assert kept.read_bytes() == damaged  # nothing of it is lost
    assert f"it is kept as {kept}" in note and f'sqlite3 {kept} ".recover"' in note
    log = daemon.log.read_text()
    assert log.count("was corrupt") == 1  # said once
    # The daemon works on its new store.
    assert daemon.call("jobs.list")["total"] == 0
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "fresh"})
    assert daemon.call("jobs.get", id=job["id"])["name"]


def test_the_store_announces_a_transactions_events_once_it_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    announced: list[list[Event]] = []
    store.on_commit = lambda *events: announced.append(list(events))
    source = store.add_source(str(tmp_path), "repo", {})
    mission = store.propose_mission(source.id, "train on repo", MissionData(head="abc"))
    store.decide_mission(mission.id, "approved", None)
    job = store.create_job("train", "t", {}, mission.id)
    assert [[e.type for e in batch] for batch in announced] == [
        ["source.added"],
        ["mission.proposed"],
        ["mission.stage"],
        ["job.status", "mission.stage"],
    ]
    assert announced[-1][1].data == {"id": mission.id, "stage": "training", "job": job.id}
    assert [e.seq for batch in announced for e in batch] == [1, 2, 3, 4, 5]
    with pytest.raises(sqlite3.OperationalError):
        store.update_job(job.id, {"no_such_column": 1}, ("job.status", {"status": "x"}))
    assert len(announced) == 4  # a rolled-back change announces nothing
