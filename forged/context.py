"""What a method handler can reach: the daemon's services and the client's connection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from forge_api.config import Config
from forge_api.paths import ForgePaths
from forged.events import EventBus
from forged.hardware import Hardware
from forged.job_submit import JobSubmitter
from forged.mission_chain import MissionChain
from forged.registry import ModelRegistry
from forged.runner import JobRunner
from forged.server import Connection
from forged.source_scanner import SourceScanner
from forged.store import Store


class ConfigReloader(Protocol):
    path: Path
    error: str | None
    """Why the file on disk is not the config in use, or None."""

    def reload(self) -> tuple[list[str], list[str]]:
        """Apply the file: (the keys that changed, those of them that wait for a restart)."""
        ...


@dataclass
class Services:
    paths: ForgePaths
    config: Config
    store: Store
    bus: EventBus
    runner: JobRunner
    submitter: JobSubmitter
    """The one way a job enters the queue, with every check at submit."""
    hardware: Hardware
    scanner: SourceScanner
    chain: MissionChain
    models: ModelRegistry
    permissions_fixed: list[str] = field(default_factory=list)
    """Folders and files of ours that were open to other users at start, and are not now."""
    store_note: str | None = None
    """Set when a corrupt store was set aside at start: what happened and how to recover it."""
    started_at: float = field(default_factory=time.time)
    keeper: ConfigReloader | None = None
    """Takes a changed config file (`forged.config_reload`, set once the services exist)."""


@dataclass
class Session:
    """One request's view: the services, and the connection it came on (for subscriptions)."""

    services: Services
    conn: Connection
