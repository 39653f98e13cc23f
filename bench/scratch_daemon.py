"""A daemon in a throw-away FORGE_HOME for a benchmark, stopped and removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen

from forge_api.paths import ForgePaths, resolve_paths
from forge_cli.main import main as forge
from forge_client.launch import spawn_daemon


@contextmanager
def scratch_daemon(
    prefix: str, before_start: Callable[[ForgePaths], None] | None = None
) -> Iterator[tuple[ForgePaths, Popen[bytes]]]:
    """(paths, daemon process); `before_start` may fill the data dir first."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.environ["FORGE_HOME"] = str(home)  # so `forge` commands reach this daemon
    paths = resolve_paths({"FORGE_HOME": str(home)})
    paths.ensure()
    if before_start is not None:
        before_start(paths)
    try:
        yield paths, spawn_daemon(paths)
    finally:
        forge(["daemon", "stop"])
        shutil.rmtree(home, ignore_errors=True)


def agent_on(model: Path, extra: str = "") -> Callable[[ForgePaths], None]:
    """A `before_start` writing the config of a daemon whose missions train `model` on
    repositories under /tmp, with no Ollama (the chain ends after its eval); `extra`: more
    `[agent]` lines."""

    def configure(paths: ForgePaths) -> None:
        paths.config_file.write_text(
            '[ollama]\nhost = "127.0.0.1:9"\n\n'
            f'[agent]\nallowed_roots = ["/tmp"]\nbase_model = "{model}"\n'
            f"rescan_interval_s = 3600\n{extra}"
        )

    return configure
