"""The daemon's folders are its user's alone: training data, logs, runs and models are private.

The folders AI Forge owns (config, data, state, runtime) are 0700, so nothing below them can be
reached by another local user whatever its own mode; the daemon and its engines run with umask
077, so what they write is 0600. On an install from before, a wider mode is fixed at start and
said (in the log and `system.health`). A folder the daemon did not create, such as the parent of
a `FORGE_SOCKET`, is never changed: a socket folder others can write to is refused instead,
since anyone who can write there can replace the socket.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class UnsafeFolder(Exception):
    """A folder the daemon will not use; the message says why and what to do."""


def _narrow(path: Path, private: int) -> str | None:
    """Give `path` the mode `private` if others can reach it; what was fixed, or None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return None
    os.chmod(path, private)
    return f"{path} was {mode:04o} (open to other users): now {private:04o}"


def own_folder(folder: Path) -> str | None:
    """Create `folder` private, or make an existing one private; what was fixed, or None."""
    if not folder.exists():
        folder.mkdir(parents=True, mode=PRIVATE_DIR)
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
        return None
    return _narrow(folder, PRIVATE_DIR)


def own_file(file: Path) -> str | None:
    """Make an existing file of ours 0600; what was fixed, or None."""
    return _narrow(file, PRIVATE_FILE) if file.is_file() else None


def check_socket_folder(folder: Path, setting: str) -> None:
    """Create a missing socket folder private; refuse one that others can write to."""
    if not folder.exists():
        own_folder(folder)
        return
    st = folder.stat()
    if st.st_mode & 0o022:
        raise UnsafeFolder(
            f"{setting}: the socket's folder {folder} can be written by other users (mode "
            f"{stat.S_IMODE(st.st_mode):04o}), who could replace the socket; use a folder only "
            "you can write to (the default, $XDG_RUNTIME_DIR/forge, is one)"
        )
    if st.st_uid != os.getuid():
        raise UnsafeFolder(
            f"{setting}: the socket's folder {folder} belongs to another user (uid {st.st_uid});"
            " use a folder of your own"
        )
