"""The daemon's data is its user's alone, and it changes the mode of no folder it did not make.

An old install whose folders and config are open to other users is fixed at start and
`system.health` says so; what the daemon then writes (the store, an imported dataset's copy) is
0600. A socket folder that others can write to (`FORGE_SOCKET=/tmp/…`) is refused with the
reason, and its mode is left as it was.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from engine.synthetic import write_dataset
from tests.support.daemon_harness import ProcessDaemonFactory, short_tmp


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_open_install_is_made_private_and_health_says_so(
    make_process_daemon: ProcessDaemonFactory, tmp_path: Path
) -> None:
    daemon = make_process_daemon()
    paths = daemon.paths
    for folder in (paths.data_dir, paths.state_dir):
        folder.mkdir(parents=True)
        folder.chmod(0o755)
    paths.config_file.chmod(0o644)
    daemon.start()
    assert mode(paths.data_dir) == mode(paths.state_dir) == mode(paths.runtime_dir) == 0o700
    assert mode(paths.config_file) == 0o600
    health = daemon.call("system.health")
    assert health["ok"], health
    fixed = health["checks"]["permissions"]
    assert fixed.startswith("ok (fixed at start:") and f"{paths.data_dir} was 0755" in fixed
    assert "now 0700" in fixed and f"{paths.config_file} was 0644" in fixed

    source = write_dataset(tmp_path / "chat.jsonl", 10)
    source.chmod(0o600)
    copy = Path(daemon.call("datasets.import", path=str(source))["path"])
    assert mode(copy) == 0o600 and mode(paths.db_file) == 0o600


def test_a_socket_folder_others_can_write_to_is_refused_and_left_alone(
    make_process_daemon: ProcessDaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = make_process_daemon()

    def start_with_socket_in(folder: Path) -> None:
        socket = str(folder / "forged.sock")
        monkeypatch.setenv("FORGE_SOCKET", socket)  # where this test's client looks
        daemon.start({"FORGE_SOCKET": socket})

    shared, fresh, mine = short_tmp("shared"), short_tmp("fresh") / "sock", short_tmp("mine")
    try:
        shared.chmod(0o1777)  # like /tmp
        proc = daemon.spawn({"FORGE_SOCKET": str(shared / "forged.sock")})
        assert proc.wait(30) == 1
        said = daemon.log.read_text()
        assert f"the socket's folder {shared} can be written by other users (mode 1777)" in said
        assert mode(shared) == 0o1777  # not chmod-ed

        # A folder of the daemon's own making is private; one of the user's that only they
        # can write to is used as it is.
        start_with_socket_in(fresh)
        assert mode(fresh) == 0o700 and daemon.call("system.health")["ok"]
        daemon.stop()
        mine.chmod(0o755)
        start_with_socket_in(mine)
        assert mode(mine) == 0o755 and daemon.call("system.health")["ok"]
    finally:
        for folder in (shared, fresh.parent, mine):
            shutil.rmtree(folder, ignore_errors=True)
