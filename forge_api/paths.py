"""Where every file of AI Forge lives on disk.

One place decides the layout so the daemon, the CLI, the TUI and the tests agree. Setting
`$FORGE_HOME` roots everything in one folder (tests, demo, several instances side by side);
otherwise platformdirs gives the platform's usual config, data and state folders and the
socket goes to `$XDG_RUNTIME_DIR/forge`, or under the state folder where there is none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "forge"
# sun_path is 108 bytes on Linux and 104 on macOS, terminator included.
MAX_SOCKET_PATH = 103
REMOTE_ENV = "FORGE_REMOTE"
"""Set by `forge --host` to the target: what runs behind its ssh bridge (the TUI) knows the
socket is a bridge to that machine, not this machine's daemon."""


@dataclass(frozen=True)
class ForgePaths:
    """The folders and files one daemon instance uses."""

    config_file: Path
    data_dir: Path
    state_dir: Path
    runtime_dir: Path
    home: Path | None = None
    """`$FORGE_HOME` when the paths came from it: a daemon started for them needs it too."""

    @property
    def db_file(self) -> Path:
        return self.data_dir / "forge.db"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def socket_file(self) -> Path:
        override = os.environ.get("FORGE_SOCKET")
        return Path(override) if override else self.runtime_dir / "forged.sock"

    @property
    def lock_file(self) -> Path:
        return self.runtime_dir / "forged.lock"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "forged.log"

    def run_dir(self, job_id: str) -> Path:
        return self.runs_dir / job_id

    def ensure(self) -> list[str]:
        """Create the folders private to this user (0700), fixing wider modes on folders and
        files of ours; what was fixed, one line each. Raises `UnsafeFolder` for a socket folder
        that others can write to (see `forge_api.private_dirs`)."""
        from forge_api.private_dirs import check_socket_folder, own_file, own_folder

        ours = [self.data_dir, self.state_dir, self.runtime_dir]
        if self.home is None:  # with FORGE_HOME the config sits in the folder the user named
            ours.append(self.config_file.parent)
        else:
            self.home.mkdir(parents=True, exist_ok=True)
        fixed = [own_folder(folder) for folder in ours]
        fixed.append(own_file(self.config_file))
        for folder in (self.runs_dir, self.models_dir, self.datasets_dir):
            folder.mkdir(parents=True, exist_ok=True)
        socket_folder = self.socket_file.parent
        if socket_folder != self.runtime_dir:
            check_socket_folder(socket_folder, f"FORGE_SOCKET={self.socket_file}")
        return [note for note in fixed if note]


def resolve_paths(env: dict[str, str] | None = None) -> ForgePaths:
    """The paths for this process, from `$FORGE_HOME` or the platform's folders."""
    env = dict(os.environ) if env is None else env
    home = env.get("FORGE_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return ForgePaths(
            config_file=root / "config.toml",
            data_dir=root / "data",
            state_dir=root / "state",
            runtime_dir=root / "run",
            home=root,
        )
    state = Path(platformdirs.user_state_dir(APP))
    xdg_runtime = env.get("XDG_RUNTIME_DIR")
    runtime = Path(xdg_runtime) / APP if xdg_runtime else state / "run"
    return ForgePaths(
        config_file=Path(platformdirs.user_config_dir(APP)) / "config.toml",
        data_dir=Path(platformdirs.user_data_dir(APP)),
        state_dir=state,
        runtime_dir=runtime,
    )
