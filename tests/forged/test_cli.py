"""The `forge` command as a person runs it: real subprocesses against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import forge
from tests.support.daemon_harness import Daemon, ProcessDaemon, wait_for


def test_no_daemon_is_one_line_and_exit_3(tmp_path: Path) -> None:
    for args in (["status"], ["jobs", "ls"], ["missions", "ls"], ["models", "ls"]):
        out = forge(*args, home=tmp_path)
        assert out.returncode == 3
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "the forge daemon is not running" in lines[0]
        assert "forge daemon" in lines[0]


def test_status_and_json(daemon: Daemon) -> None:
    out = forge("status", home=daemon.home)
    assert out.returncode == 0, out.stderr
    assert "accelerator" in out.stdout and str(daemon.socket) in out.stdout
    data = json.loads(forge("status", "--json", home=daemon.home).stdout)
    assert data["socket"] == str(daemon.socket)
    # The CLI and the daemon say the same version: the installed distribution's.
    version = forge("--version", home=daemon.home).stdout.split()
    assert version == ["forge", data["version"]] and data["version"][0].isdigit()


def test_submit_follow_show_and_list(daemon: Daemon, tiny_model: Path) -> None:
    out = forge(
        "jobs", "submit", "prepare-model", "-p", f"path={tiny_model}", "-f", home=daemon.home
    )
    assert out.returncode == 0, out.stderr
    assert f"verifying the model folder {tiny_model}" in out.stdout
    assert "completed]" in out.stderr
    # Piped, its status and each new stage are lines on stderr, never silence, never redrawn.
    said = out.stderr.splitlines()
    assert any(line.endswith(" queued: waiting for its turn]") for line in said), said
    assert any(line.endswith(" verify 0/1]") for line in said), said
    listed = json.loads(forge("jobs", "ls", "--json", home=daemon.home).stdout)
    job_id = listed["jobs"][0]["id"]
    shown = forge("jobs", "show", job_id, home=daemon.home)
    assert "status     completed" in shown.stdout and "artifact   base-model" in shown.stdout
    table = forge("jobs", "ls", "--status", "completed", home=daemon.home).stdout
    assert job_id in table and "prepare-model" in table
    logs = forge("jobs", "logs", job_id, "--tail", "1", home=daemon.home)
    assert logs.stdout.strip() == "done"
    models = forge("models", "ls", home=daemon.home).stdout
    assert "tiny-llama" in models and "1.3M" in models


def test_relative_paths_are_made_absolute(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"text": "hello"}\n')
    # A model that a waiting prepare-model job may build is taken on trust (test_train).
    building = daemon.call("jobs.submit", kind="prepare-model", params={"name": "no-such-model"})
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "forge_cli",
            "jobs",
            "submit",
            "train",
            "--json",
            "-p",
            "dataset=data.jsonl",
            "-p",
            "base_model=no-such-model",
        ],
        env=dict(os.environ, FORGE_HOME=str(daemon.home)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    job = json.loads(out.stdout)
    # A dataset file from outside the data dir is imported first; the job trains on the copy.
    imported = daemon.call("datasets.list")["datasets"][0]
    assert f"imported {tmp_path / 'data.jsonl'} as {imported['id']} (1 examples)" in out.stderr
    assert imported["card"]["imported_from"] == str(tmp_path / "data.jsonl")
    assert job["params"]["dataset"] == imported["path"]
    assert Path(imported["path"]).parent == daemon.paths.datasets_dir
    assert job["params"]["base_model"] == "no-such-model"  # not a path here: left as typed
    for queued in (job, building):
        daemon.call("jobs.cancel", id=queued["id"])


def test_follow_a_failing_job_exits_nonzero(daemon: Daemon, tmp_path: Path) -> None:
    # A path that is not there is refused at once; nothing is queued.
    out = forge("jobs", "submit", "prepare-model", "-p", "path=/no/such/model", home=daemon.home)
    assert out.returncode == 1 and "params.path: /no/such/model: no such model folder" in out.stderr
    assert daemon.call("jobs.list")["total"] == 0
    # A folder that is there but holds no model fails when the engine looks at it.
    out = forge("jobs", "submit", "prepare-model", "-p", f"path={tmp_path}", "-f", home=daemon.home)
    assert out.returncode == 1
    assert f"{tmp_path}/config.json: missing" in out.stdout
    assert "failed" in out.stderr


def test_errors_are_one_clear_line(daemon: Daemon) -> None:
    out = forge("jobs", "show", "job-nope", home=daemon.home)
    assert out.returncode == 1 and out.stderr.strip() == "forge: no job 'job-nope'"
    out = forge("jobs", "submit", "prepare-model", "-p", "layers=0", home=daemon.home)
    assert out.returncode == 1 and "params.layers" in out.stderr
    out = forge("missions", "reject", "m-1", "-r", "not useful", home=daemon.home)
    assert out.returncode == 1 and "no mission" in out.stderr


def test_sources_add_ls_rm(daemon: Daemon, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    added = json.loads(forge("sources", "add", str(repo), "--json", home=daemon.home).stdout)
    assert added["path"] == str(repo.resolve())
    assert str(repo.resolve()) in forge("sources", "ls", home=daemon.home).stdout
    again = forge("sources", "add", str(repo), home=daemon.home)
    assert again.returncode == 1 and "already a source" in again.stderr
    plain = forge("sources", "add", str(tmp_path), home=daemon.home)
    assert plain.returncode == 1 and "not a git work tree" in plain.stderr
    assert forge("sources", "rm", added["id"], home=daemon.home).returncode == 0
    assert "(none)" in forge("sources", "ls", home=daemon.home).stdout


def test_datasets_import_checks_every_line(daemon: Daemon, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": \n')
    out = forge("datasets", "import", str(bad), home=daemon.home)
    assert out.returncode == 1 and f"{bad}:2: not valid JSON" in out.stderr
    # Valid JSON that training would refuse is refused here, with the person's file and line.
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"text": "a"}\n{"text": "b"}\n{"messages": [{"role": "user"}]}\n')
    out = forge("datasets", "import", str(wrong), home=daemon.home)
    assert out.returncode == 1 and f"forge: {wrong}:3: " in out.stderr, out.stderr
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"text": "a"}\n{"prompt": "p", "completion": "c"}\n')
    out = forge("datasets", "import", str(mixed), home=daemon.home)
    assert f"{mixed}:2: a completion example in a text file" in out.stderr, out.stderr
    out = forge("datasets", "import", str(tmp_path / "nope.jsonl"), home=daemon.home)
    assert f"{tmp_path / 'nope.jsonl'}: no such file" in out.stderr, out.stderr
    assert daemon.call("datasets.list")["datasets"] == []  # nothing half-imported
    imported = json.loads(forge("datasets", "import", str(good), "--json", home=daemon.home).stdout)
    assert imported["examples"] == 2
    preview = daemon.call("datasets.preview", id=imported["id"])
    assert preview["examples"] == [{"text": "a"}, {"text": "b"}]
    # The same content again is the same dataset, said so; new content is a new one.
    again = forge("datasets", "import", str(good), home=daemon.home)
    assert again.stdout.startswith(f"already imported as {imported['id']}"), again.stdout
    (tmp_path / "copy.jsonl").write_bytes(good.read_bytes())
    assert forge("datasets", "import", str(tmp_path / "copy.jsonl"), home=daemon.home).stdout
    good.write_text('{"text": "a"}\n{"text": "c"}\n')
    out = forge("datasets", "import", str(good), home=daemon.home)
    assert out.stdout.startswith("imported ds-"), out.stdout
    assert len(daemon.call("datasets.list")["datasets"]) == 2
    # A file that is not there is not taken for a dataset id or a path on the daemon's side.
    out = forge("jobs", "submit", "train", "-p", "dataset=nope.jsonl", home=daemon.home)
    assert out.returncode == 2 and "dataset=nope.jsonl: no such file in" in out.stderr


def test_daemon_stop(process_daemon: ProcessDaemon) -> None:
    # `forge daemon stop` signals the pid the daemon reports: a process's own.
    daemon = process_daemon
    out = forge("daemon", "stop", home=daemon.home)
    assert out.returncode == 0 and "stopped forged" in out.stdout
    assert daemon.proc is not None and daemon.proc.wait(10) == 0
    again = forge("daemon", "stop", home=daemon.home)
    assert again.returncode == 3


def test_config_check_and_init(tmp_path: Path) -> None:
    out = forge("config", "init", home=tmp_path)
    assert out.returncode == 0
    out = forge("config", "check", home=tmp_path)
    assert out.returncode == 0 and "every key at its default" in out.stdout
    (tmp_path / "config.toml").write_text("[jobs]\nmax_parallel = 2\n")
    out = forge("config", "check", home=tmp_path)  # what differs from the defaults, no dump
    assert out.stdout.splitlines()[1:] == [
        "  jobs.max_parallel = 2",
        "every other key at its default (`forge config check --json` shows them all)",
    ]
    assert (
        json.loads(forge("config", "check", "--json", home=tmp_path).stdout)["jobs"]["max_parallel"]
        == 2
    )
    (tmp_path / "config.toml").write_text("[jobs]\ncancel_grace_s = -1\n")
    out = forge("config", "check", home=tmp_path)
    assert out.returncode == 2 and "config.toml:2: jobs.cancel_grace_s" in out.stderr


def test_service_units(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path / "home")}
    env["USER"] = "forge-test-nobody"  # a user without lingering, whatever this machine has
    out = forge("service", "install", home=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    unit = (tmp_path / "cfg" / "systemd" / "user" / "forged.service").read_text()
    assert "Type=notify" in unit and "Restart=on-failure" in unit
    assert f"ExecStart={sys.executable} -m forged" in unit
    assert f'Environment="FORGE_HOME={tmp_path}"' in unit
    assert "systemctl --user enable --now forged.service" in out.stdout
    assert "loginctl enable-linger" in out.stdout
    # Keys and paths go in an environment file beside the config, private, never overwritten.
    env_file = tmp_path / "forged.env"
    assert f"EnvironmentFile=-{env_file}" in unit
    assert oct(env_file.stat().st_mode & 0o777) == "0o600" and "# HF_HOME=" in env_file.read_text()
    assert "https://github.com" not in unit  # no placeholder address
    env_file.write_text("HF_HOME=/data/hf\n")
    again = forge("service", "install", home=tmp_path, env=env)
    assert "already this unit; unchanged" in again.stdout
    assert env_file.read_text() == "HF_HOME=/data/hf\n"
    status = forge("service", "status", home=tmp_path, env=env)
    assert status.returncode == 0
    assert "linger    off: it stops when you log out" in status.stdout
    assert forge("service", "uninstall", home=tmp_path, env=env).returncode == 0
    assert not (tmp_path / "cfg" / "systemd" / "user" / "forged.service").exists()

    out = forge("service", "install", "--platform", "launchd", home=tmp_path, env=env)
    plist = tmp_path / "home" / "Library" / "LaunchAgents" / "dev.aiforge.forged.plist"
    import plistlib

    parsed = plistlib.loads(plist.read_bytes())
    assert parsed["ProgramArguments"] == [sys.executable, "-m", "forged"]
    assert parsed["KeepAlive"] == {"SuccessfulExit": False}
    assert parsed["EnvironmentVariables"]["FORGE_HOME"] == str(tmp_path)
    assert "launchctl bootstrap" in out.stdout


def test_the_cli_loads_no_pydantic_and_no_textual() -> None:
    """The CLI takes its choices from the contract's plain names (`forge_api.names`), so a
    command starts without the models' validation library, and without the TUI's."""
    code = (
        "import sys, forge_cli.main;"
        "print(sorted({'pydantic', 'textual', 'forged'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_doctor_says_what_is_ready_and_what_to_do(daemon: Daemon) -> None:
    out = forge("doctor", "--json", home=daemon.home)
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert out.returncode == 0, out.stdout  # nothing fails on a fresh instance; some warn
    assert checks["torch"]["state"] == "ok" and "build" in checks["torch"]["says"]
    assert checks["backend peft"] == {
        "name": "backend peft",
        "state": "ok",
        "says": "trains here",
        "fix": "",
    }
    assert checks["daemon"]["state"] == "ok" and checks["daemon store"]["state"] == "ok"
    assert checks["config"]["state"] == "ok"
    # No base model yet: a warning with the way to get one.
    assert checks["base model"]["state"] == "warn"
    assert "forge models import" in checks["base model"]["fix"]
    assert "tracking" not in checks  # a line only where [tracking] asks for something
    # make fetched llama.cpp's converter; without it the fix names the command.
    assert checks["gguf"]["state"] == "ok" and "GGUF LoRA adapters" in checks["gguf"]["says"]
    gone = forge("doctor", "--json", home=daemon.home, env={"FORGE_LLAMA_CPP": "/nonexistent"})
    missing = {c["name"]: c for c in json.loads(gone.stdout)}["gguf"]
    assert missing["state"] == "warn" and "engine.llama_cpp_tools fetch" in missing["fix"]
    (daemon.home / "config.toml").write_text('[tracking]\nmlflow_uri = "http://127.0.0.1:9"\n')
    checks = {c["name"]: c for c in json.loads(forge("doctor", "--json", home=daemon.home).stdout)}
    assert checks["tracking"]["says"] == "metrics also go to MLflow"
    # A config with a wrong value is a failure, and the exit code says so.
    (daemon.home / "config.toml").write_text("[jobs]\nmax_parallel = 0\n")
    bad = forge("doctor", home=daemon.home)
    assert bad.returncode == 1
    assert any(
        line.startswith("FAIL  config") and "jobs.max_parallel" in line
        for line in bad.stdout.splitlines()
    ), bad.stdout


def test_a_changed_config_is_taken_without_a_restart(daemon: Daemon) -> None:
    config = daemon.home / "config.toml"
    config.write_text("[jobs]\nmax_parallel = 2\n[agent]\nrescan_interval_s = 60\n")
    out = forge("config", "reload", home=daemon.home)
    assert out.returncode == 0, out.stderr
    applied, later = out.stdout.splitlines()
    assert applied.startswith("applied: ")
    assert {"agent.rescan_interval_s", "jobs.max_parallel"} <= set(applied[9:].split(", "))
    assert later == "at the next start: agent.rescan_interval_s"
    assert daemon.call("system.status")["queue"]["max_parallel"] == 2
    # A file that does not validate changes nothing, and says where it is wrong.
    config.write_text("[jobs]\nmax_parallel = 0\n")
    bad = forge("config", "reload", home=daemon.home)
    assert bad.returncode == 1 and "config.toml:2: jobs.max_parallel" in bad.stderr
    assert "nothing changed" in bad.stderr
    assert daemon.call("system.status")["queue"]["max_parallel"] == 2
    health = daemon.call("system.health")
    assert not health["ok"] and "last good config" in health["checks"]["config"]
    # Saved again, the file is taken on its own (no reload asked for).
    config.write_text("[jobs]\nmax_parallel = 3\n")
    wait_for(lambda: daemon.call("system.status")["queue"]["max_parallel"] == 3, timeout=20)
    assert daemon.call("system.health")["checks"]["config"] == "ok"
    assert "config reloaded: " in daemon.log.read_text()
    # One byte that is not UTF-8: the watch goes on, and health says where the file is wrong.
    config.write_bytes(b"[jobs]\nmax_parallel = 4 # \xff\n")
    check = wait_for(
        lambda: "not UTF-8" in (c := daemon.call("system.health")["checks"]["config"]) and c,
        timeout=20,
    )
    assert "config.toml:2: not UTF-8 (byte 0xff" in check, check
    config.write_text("[jobs]\nmax_parallel = 1\n")
    wait_for(lambda: daemon.call("system.status")["queue"]["max_parallel"] == 1, timeout=20)
