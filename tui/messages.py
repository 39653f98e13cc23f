"""Messages between the app and its screens: daemon events and the link going up or down
(app to screens); a job to open and a new job to start (screens to the app, which owns the
screen stack)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class DaemonEvent(Message):
    """One `event` notification from the daemon (seq, ts, type, job_id, data)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))


class LinkChanged(Message):
    """The event stream reached the daemon (online) or lost it (offline)."""

    def __init__(self, online: bool) -> None:
        super().__init__()
        self.online = online


class OpenJob(Message):
    """Show this job's screen over the current one."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id


class NewJob(Message):
    """Open the training wizard."""
