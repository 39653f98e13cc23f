"""The store's tables, as the migrations that build them: `PRAGMA user_version` says how many
have run, and `Store` runs the rest at open. A migration that has shipped is never edited; a
change is a new entry."""

from __future__ import annotations

# Each entry migrates the schema from version i to i+1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        name TEXT NOT NULL,
        params TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        attempt INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        exit_code INTEGER,
        error TEXT,
        progress TEXT,
        checkpoint TEXT,
        artifacts TEXT NOT NULL DEFAULT '[]',
        mission_id TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_status ON jobs(status, created_at);
    CREATE INDEX jobs_by_created ON jobs(created_at);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        job_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX events_by_job ON events(job_id, type, seq);
    CREATE TABLE metrics (
        job_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX metrics_by_job ON metrics(job_id, name, step);
    CREATE TABLE missions (
        id TEXT PRIMARY KEY,
        source_id TEXT,
        status TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        decided_at REAL,
        reason TEXT,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX missions_by_status ON missions(status, created_at);
    CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        added_at REAL NOT NULL,
        last_commit TEXT,
        config TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source_id TEXT,
        path TEXT NOT NULL,
        created_at REAL NOT NULL,
        examples INTEGER NOT NULL,
        card TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        path TEXT,
        base TEXT,
        job_id TEXT,
        created_at REAL NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX models_by_path ON models(kind, path);
    """,
    # 2: the commit a source's latest adapter was trained on: new material is counted from it.
    """
    ALTER TABLE sources ADD COLUMN trained_commit TEXT;
    """,
    # 3: a queued job may wait for a time (quiet hours) before the runner starts it.
    """
    ALTER TABLE jobs ADD COLUMN not_before REAL;
    """,
    # 4: a mission's stage replaces its status, with the failed step and its reason; missions
    # approved before keep where their chain got to (from their newest job).
    """
    ALTER TABLE missions RENAME COLUMN status TO stage;
    ALTER TABLE missions ADD COLUMN failed_step TEXT;
    ALTER TABLE missions ADD COLUMN failure TEXT;
    UPDATE missions SET stage = 'superseded' WHERE stage = 'expired';
    UPDATE missions SET stage = 'done'
        WHERE stage = 'approved' AND json_extract(data, '$.completed');
    UPDATE missions SET stage = 'failed',
        failure = json_extract(data, '$.stopped'),
        failed_step = (SELECT kind FROM jobs WHERE jobs.mission_id = missions.id
                       ORDER BY created_at DESC, rowid DESC LIMIT 1)
        WHERE stage = 'approved' AND json_extract(data, '$.stopped') IS NOT NULL;
    UPDATE missions SET stage = CASE (SELECT kind FROM jobs WHERE jobs.mission_id = missions.id
                                      ORDER BY created_at DESC, rowid DESC LIMIT 1)
            WHEN 'train' THEN 'training' WHEN 'eval' THEN 'evaluating'
            WHEN 'deploy' THEN 'deploying' ELSE 'approved' END
        WHERE stage = 'approved';
    """,
    # 5: what a completed job reported (the engine's summary: for a train job, the values it
    # chose where the params left them to it).
    """
    ALTER TABLE jobs ADD COLUMN summary TEXT;
    """,
    # 6: where a job runs when it is not a child of the daemon (a Ray cluster: its address and
    # Ray job id), so a restarted daemon re-attaches to it.
    """
    ALTER TABLE jobs ADD COLUMN placement TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
