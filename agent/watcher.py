"""Noticing commits as they land: watchdog on each repository's `.git` refs and HEAD.

Missions are built from committed material only, so the refs are all that matter: watching
them costs nothing while a person edits files, and catches commits, merges, pulls and branch
switches. Lock files, objects and the index (git's own churn) are ignored. The callback runs
on watchdog's thread; the daemon hands it to its event loop and debounces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

# watchdog also reports reads ("opened", "closed_no_write"); only these are changes.
CHANGES = {"created", "modified", "moved", "deleted", "closed"}


def _is_ref_change(path: str) -> bool:
    p = path.replace("\\", "/")
    if p.endswith(".lock") or "/objects/" in p or p.endswith("/index"):
        return False
    return "/refs/" in p or p.endswith(("/HEAD", "/packed-refs", "/ORIG_HEAD"))


class _Handler(FileSystemEventHandler):
    def __init__(self, source_id: str, on_change: Callable[[str], None]) -> None:
        self.source_id = source_id
        self.on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return  # reads (opened, closed without writing): our own scans read HEAD
        paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
        if any(_is_ref_change(p) for p in paths if p):
            self.on_change(self.source_id)


class RepoWatcher:
    """One watchdog observer for every source's `.git` folder."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self.on_change = on_change
        self.observer: Any = Observer()
        self.watches: dict[str, Any] = {}
        self.observer.start()

    def watch(self, source_id: str, repo: Path) -> None:
        git_dir = repo / ".git"
        if source_id in self.watches or not git_dir.is_dir():
            return  # a worktree's .git is a file: the rescan covers it
        handler = _Handler(source_id, self.on_change)
        self.watches[source_id] = self.observer.schedule(handler, str(git_dir), recursive=True)

    def unwatch(self, source_id: str) -> None:
        watch = self.watches.pop(source_id, None)
        if watch is not None:
            self.observer.unschedule(watch)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
