"""The daemon's persistent state: SQLite in WAL mode, schema versioned with `PRAGMA user_version`.

Only the daemon opens the database, through one connection on its event-loop thread, so
concurrent clients never meet "database is locked": they are serialised by the loop, and each
change is one short `BEGIN IMMEDIATE` transaction. Every change that others should hear of
writes its event row in the same transaction, so the event log and the state never disagree, and
the store itself hands a transaction's events to `on_commit` (the event bus) once it commits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forge_api.mission_data import DatasetCard, MissionData
from forge_api.model_data import ModelData
from forge_api.schema import (
    Dataset,
    Event,
    Job,
    LogLine,
    Metric,
    Mission,
    Model,
    Source,
)
from forged.store_schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)


# The stage a mission is in while the job of each of its steps is queued or running.
MISSION_STAGE_OF_STEP = {"train": "training", "eval": "evaluating", "deploy": "deploying"}

_JSON_COLUMNS = {"params", "progress", "artifacts", "data", "config", "card"}


class AmbiguousRef(LookupError):
    """A short id that starts more than one id; `candidates` lists them for the person."""

    def __init__(self, ref: str, candidates: list[str]) -> None:
        super().__init__(f"{ref!r} starts more than one id: {', '.join(candidates)}")
        self.ref = ref
        self.candidates = candidates


class StoreError(RuntimeError):
    """The database cannot be used as it is (for example: written by a newer forge)."""


def new_id(prefix: str) -> str:
    """A short random id; the prefix tells a person what kind of thing it names."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def like_prefix(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') that matches strings starting with `text` literally."""
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not a mapping
        value = row[key]
        out[key] = json.loads(value) if key in _JSON_COLUMNS and value is not None else value
    return out


class Store:
    """All reads and writes of `forge.db`."""

    def __init__(self, path: Path, runs_dir: Path) -> None:
        self.path = path
        self.runs_dir = runs_dir
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.on_commit: Callable[..., None] | None = None
        """Given the events each transaction stored, once it commits (the event bus)."""
        self._stored: list[Event] = []
        self.write_error: str | None = None
        """Why the last write failed, while writes fail (None once one succeeds)."""
        self.write_failed_at = 0.0
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this forge knows "
                f"({SCHEMA_VERSION}); upgrade forge or point FORGE_HOME elsewhere"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.tx():
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={target}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole if anything in it fails, the commit
        included (a commit refused on a full disk must not leave the transaction open, or every
        later write would fail too). A failure of the database itself (full, I/O, locked) is
        kept in `write_error` until a write succeeds again: `system.health` reports it."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self._stored = []
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                self._stored = []
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if self.write_error is None:
                self.write_failed_at = time.time()
            self.write_error = str(exc)
            raise
        self.write_error = None
        committed, self._stored = self._stored, []
        if committed and self.on_commit is not None:
            try:
                self.on_commit(*committed)
            except Exception:  # the write stands; a failed announcement must not undo it
                log.exception(
                    "announcing events %d..%d failed", committed[0].seq, committed[-1].seq
                )

    # ---- events -----------------------------------------------------------------------------

    def _insert_event(self, type_: str, job_id: str | None, data: dict[str, Any]) -> Event:
        ts = time.time()
        cur = self.db.execute(
            "INSERT INTO events(ts, type, job_id, data) VALUES (?, ?, ?, ?)",
            (ts, type_, job_id, json.dumps(data)),
        )
        assert cur.lastrowid is not None
        event = Event(seq=cur.lastrowid, ts=ts, type=type_, job_id=job_id, data=data)
        self._stored.append(event)
        return event

    def append_events(self, items: Sequence[tuple[str, str | None, dict[str, Any]]]) -> list[Event]:
        """Store several events in one transaction (log lines arrive in bursts)."""
        with self.tx():
            return [self._insert_event(t, j, d) for t, j, d in items]

    def append_event(self, type_: str, job_id: str | None, data: dict[str, Any]) -> Event:
        return self.append_events([(type_, job_id, data)])[0]

    def last_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def events_after(
        self,
        seq: int,
        *,
        limit: int,
        job_id: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        sql = "SELECT * FROM events WHERE seq > ?"
        args: list[Any] = [seq]
        if job_id is not None:
            sql += " AND job_id = ?"
            args.append(job_id)
        if types:
            clauses = []
            for t in types:
                if t.endswith("."):
                    clauses.append(r"type LIKE ? ESCAPE '\'")
                    args.append(like_prefix(t))
                else:
                    clauses.append("type = ?")
                    args.append(t)
            sql += " AND (" + " OR ".join(clauses) + ")"
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [Event.model_validate(_row(r)) for r in self.db.execute(sql, args)]

    # ---- jobs -------------------------------------------------------------------------------

    def _job(self, row: sqlite3.Row) -> Job:
        d = _row(row)
        return Job.model_validate(d | {"run_dir": str(self.runs_dir / d["id"])})

    def create_job(
        self,
        kind: str,
        name: str,
        params: dict[str, Any],
        mission_id: str | None = None,
        not_before: float | None = None,
    ) -> tuple[Job, list[Event]]:
        """A queued job, with its events: its status, and its mission's new stage if it is one
        of a mission's steps."""
        job_id = new_id("job")
        with self.tx() as db:
            db.execute(
                "INSERT INTO jobs(id, kind, status, name, params, created_at, mission_id,"
                " not_before) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job_id, kind, name, json.dumps(params), time.time(), mission_id, not_before),
            )
            events = [self._insert_event("job.status", job_id, {"status": "queued", "kind": kind})]
            if mission_id is not None and (stage := MISSION_STAGE_OF_STEP.get(kind)):
                # In the same transaction, so a crash never leaves a mission's step unrecorded.
                self._merge_mission_data(db, mission_id, {f"{kind}_job": job_id})
                self._set_stage(db, mission_id, stage)
                events.append(
                    self._insert_event(
                        "mission.stage", None, {"id": mission_id, "stage": stage, "job": job_id}
                    )
                )
        return self.get_job(job_id), events

    def get_job(self, job_id: str) -> Job:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return self._job(row)

    def resolve_job_id(self, ref: str) -> str | None:
        """The job whose id is `ref`, or the one job whose id starts with it (≥ 4 characters)."""
        try:
            return str(self._find("jobs", "job", ref)["id"])
        except (KeyError, AmbiguousRef):
            return None

    def _find(self, table: str, prefix: str, ref: str) -> sqlite3.Row:
        """The row whose id is `ref`, or the one whose id starts with it, with or without its
        `prefix-` (at least 4 characters); KeyError for none, AmbiguousRef for several."""
        row: sqlite3.Row | None = self.db.execute(
            f"SELECT * FROM {table} WHERE id = ?", (ref,)
        ).fetchone()
        if row is not None:
            return row
        if len(ref) < 4:
            raise KeyError(ref)
        rows: list[sqlite3.Row] = self.db.execute(
            f"SELECT * FROM {table} WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\'"
            " ORDER BY id LIMIT 6",
            (like_prefix(ref), like_prefix(f"{prefix}-{ref}")),
        ).fetchall()
        if not rows:
            raise KeyError(ref)
        if len(rows) > 1:
            raise AmbiguousRef(ref, [r["id"] for r in rows])
        return rows[0]

    def list_jobs(
        self,
        *,
        status: Sequence[str] | None = None,
        kind: Sequence[str] | None = None,
        text: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append(f"status IN ({','.join('?' * len(status))})")
            args += list(status)
        if kind:
            where.append(f"kind IN ({','.join('?' * len(kind))})")
            args += list(kind)
        if text:
            where.append(r"(name LIKE ? ESCAPE '\' OR id LIKE ? ESCAPE '\')")
            needle = "%" + like_prefix(text)
            args += [needle, needle]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = self.db.execute(f"SELECT COUNT(*) FROM jobs{clause}", args).fetchone()[0]
        rows = self.db.execute(
            f"SELECT * FROM jobs{clause} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [self._job(r) for r in rows], int(total)

    def mission_jobs(self, mission_id: str) -> list[Job]:
        """A mission's jobs, oldest first: what its chain has already done."""
        rows = self.db.execute(
            "SELECT * FROM jobs WHERE mission_id = ? ORDER BY created_at, rowid", (mission_id,)
        ).fetchall()
        return [self._job(r) for r in rows]

    def count_jobs(self, status: str) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()
        return int(row[0])

    def queued_jobs(self) -> list[Job]:
        rows = self.db.execute(
            "SELECT * FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid"
        ).fetchall()
        return [self._job(r) for r in rows]

    def update_job(
        self,
        job_id: str,
        fields: dict[str, Any],
        event: tuple[str, dict[str, Any]] | None = None,
    ) -> tuple[Job, Event | None]:
        """Change columns of one job and, in the same transaction, log what changed."""
        sets = []
        args: list[Any] = []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            args.append(json.dumps(value) if key in _JSON_COLUMNS else value)
        with self.tx() as db:
            if sets:
                db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*args, job_id])
            stored = self._insert_event(event[0], job_id, event[1]) if event else None
        return self.get_job(job_id), stored

    def cancel_requested(self, job_id: str) -> bool:
        row = self.db.execute(
            "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return bool(row and row[0])

    def job_pid(self, job_id: str) -> int | None:
        row = self.db.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row["pid"]

    def add_artifact(self, job_id: str, artifact: dict[str, Any]) -> Event:
        with self.tx() as db:
            row = db.execute("SELECT artifacts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            artifacts = [*json.loads(row["artifacts"]), artifact]
            db.execute(
                "UPDATE jobs SET artifacts = ? WHERE id = ?", (json.dumps(artifacts), job_id)
            )
            return self._insert_event("job.artifact", job_id, artifact)

    def add_metrics(self, job_id: str, step: int, values: dict[str, float]) -> Event:
        now = time.time()
        with self.tx() as db:
            db.executemany(
                "INSERT INTO metrics(job_id, step, name, value, ts) VALUES (?, ?, ?, ?, ?)",
                [(job_id, step, name, float(v), now) for name, v in values.items()],
            )
            return self._insert_event("job.metric", job_id, {"step": step, "values": values})

    def metrics(self, job_id: str, names: Sequence[str] | None = None) -> list[Metric]:
        sql = "SELECT step, name, value, ts FROM metrics WHERE job_id = ?"
        args: list[Any] = [job_id]
        if names:
            sql += f" AND name IN ({','.join('?' * len(names))})"
            args += list(names)
        rows = self.db.execute(sql + " ORDER BY step, rowid", args).fetchall()
        return [Metric.model_validate(_row(r)) for r in rows]

    def log_lines(
        self, job_id: str, *, after_seq: int, tail: int | None, limit: int
    ) -> list[LogLine]:
        if tail is not None:
            rows = self.db.execute(
                "SELECT seq, ts, data FROM events WHERE job_id = ? AND type = 'job.log'"
                " AND seq > ? ORDER BY seq DESC LIMIT ?",
                (job_id, after_seq, min(tail, limit)),
            ).fetchall()[::-1]
        else:
            rows = self.db.execute(
                "SELECT seq, ts, data FROM events WHERE job_id = ? AND type = 'job.log'"
                " AND seq > ? ORDER BY seq LIMIT ?",
                (job_id, after_seq, limit),
            ).fetchall()
        return [LogLine(seq=r["seq"], ts=r["ts"], line=json.loads(r["data"])["line"]) for r in rows]

    # ---- missions, sources, datasets, models --------------------------------------------------

    def list_missions(
        self, stage: Sequence[str] | None, source_id: str | None, limit: int
    ) -> list[Mission]:
        where: list[str] = []
        args: list[Any] = []
        if stage:
            where.append(f"stage IN ({','.join('?' * len(stage))})")
            args += list(stage)
        if source_id:
            where.append("source_id = ?")
            args.append(source_id)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self.db.execute(
            f"SELECT * FROM missions{clause} ORDER BY created_at DESC LIMIT ?", [*args, limit]
        )
        return [Mission.model_validate(_row(r)) for r in rows]

    def get_mission(self, mission_id: str) -> Mission:
        """By id or unique id prefix, as every get_ below."""
        return Mission.model_validate(_row(self._find("missions", "msn", mission_id)))

    def decide_mission(
        self, mission_id: str, stage: str, reason: str | None, data: MissionData | None = None
    ) -> Event:
        """A person's decision (approved or rejected), with any change to the plan."""
        with self.tx() as db:
            db.execute(
                "UPDATE missions SET stage = ?, decided_at = ?, reason = ? WHERE id = ?",
                (stage, time.time(), reason, mission_id),
            )
            if data is not None:
                self._merge_mission_data(db, mission_id, data.changes())
            return self._insert_event(
                "mission.stage", None, {"id": mission_id, "stage": stage, "reason": reason}
            )

    def set_mission_stage(
        self,
        mission_id: str,
        stage: str,
        data: MissionData | None = None,
        *,
        failed_step: str | None = None,
        failure: str | None = None,
    ) -> Event:
        """Move a mission on (and record what its step left), with its event, in one
        transaction; a stage other than `failed` clears the last failure."""
        with self.tx() as db:
            self._set_stage(db, mission_id, stage, failed_step, failure)
            if data is not None:
                self._merge_mission_data(db, mission_id, data.changes())
            info: dict[str, Any] = {"id": mission_id, "stage": stage}
            if failed_step:
                info |= {"step": failed_step, "reason": failure}
            return self._insert_event("mission.stage", None, info)

    @staticmethod
    def _set_stage(
        db: sqlite3.Connection,
        mission_id: str,
        stage: str,
        failed_step: str | None = None,
        failure: str | None = None,
    ) -> None:
        db.execute(
            "UPDATE missions SET stage = ?, failed_step = ?, failure = ? WHERE id = ?",
            (stage, failed_step, failure, mission_id),
        )

    def propose_mission(
        self, source_id: str, title: str, data: MissionData
    ) -> tuple[Mission, list[Event]]:
        """A new proposal for a source; any older open proposal for it is superseded."""
        mission_id = new_id("msn")
        events = []
        with self.tx() as db:
            older = db.execute(
                "SELECT id FROM missions WHERE source_id = ? AND stage = 'proposed'", (source_id,)
            ).fetchall()
            for row in older:
                db.execute(
                    "UPDATE missions SET stage = 'superseded', decided_at = ? WHERE id = ?",
                    (time.time(), row["id"]),
                )
                events.append(
                    self._insert_event(
                        "mission.stage",
                        None,
                        {"id": row["id"], "stage": "superseded", "by": mission_id},
                    )
                )
            db.execute(
                "INSERT INTO missions(id, source_id, stage, title, created_at, data)"
                " VALUES (?, ?, 'proposed', ?, ?, ?)",
                (mission_id, source_id, title, time.time(), json.dumps(data.changes())),
            )
            events.append(
                self._insert_event(
                    "mission.proposed",
                    None,
                    {"id": mission_id, "source_id": source_id, "title": title},
                )
            )
        return self.get_mission(mission_id), events

    def missions_for_head(self, source_id: str, head: str) -> list[Mission]:
        """Missions of a source that covered material up to this head commit."""
        rows = self.db.execute(
            "SELECT * FROM missions WHERE source_id = ? AND json_extract(data, '$.head') = ?",
            (source_id, head),
        )
        return [Mission.model_validate(_row(r)) for r in rows]

    def update_mission_data(self, mission_id: str, extra: MissionData) -> Event:
        """Record what a step learned on the mission, with its `mission.updated` event."""
        changes = extra.changes()
        with self.tx() as db:
            self._merge_mission_data(db, mission_id, changes)
            return self._insert_event(
                "mission.updated", None, {"id": mission_id, "keys": sorted(changes)}
            )

    @staticmethod
    def _merge_mission_data(db: sqlite3.Connection, mission_id: str, extra: dict[str, Any]) -> None:
        row = db.execute("SELECT data FROM missions WHERE id = ?", (mission_id,)).fetchone()
        data = json.loads(row["data"]) | extra
        db.execute("UPDATE missions SET data = ? WHERE id = ?", (json.dumps(data), mission_id))

    def get_source(self, source_id: str) -> Source:
        return Source.model_validate(_row(self._find("sources", "src", source_id)))

    def set_source_commits(
        self, source_id: str, *, last: str | None = None, trained: str | None = None
    ) -> None:
        with self.tx() as db:
            if last is not None:
                db.execute("UPDATE sources SET last_commit = ? WHERE id = ?", (last, source_id))
            if trained is not None:
                db.execute(
                    "UPDATE sources SET trained_commit = ? WHERE id = ?", (trained, source_id)
                )

    def list_sources(self) -> list[Source]:
        rows = self.db.execute("SELECT * FROM sources ORDER BY added_at")
        return [Source.model_validate(_row(r)) for r in rows]

    def source_by_path(self, path: str) -> Source | None:
        row = self.db.execute("SELECT * FROM sources WHERE path = ?", (path,)).fetchone()
        return None if row is None else Source.model_validate(_row(row))

    def add_source(self, path: str, name: str, config: dict[str, Any]) -> tuple[Source, Event]:
        source_id = new_id("src")
        with self.tx() as db:
            db.execute(
                "INSERT INTO sources(id, path, name, added_at, config) VALUES (?, ?, ?, ?, ?)",
                (source_id, path, name, time.time(), json.dumps(config)),
            )
            event = self._insert_event("source.added", None, {"id": source_id, "path": path})
        return self.get_source(source_id), event

    def remove_source(self, source_id: str) -> Event | None:
        with self.tx() as db:
            cur = db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            if cur.rowcount == 0:
                return None
            return self._insert_event("source.removed", None, {"id": source_id})

    def list_datasets(self, source_id: str | None) -> list[Dataset]:
        if source_id:
            rows = self.db.execute(
                "SELECT * FROM datasets WHERE source_id = ? ORDER BY created_at DESC", (source_id,)
            )
        else:
            rows = self.db.execute("SELECT * FROM datasets ORDER BY created_at DESC")
        return [Dataset.model_validate(_row(r)) for r in rows]

    def get_dataset(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(_row(self._find("datasets", "ds", dataset_id)))

    def add_dataset(
        self, name: str, path: str, examples: int, card: DatasetCard, source_id: str | None
    ) -> tuple[Dataset, Event]:
        dataset_id = new_id("ds")
        with self.tx() as db:
            db.execute(
                "INSERT INTO datasets(id, name, source_id, path, created_at, examples, card)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    dataset_id,
                    name,
                    source_id,
                    path,
                    time.time(),
                    examples,
                    json.dumps(card.changes()),
                ),
            )
            event = self._insert_event("dataset.added", None, {"id": dataset_id, "name": name})
        return self.get_dataset(dataset_id), event

    def list_models(self, kind: Sequence[str] | None) -> list[Model]:
        if kind:
            rows = self.db.execute(
                f"SELECT * FROM models WHERE kind IN ({','.join('?' * len(kind))})"
                " ORDER BY created_at DESC",
                list(kind),
            )
        else:
            rows = self.db.execute("SELECT * FROM models ORDER BY created_at DESC")
        return [Model.model_validate(_row(r)) for r in rows]

    def get_model(self, model_id: str) -> Model:
        return Model.model_validate(_row(self._find("models", "mdl", model_id)))

    def find_model(self, kind: str, path: str) -> Model | None:
        row = self.db.execute(
            "SELECT * FROM models WHERE kind = ? AND path = ?", (kind, path)
        ).fetchone()
        return None if row is None else Model.model_validate(_row(row))

    def update_model_data(self, model_id: str, extra: ModelData) -> Event:
        """Merge `extra` into a model's details (eval results, where it is deployed)."""
        with self.tx() as db:
            row = db.execute("SELECT data FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                raise KeyError(model_id)
            data = json.loads(row["data"]) | extra.changes()
            db.execute("UPDATE models SET data = ? WHERE id = ?", (json.dumps(data), model_id))
            return self._insert_event("model.updated", None, {"id": model_id})

    def upsert_model(
        self,
        kind: str,
        name: str,
        path: str,
        *,
        base: str | None,
        job_id: str | None,
        data: ModelData,
    ) -> Event:
        """Register a model by (kind, path); a rebuilt one replaces the old record's details."""
        with self.tx() as db:
            row = db.execute(
                "SELECT id FROM models WHERE kind = ? AND path = ?", (kind, path)
            ).fetchone()
            model_id = row["id"] if row else new_id("mdl")
            db.execute(
                "INSERT INTO models(id, kind, name, path, base, job_id, created_at, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " name = excluded.name, base = excluded.base, job_id = excluded.job_id,"
                " created_at = excluded.created_at, data = excluded.data",
                (
                    model_id,
                    kind,
                    name,
                    path,
                    base,
                    job_id,
                    time.time(),
                    json.dumps(data.changes()),
                ),
            )
            return self._insert_event("model.added", job_id, {"id": model_id, "name": name})
