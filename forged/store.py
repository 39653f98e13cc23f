"""The daemon's persistent state: SQLite in WAL mode, schema versioned with `PRAGMA user_version`.

Only the daemon opens the database, through one connection on its event-loop thread, so
concurrent clients never meet "database is locked": they are serialised by the loop, and each
change is one short `BEGIN IMMEDIATE` transaction. Every change that others should hear of
writes its event row in the same transaction, so the event log and the state never disagree, and
the store itself hands a transaction's events to `on_commit` (the event bus) once it commits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from forge_api.mission_data import DatasetCard, MissionData
from forge_api.model_data import ModelData
from forge_api.schema import Dataset, Job, Mission, Model, Source
from forged.store_base import merge_mission_data, new_id, row_dict, set_stage
from forged.store_jobs import JobRecords


class Store(JobRecords):
    """All reads and writes of `forge.db`: jobs (from `JobRecords`), and here missions, sources,
    datasets and models."""

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
        return [Mission.model_validate(row_dict(r)) for r in rows]

    def get_mission(self, mission_id: str) -> Mission:
        """By id or unique id prefix, as every get_ below."""
        return Mission.model_validate(row_dict(self._find("missions", "msn", mission_id)))

    def decide_mission(
        self, mission_id: str, stage: str, reason: str | None, data: MissionData | None = None
    ) -> None:
        """A person's decision (approved or rejected), with any change to the plan."""
        with self.tx() as db:
            set_stage(db, mission_id, stage, decided_at=time.time(), reason=reason)
            if data is not None:
                merge_mission_data(db, mission_id, data.changes())
            self._insert_event(
                "mission.stage", None, {"id": mission_id, "stage": stage, "reason": reason}
            )

    def approve_mission(
        self,
        mission_id: str,
        data: MissionData,
        step: tuple[str, str, dict[str, Any]],
        not_before: float | None = None,
    ) -> Job:
        """A person's approval and the mission's first job (`step`: kind, name, params), in one
        transaction: no mission is ever approved without its job queued, whatever stops the
        daemon when."""
        kind, name, params = step
        with self.tx() as db:
            set_stage(db, mission_id, "approved", decided_at=time.time(), reason=None)
            merge_mission_data(db, mission_id, data.changes())
            self._insert_event("mission.stage", None, {"id": mission_id, "stage": "approved"})
            job_id = self.insert_job(db, kind, name, params, mission_id, not_before)
        return self.get_job(job_id)

    def set_mission_stage(
        self,
        mission_id: str,
        stage: str,
        data: MissionData | None = None,
        *,
        failed_step: str | None = None,
        failure: str | None = None,
    ) -> None:
        """Move a mission on (and record what its step left), with its event, in one
        transaction; a stage other than `failed` clears the last failure."""
        with self.tx() as db:
            set_stage(db, mission_id, stage, failed_step=failed_step, failure=failure)
            if data is not None:
                merge_mission_data(db, mission_id, data.changes())
            info: dict[str, Any] = {"id": mission_id, "stage": stage}
            if failed_step:
                info |= {"step": failed_step, "reason": failure}
            self._insert_event("mission.stage", None, info)

    def propose_mission(self, source_id: str, title: str, data: MissionData) -> Mission:
        """A new proposal for a source; any older open proposal for it is superseded."""
        mission_id = new_id("msn")
        with self.tx() as db:
            older = db.execute(
                "SELECT id FROM missions WHERE source_id = ? AND stage = 'proposed'", (source_id,)
            ).fetchall()
            for row in older:
                set_stage(db, row["id"], "superseded", decided_at=time.time())
                self._insert_event(
                    "mission.stage",
                    None,
                    {"id": row["id"], "stage": "superseded", "by": mission_id},
                )
            db.execute(
                "INSERT INTO missions(id, source_id, stage, title, created_at, data)"
                " VALUES (?, ?, 'proposed', ?, ?, ?)",
                (mission_id, source_id, title, time.time(), json.dumps(data.changes())),
            )
            self._insert_event(
                "mission.proposed", None, {"id": mission_id, "source_id": source_id, "title": title}
            )
        return self.get_mission(mission_id)

    def missions_for_head(self, source_id: str, head: str) -> list[Mission]:
        """Missions of a source that covered material up to this head commit."""
        rows = self.db.execute(
            "SELECT * FROM missions WHERE source_id = ? AND json_extract(data, '$.head') = ?",
            (source_id, head),
        )
        return [Mission.model_validate(row_dict(r)) for r in rows]

    def update_mission_data(self, mission_id: str, extra: MissionData) -> None:
        """Record what a step learned on the mission, with its `mission.updated` event."""
        changes = extra.changes()
        with self.tx() as db:
            merge_mission_data(db, mission_id, changes)
            self._insert_event("mission.updated", None, {"id": mission_id, "keys": sorted(changes)})

    def get_source(self, source_id: str) -> Source:
        return Source.model_validate(row_dict(self._find("sources", "src", source_id)))

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
        return [Source.model_validate(row_dict(r)) for r in rows]

    def source_by_path(self, path: str) -> Source | None:
        row = self.db.execute("SELECT * FROM sources WHERE path = ?", (path,)).fetchone()
        return None if row is None else Source.model_validate(row_dict(row))

    def add_source(self, path: str, name: str, config: dict[str, Any]) -> Source:
        source_id = new_id("src")
        with self.tx() as db:
            db.execute(
                "INSERT INTO sources(id, path, name, added_at, config) VALUES (?, ?, ?, ?, ?)",
                (source_id, path, name, time.time(), json.dumps(config)),
            )
            self._insert_event("source.added", None, {"id": source_id, "path": path})
        return self.get_source(source_id)

    def remove_source(self, source_id: str) -> bool:
        """Forget a source (its missions and datasets stay); False when there was none."""
        with self.tx() as db:
            cur = db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            if cur.rowcount == 0:
                return False
            self._insert_event("source.removed", None, {"id": source_id})
        return True

    def list_datasets(self, source_id: str | None) -> list[Dataset]:
        if source_id:
            rows = self.db.execute(
                "SELECT * FROM datasets WHERE source_id = ? ORDER BY created_at DESC", (source_id,)
            )
        else:
            rows = self.db.execute("SELECT * FROM datasets ORDER BY created_at DESC")
        return [Dataset.model_validate(row_dict(r)) for r in rows]

    def get_dataset(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(row_dict(self._find("datasets", "ds", dataset_id)))

    def add_dataset(
        self, name: str, path: str, examples: int, card: DatasetCard, source_id: str | None
    ) -> Dataset:
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
            self._insert_event("dataset.added", None, {"id": dataset_id, "name": name})
        return self.get_dataset(dataset_id)

    def list_models(self, kind: Sequence[str] | None) -> list[Model]:
        if kind:
            rows = self.db.execute(
                f"SELECT * FROM models WHERE kind IN ({','.join('?' * len(kind))})"
                " ORDER BY created_at DESC",
                list(kind),
            )
        else:
            rows = self.db.execute("SELECT * FROM models ORDER BY created_at DESC")
        return [Model.model_validate(row_dict(r)) for r in rows]

    def get_model(self, model_id: str) -> Model:
        return Model.model_validate(row_dict(self._find("models", "mdl", model_id)))

    def find_model(self, kind: str, path: str) -> Model | None:
        row = self.db.execute(
            "SELECT * FROM models WHERE kind = ? AND path = ?", (kind, path)
        ).fetchone()
        return None if row is None else Model.model_validate(row_dict(row))

    def update_model_data(self, model_id: str, extra: ModelData) -> None:
        """Merge `extra` into a model's details (eval results, where it is deployed)."""
        with self.tx() as db:
            row = db.execute("SELECT data FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                raise KeyError(model_id)
            data = json.loads(row["data"]) | extra.changes()
            db.execute("UPDATE models SET data = ? WHERE id = ?", (json.dumps(data), model_id))
            self._insert_event("model.updated", None, {"id": model_id})

    def upsert_model(
        self,
        kind: str,
        name: str,
        path: str,
        *,
        base: str | None,
        job_id: str | None,
        data: ModelData,
    ) -> None:
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
            self._insert_event("model.added", job_id, {"id": model_id, "name": name})
