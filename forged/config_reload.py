"""A changed config.toml taken without a restart: on `forge config reload` (`system.reload_config`)
or on its own when the file changes (its size and mtime are looked at every few seconds).

Each part of the daemon holds its section of the config; a reload hands each the new one, so the
next job, scan or deploy uses it. A file that does not validate changes nothing: the daemon
runs on the last good config and `system.health` says what is wrong, file:line and key. Keys
read only at start are named as needing a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from agent.advisor import Advisor, AdvisorSettings
from forge_api.config import Config, ConfigError, changed_keys, load_config
from forged.context import Services

log = logging.getLogger(__name__)

RESTART_KEYS = frozenset({"agent.rescan_interval_s"})
"""Read once, at start (the rescan schedule); a change of any other key applies at once."""

POLL_S = 2.0


class ConfigKeeper:
    """Holds which config the daemon runs on, and takes a new one when the file changes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.path = services.paths.config_file
        self.error: str | None = None
        """Why the file on disk is not the config in use (it does not validate), or None."""
        self._seen = _stamp(self.path)
        self.task: asyncio.Task[None] | None = None

    def reload(self) -> tuple[list[str], list[str]]:
        """Read the file and apply what changed: (the keys changed, those of them that wait
        for the next start); ConfigError, and nothing changed, when it does not validate."""
        self._seen = _stamp(self.path)
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            self.error = str(exc)
            raise
        self.error = None
        changed = changed_keys(self.services.config, new)
        if changed:
            self._apply(new, changed)
            log.info("config reloaded: %s changed", ", ".join(changed))
        return changed, [k for k in changed if k in RESTART_KEYS]

    def _apply(self, new: Config, changed: list[str]) -> None:
        svc = self.services
        svc.config = new
        svc.runner.config = new.jobs
        svc.runner.tracking = new.tracking
        svc.runner.python = new.jobs.python or sys.executable
        svc.runner.wake()  # max_parallel may have grown: the queue is looked at again
        svc.bus.queue_size = new.events.subscriber_queue
        svc.scanner.config = new.agent
        svc.chain.config = new.agent
        svc.models.config = new
        if any(key.startswith("advisor.") for key in changed):
            svc.scanner.advisor = Advisor(AdvisorSettings(**new.advisor.model_dump()))
        logging.getLogger().setLevel(new.daemon.log_level.upper())

    def start(self) -> None:
        self.task = asyncio.create_task(self._watch(), name="config-watch")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if _stamp(self.path) == self._seen:
                continue
            try:
                _changed, later = self.reload()
            except ConfigError as exc:
                log.error(
                    "config.toml changed but cannot be used; keeping the last good one: %s", exc
                )
                continue
            except Exception as exc:  # whatever the file holds, the watch goes on
                self.error = f"{self.path}: {type(exc).__name__}: {exc}"
                log.exception("config.toml changed but could not be applied")
                continue
            if later:
                log.warning("config: %s apply at the next start", ", ".join(later))


def _stamp(path: Path) -> tuple[float, int] | None:
    """What tells a changed file: its mtime and size; None while it does not exist."""
    with contextlib.suppress(OSError):
        info = path.stat()
        return info.st_mtime, info.st_size
    return None
