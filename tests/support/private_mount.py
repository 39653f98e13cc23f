"""A daemon with a folder of its own: it runs in a new user and mount namespace where that folder
is a fresh tmpfs of the given size, seen by the daemon and its children only (a small disk to
fill, or a folder other machines' workers cannot see)."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path


@cache
def tmpfs_unavailable() -> str | None:
    """Why a private tmpfs cannot be mounted here, or None where it can."""
    if shutil.which("unshare") is None:
        return "no unshare(1) here"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot mount a small tmpfs in a user namespace: {probe.stderr.strip()}"
    return None


def on_private_tmpfs(folder: Path, size: str) -> list[str]:
    """The command prefix that runs a program with `folder` (which must exist) a tmpfs of
    `size` (e.g. `1500k`, `8m`) of its own."""
    return [
        "unshare",
        "-rm",
        "sh",
        "-c",
        f'mount -t tmpfs -o size={size} tmpfs "$0" && exec "$@"',
        str(folder),
    ]
