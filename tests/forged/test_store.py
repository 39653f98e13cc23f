"""The SQLite store: WAL, the schema version, and refusing a database from a newer forge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from forged.store import SCHEMA_VERSION, Store, StoreError


def test_new_store_is_wal_and_versioned(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "events", "metrics", "missions", "sources", "datasets", "models"} <= tables
    store.close()


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    job, event = store.create_job("prepare-model", "n", {"a": 1})
    store.add_metrics(job.id, 3, {"loss": 1.5})
    store.close()
    again = Store(tmp_path / "forge.db", tmp_path / "runs")
    assert again.get_job(job.id).params == {"a": 1}
    assert [(m.step, m.name, m.value) for m in again.metrics(job.id)] == [(3, "loss", 1.5)]
    assert again.last_seq() == event.seq + 1
    assert again.get_job(job.id).run_dir == str(tmp_path / "runs" / job.id)


def test_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    job, _ = store.create_job("prepare-model", "n", {})
    before = store.last_seq()
    with pytest.raises(sqlite3.OperationalError):
        store.update_job(job.id, {"no_such_column": 1}, ("job.status", {"status": "x"}))
    assert store.last_seq() == before
    assert store.get_job(job.id).status == "queued"


def test_a_missions_job_is_recorded_on_it_in_the_same_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    source, _ = store.add_source(str(tmp_path), "repo", {})
    mission, _ = store.propose_mission(source.id, "train on repo", {"head": "abc"})
    train, _ = store.create_job("train", "t", {}, mission.id)
    evaluation, _ = store.create_job("eval", "e", {}, mission.id)
    store.close()
    again = Store(tmp_path / "forge.db", tmp_path / "runs")
    data = again.get_mission(mission.id).data
    assert data == {"head": "abc", "train_job": train.id, "eval_job": evaluation.id}
    assert [j.id for j in again.mission_jobs(mission.id)] == [train.id, evaluation.id]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "forge.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this forge knows"):
        Store(tmp_path / "forge.db", tmp_path / "runs")


def test_job_prefix_resolution(tmp_path: Path) -> None:
    store = Store(tmp_path / "forge.db", tmp_path / "runs")
    job, _ = store.create_job("prepare-model", "n", {})
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
