"""The store's foundation: one SQLite connection in WAL mode, its schema migrations, write
transactions that announce their events once committed, and the event log itself.

`forged.store.Store` is this with the records on top (`forged.store_jobs` for jobs, their
metrics and logs; `forged.store` for missions, sources, datasets and models).
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

from forge_api.mission_flow import check_transition
from forge_api.schema import Event
from forged.store_schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)


JSON_COLUMNS = {
    "params",
    "progress",
    "artifacts",
    "data",
    "config",
    "card",
    "summary",
    "placement",
}


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


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A row as a dict, its JSON columns parsed."""
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not a mapping
        value = row[key]
        out[key] = json.loads(value) if key in JSON_COLUMNS and value is not None else value
    return out


def set_stage(db: sqlite3.Connection, mission_id: str, stage: str, **columns: Any) -> None:
    """Move a mission to `stage` inside the caller's transaction (with any other `columns`),
    where its life leads there (`forge_api.mission_flow`); else StageTransitionError, and the
    caller's transaction is rolled back with it. The only writer of a mission's stage."""
    row = db.execute("SELECT stage FROM missions WHERE id = ?", (mission_id,)).fetchone()
    if row is None:
        raise KeyError(mission_id)
    check_transition(mission_id, row["stage"], stage)
    sets = {"stage": stage, **columns}
    db.execute(
        f"UPDATE missions SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
        (*sets.values(), mission_id),
    )


def merge_mission_data(db: sqlite3.Connection, mission_id: str, extra: dict[str, Any]) -> None:
    """Merge keys into a mission's data inside the caller's transaction."""
    row = db.execute("SELECT data FROM missions WHERE id = ?", (mission_id,)).fetchone()
    data = json.loads(row["data"]) | extra
    db.execute("UPDATE missions SET data = ? WHERE id = ?", (json.dumps(data), mission_id))


class StoreBase:
    """The connection, its transactions and the event log; the records build on it."""

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

    def append_events(self, items: Sequence[tuple[str, str | None, dict[str, Any]]]) -> None:
        """Store several events in one transaction (log lines arrive in bursts)."""
        with self.tx():
            for type_, job_id, data in items:
                self._insert_event(type_, job_id, data)

    def append_event(self, type_: str, job_id: str | None, data: dict[str, Any]) -> None:
        self.append_events([(type_, job_id, data)])

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
        return [Event.model_validate(row_dict(r)) for r in self.db.execute(sql, args)]

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
