"""Jobs in the store: their rows, status changes with their events, artifacts, metrics and log
lines. A job that is a mission's step moves its mission in the same transaction."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from forge_api.mission_flow import STEP_STAGES
from forge_api.names import TERMINAL_JOB_STATUSES
from forge_api.schema import Job, LogLine, Metric
from forged.store_base import (
    JSON_COLUMNS,
    AmbiguousRef,
    StoreBase,
    like_prefix,
    merge_mission_data,
    new_id,
    row_dict,
    set_stage,
)


class JobRecords(StoreBase):
    """Jobs and what they report; `Store` adds the other records."""

    def _job(self, row: sqlite3.Row) -> Job:
        d = row_dict(row)
        return Job.model_validate(d | {"run_dir": str(self.runs_dir / d["id"])})

    def create_job(
        self,
        kind: str,
        name: str,
        params: dict[str, Any],
        mission_id: str | None = None,
        not_before: float | None = None,
    ) -> Job:
        """A queued job; a mission's step moves its mission to that step's stage, in the same
        transaction."""
        with self.tx() as db:
            job_id = self.insert_job(db, kind, name, params, mission_id, not_before)
        return self.get_job(job_id)

    def insert_job(
        self,
        db: sqlite3.Connection,
        kind: str,
        name: str,
        params: dict[str, Any],
        mission_id: str | None,
        not_before: float | None,
    ) -> str:
        """`create_job` inside the caller's transaction; the new job's id."""
        job_id = new_id("job")
        db.execute(
            "INSERT INTO jobs(id, kind, status, name, params, created_at, mission_id,"
            " not_before) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
            (job_id, kind, name, json.dumps(params), time.time(), mission_id, not_before),
        )
        self._insert_event("job.status", job_id, {"status": "queued", "kind": kind})
        if mission_id is not None and (stage := STEP_STAGES.get(kind)):
            # In the same transaction, so a crash never leaves a mission's step unrecorded.
            merge_mission_data(db, mission_id, {f"{kind}_job": job_id})
            set_stage(db, mission_id, stage, failed_step=None, failure=None)
            self._insert_event(
                "mission.stage", None, {"id": mission_id, "stage": stage, "job": job_id}
            )
        return job_id

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
    ) -> Job:
        """Change columns of one job and, in the same transaction, log what changed."""
        sets = []
        args: list[Any] = []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            args.append(json.dumps(value) if key in JSON_COLUMNS else value)
        with self.tx() as db:
            if sets:
                db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*args, job_id])
            if fields.get("status") in TERMINAL_JOB_STATUSES:
                # An ended job has no time left: its last progress keeps its step, not its ETA.
                db.execute(
                    "UPDATE jobs SET progress = json_remove(progress, '$.eta_s')"
                    " WHERE id = ? AND json_valid(progress)",
                    (job_id,),
                )
            if event:
                self._insert_event(event[0], job_id, event[1])
        return self.get_job(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        row = self.db.execute(
            "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return bool(row and row[0])

    def job_pid(self, job_id: str) -> int | None:
        row = self.db.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row["pid"]

    def add_artifact(self, job_id: str, artifact: dict[str, Any]) -> None:
        with self.tx() as db:
            row = db.execute("SELECT artifacts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            artifacts = [*json.loads(row["artifacts"]), artifact]
            db.execute(
                "UPDATE jobs SET artifacts = ? WHERE id = ?", (json.dumps(artifacts), job_id)
            )
            self._insert_event("job.artifact", job_id, artifact)

    def add_metrics(self, job_id: str, step: int, values: dict[str, float]) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany(
                "INSERT INTO metrics(job_id, step, name, value, ts) VALUES (?, ?, ?, ?, ?)",
                [(job_id, step, name, float(v), now) for name, v in values.items()],
            )
            self._insert_event("job.metric", job_id, {"step": step, "values": values})

    def metrics(self, job_id: str, names: Sequence[str] | None = None) -> list[Metric]:
        sql = "SELECT step, name, value, ts FROM metrics WHERE job_id = ?"
        args: list[Any] = [job_id]
        if names:
            sql += f" AND name IN ({','.join('?' * len(names))})"
            args += list(names)
        rows = self.db.execute(sql + " ORDER BY step, rowid", args).fetchall()
        return [Metric.model_validate(row_dict(r)) for r in rows]

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
