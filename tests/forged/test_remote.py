"""`forge --host ssh://user@box …`: the laptop's CLI and TUI drive a daemon on another machine
through ssh and `forge dial-stdio` there. No sshd runs here, so ssh itself is stood in for
by tests/support/fake_ssh.py (it runs the remote command on this machine, as sshd would on
the box); the daemon, `forge dial-stdio` and the bridge are the real ones. A last test uses
the real ssh to localhost where that works, and skips saying so where it does not."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from forge_api.paths import REMOTE_ENV, resolve_paths
from forge_client.remote import SshBridge, SshTarget, control_dir
from tests.support.cli import forge
from tests.support.daemon_harness import Daemon, wait_for
from tests.tui.pilot import notices, run_app, until
from tui.app import ForgeApp
from tui.widgets.connection_bar import ConnectionBar

FAKE_SSH = f"{sys.executable} {Path(__file__).parent.parent / 'support' / 'fake_ssh.py'}"
REMOTE_FORGE = f"{sys.executable} -m forge_cli"


@pytest.fixture
def ssh_env(daemon: Daemon, tmp_path: Path) -> dict[str, str]:
    """The laptop's environment: its own (empty) forge home, and ssh that reaches `daemon`."""
    return {
        "FORGE_SSH": FAKE_SSH,
        "FAKE_SSH_LOG": str(tmp_path / "ssh.log"),
        "FAKE_SSH_REMOTE_HOME": str(daemon.home),
    }


def remote(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    host = ["--host", "ssh://alice@gpu-box:2222", "--remote-forge", REMOTE_FORGE]
    return forge(*host, *args, home=tmp_path / "laptop", env=env)


def test_the_cli_drives_a_remote_daemon(
    daemon: Daemon, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "no-model"  # on "the box" (this machine): a folder with no model in it
    empty.mkdir()
    out = remote(
        "jobs",
        "submit",
        "prepare-model",
        "--json",
        "-p",
        f"path={empty}",
        env=ssh_env,
        tmp_path=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert daemon.call("jobs.get", id=job["id"])["name"] == f"prepare {empty}"  # on the box
    listed = remote("jobs", "ls", "--json", env=ssh_env, tmp_path=tmp_path)
    assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job["id"]]
    # Followed to its end, its log streamed back over the bridge.
    follow = remote("jobs", "logs", job["id"], "-f", env=ssh_env, tmp_path=tmp_path)
    assert f"{empty}/config.json: missing" in follow.stdout
    calls = Path(ssh_env["FAKE_SSH_LOG"]).read_text().splitlines()
    assert calls and all("alice@gpu-box" in c for c in calls)
    first = shlex.split(calls[0])
    assert first[first.index("-p") + 1] == "2222" and "ControlMaster=auto" in first
    assert first[-2:] == ["--", f"{REMOTE_FORGE} dial-stdio"]
    # One master connection per host for every command (it outlives each by a minute), kept
    # in a folder of this user's alone; an unreachable host is given up in seconds.
    control = control_dir()
    assert f"ControlPath={control}/%C" in first and "ConnectTimeout=10" in first
    assert oct(control.stat().st_mode & 0o777) == "0o700"
    assert not any("-O" in shlex.split(c) for c in calls)  # the master is not shut each time


def test_a_remote_command_stopped_by_a_signal_leaves_no_bridge_behind(
    daemon: Daemon, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "slow"})
    before = set(Path(tempfile.gettempdir()).glob("forge-bridge-*"))
    host = ["--host", "ssh://alice@gpu-box", "--remote-forge", REMOTE_FORGE]
    follow = subprocess.Popen(
        [sys.executable, "-m", "forge_cli", *host, "jobs", "logs", job["id"], "-f"],
        env=dict(os.environ, FORGE_HOME=str(tmp_path / "laptop"), **ssh_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    bridge = wait_for(
        lambda: next(iter(set(Path(tempfile.gettempdir()).glob("forge-bridge-*")) - before), None)
    )
    wait_for(lambda: (bridge / "forged.sock").exists())
    follow.send_signal(signal.SIGTERM)
    assert follow.wait(30) == 128 + signal.SIGTERM
    assert not bridge.exists()
    daemon.call("jobs.cancel", id=job["id"])


def test_unreachable_hosts_and_stopped_daemons_are_one_clear_line(
    daemon: Daemon, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    refused = remote(
        "status", env=ssh_env | {"FAKE_SSH_REFUSE": "Connection refused"}, tmp_path=tmp_path
    )
    assert refused.returncode == 3
    assert refused.stderr.strip() == (
        "forge: cannot reach the forge daemon on alice@gpu-box over ssh: "
        "ssh: connect to host gpu-box port 22: Connection refused"
    )
    daemon.stop()
    stopped = remote("status", env=ssh_env, tmp_path=tmp_path)
    assert stopped.returncode == 3
    assert "cannot reach the forge daemon on alice@gpu-box over ssh: " in stopped.stderr
    assert f"forge dial-stdio: no daemon answers on {daemon.socket}" in stopped.stderr
    wrong = remote("daemon", "run", env=ssh_env, tmp_path=tmp_path)
    assert wrong.returncode == 2 and "acts on this machine" in wrong.stderr
    bad = forge("--host", "http://box", "status", home=tmp_path / "laptop")
    assert "expected ssh://[user@]host[:port]" in bad.stderr


def test_the_tui_drives_a_remote_daemon_over_the_bridge(
    daemon: Daemon, ssh_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ssh_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(REMOTE_ENV, "ssh://alice@gpu-box")  # as `forge --host` sets it
    bridge = SshBridge(SshTarget.parse("ssh://alice@gpu-box"), REMOTE_FORGE)
    bridge.check()
    monkeypatch.setenv("FORGE_SOCKET", str(bridge.start().socket_path))
    laptop = resolve_paths({"FORGE_HOME": str(tmp_path / "laptop")})
    assert oct(os.stat(bridge.socket_path).st_mode & 0o777) == "0o600"

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the remote daemon online", lambda: app.online)
        # The header names the machine, not the bridge's socket; `S` starts nothing here.
        bar = app.screen.query_one(ConnectionBar)
        await until(pilot, "the host in the header", lambda: "gpu-box" in str(bar.render()))
        await app.action_start_daemon()  # (its key is offered only while offline)
        await until(
            pilot,
            "the daemon-is-remote notice",
            lambda: any("the daemon runs on ssh://alice@gpu-box" in n for n in notices(app)),
        )
        job = daemon.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"})  # no model
        await pilot.press("2")

        def failed_row() -> bool:
            table = app.screen.query_one("#jobs", DataTable)
            return job["id"] in table.rows and "failed" in str(table.get_row(job["id"]))

        await until(pilot, "the remote job, failed", failed_row)

    try:
        run_app(laptop, scenario)
    finally:
        bridge.close()
    assert not bridge.folder.exists()


def _ssh_to_localhost() -> str | None:
    try:
        probe = subprocess.run(
            ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "localhost", "true"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no ssh here: {exc}"
    if probe.returncode != 0:
        return f"ssh localhost does not log in without a password here: {probe.stderr.strip()}"
    return None


@pytest.mark.skipif(_ssh_to_localhost() is not None, reason=str(_ssh_to_localhost()))
def test_real_ssh_to_localhost(daemon: Daemon, tmp_path: Path) -> None:
    env = {"FORGE_SOCKET": "", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = forge("--host", "ssh://localhost", "status", "--json", home=tmp_path / "laptop", env=env)
    assert out.returncode == 0, out.stderr


def test_a_named_host_carries_its_target_forge_and_environment(
    daemon: Daemon, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    """`forge --host box …` with `[hosts.box]` in the laptop's config: its FORGE_HOME on the box
    is the profile's (the login's own would be another instance there)."""
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "config.toml").write_text(
        "[hosts.box]\n"
        'target = "ssh://alice@gpu-box:2222"\n'
        f'forge = "{REMOTE_FORGE}"\n'
        f'env = {{FORGE_HOME = "{daemon.home}"}}\n'
    )
    elsewhere = ssh_env | {"FAKE_SSH_REMOTE_HOME": str(tmp_path / "not-the-instance")}
    out = forge("--host", "box", "status", "--json", home=laptop, env=elsewhere)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["socket"] == str(daemon.socket)
    call = shlex.split(Path(ssh_env["FAKE_SSH_LOG"]).read_text().splitlines()[0])
    assert call[-1] == f"env FORGE_HOME={daemon.home} {REMOTE_FORGE} dial-stdio"
    unknown = forge("--host", "nobox", "status", home=laptop, env=elsewhere)
    assert unknown.returncode == 3 and "not a [hosts.nobox] (known: box)" in unknown.stderr
