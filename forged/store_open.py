"""Opening the store at start, and what to do when its file is corrupt.

A damaged `forge.db` (a disk fault, a copy taken mid-write, a file overwritten by mistake) must
not keep the daemon from starting, nor be "fixed" by deleting it: the bad file is moved aside
with its write-ahead log, so nothing in it is lost for good, the daemon starts on an empty
store, and it says so once in its log and, until it is restarted, in `system.health`, with the
command that recovers what can be recovered from the file kept aside.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from forged.store import Store

log = logging.getLogger(__name__)


def open_store(db_file: Path, runs_dir: Path) -> tuple[Store, str | None]:
    """The store, and a one-line note when a corrupt one was set aside to start it."""
    problem = _problem(db_file, runs_dir)
    if problem is None:
        return Store(db_file, runs_dir), None
    kept = db_file.with_name(f"{db_file.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = db_file.with_name(db_file.name + suffix)
        if part.exists():
            part.rename(kept.with_name(kept.name + suffix))
    note = (
        f"the store {db_file} was corrupt ({problem}); it is kept as {kept} and the daemon "
        f"started with an empty one: to get back what can be read from it, stop the daemon and "
        f'run `sqlite3 {kept} ".recover" | sqlite3 {db_file}`'
    )
    log.error("%s", note)
    return Store(db_file, runs_dir), note


def _problem(db_file: Path, runs_dir: Path) -> str | None:
    """What `PRAGMA quick_check` (or opening at all) finds wrong with the file; None if sound."""
    if not db_file.exists():
        return None
    try:
        store = Store(db_file, runs_dir)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    try:
        rows = store.db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        store.close()
    found = [str(row[0]) for row in rows if row[0] != "ok"]
    return "; ".join(found[:3]) if found else None
