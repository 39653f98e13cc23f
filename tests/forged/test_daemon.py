"""The daemon process itself: one per socket, private files, config errors, systemd readiness,
the peer-uid check, and no heavy imports at start-up."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon_harness import ProcessDaemon, ProcessDaemonFactory, short_tmp, wait_for
from tests.support.rawsock import Raw


@pytest.fixture
def daemon(process_daemon: ProcessDaemon) -> ProcessDaemon:
    """Every test here is about the daemon process itself."""
    return process_daemon


def test_second_daemon_refuses_with_a_clear_message(daemon: ProcessDaemon) -> None:
    second = daemon.spawn()
    assert second.wait(30) == 1
    assert "another forged is already running" in daemon.log.read_text()
    assert daemon.call("system.health")["ok"]


def test_stale_socket_is_replaced(make_process_daemon: ProcessDaemonFactory) -> None:
    daemon = make_process_daemon()
    daemon.paths.runtime_dir.mkdir(parents=True)
    # A socket file nobody listens on any more, as a crashed daemon leaves it.
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(daemon.socket))
    dead.close()
    assert daemon.socket.exists()
    daemon.start()
    assert daemon.call("system.health")["ok"]


def test_socket_and_folder_are_private(daemon: ProcessDaemon) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700


def test_runtime_dir_layout_without_forge_home(tmp_path: Path) -> None:
    from forge_api.paths import resolve_paths

    paths = resolve_paths({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert paths.socket_file == tmp_path / "forge" / "forged.sock"
    fallback = resolve_paths({})
    assert fallback.socket_file.parent.name == "run"
    assert fallback.socket_file.parent.parent == fallback.state_dir


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("[jobs]\nmax_parallel = 0\n", "config.toml:2: jobs.max_parallel: Input should be greater"),
        ("[jobs]\nmax_paralel = 2\n", "config.toml:2: jobs.max_paralel: unknown key"),
        ("[daemon]\n\nlog_level = 'loud'\n", "config.toml:3: daemon.log_level:"),
        ("[colours]\nx = 1\n", "config.toml:1: colours: unknown key"),
        ('[agent]\nquiet_hours = "9-5"\n', "config.toml:2: agent.quiet_hours: String should match"),
        ("[jobs\n", "not valid TOML"),
    ],
)
def test_bad_config_refuses_to_start_and_names_the_key(
    make_process_daemon: ProcessDaemonFactory, config: str, expected: str
) -> None:
    daemon = make_process_daemon(config=config)
    proc = daemon.spawn()
    assert proc.wait(30) == 2
    assert expected in daemon.log.read_text()
    assert not daemon.socket.exists()


def test_sd_notify_ready_and_stopping(make_process_daemon: ProcessDaemonFactory) -> None:
    daemon = make_process_daemon()
    notify_path = short_tmp("ns") / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(30)
    try:
        daemon.start(extra_env={"NOTIFY_SOCKET": str(notify_path)})
        assert listener.recv(100) == b"READY=1"
        # READY=1 means the socket already answers.
        assert daemon.call("system.health")["ok"]
        assert daemon.stop() == 0
        assert listener.recv(100) == b"STOPPING=1"
    finally:
        listener.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_other_users_are_refused(daemon: ProcessDaemon) -> None:
    # Open the file permissions so only the daemon's own peer-uid check stands in the way.
    os.chmod(daemon.home, 0o755)
    os.chmod(daemon.socket.parent, 0o755)
    os.chmod(daemon.socket, 0o666)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: become `nobody`, connect, report the reply through the pipe
        try:
            os.setgid(65534)
            os.setuid(65534)
            # The refusal comes at once, unasked: the daemon checks the peer when it accepts,
            # then closes (sending a request first could meet the closed socket).
            raw = Raw(daemon.socket, timeout=10)
            reply = raw.sock.makefile("rb").readline()
            os.write(write_end, reply or b"closed")
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as fh:
        answer = fh.read().decode()
    assert "forbidden: not the daemon's user" in answer, answer
    assert '"result"' not in answer
    assert daemon.call("system.health")["ok"]


def test_daemon_start_imports_nothing_heavy() -> None:
    code = (
        "import sys, forged.daemon, forged.api;"
        "heavy={'torch','transformers','peft','unsloth','mlx','litellm','tokenizers'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_running_daemon_has_no_heavy_modules_loaded(daemon: ProcessDaemon) -> None:
    assert daemon.proc is not None
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    assert "libtorch" not in maps and "site-packages/torch" not in maps


def test_subscriber_count_and_status(daemon: ProcessDaemon) -> None:
    raw = Raw(daemon.socket)
    raw.request("events.subscribe", {})
    raw.recv()
    status = daemon.call("system.status")
    assert status["subscribers"] == 1
    assert status["accelerator"]["kind"] in {"cpu", "cuda", "mps"}
    assert status["queue"] == {"queued": 0, "running": 0, "max_parallel": 1}
    raw.close()
    wait_for(lambda: daemon.call("system.status")["subscribers"] == 0, timeout=10)
