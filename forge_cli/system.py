"""`forge status`, `daemon`, `config`, `service`, `dial-stdio` and `tui`: the commands about the
daemon itself and this machine rather than its jobs."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from forge_cli.context import (
    EXIT_ERROR,
    EXIT_NO_DAEMON,
    EXIT_USAGE,
    AddCommand,
    Cli,
    Subparsers,
)
from forge_client.format import progress_text, size

LOCAL_ONLY = ("daemon", "service", "config", "dial-stdio", "doctor")
"""Commands that act on this machine, never through `--host`."""


def _doctor(cli: Cli) -> int:
    from forge_cli.doctor import cmd_doctor  # loaded when asked for: it is the slow command

    return cmd_doctor(cli)


def cmd_status(cli: Cli) -> int:
    def show(s: dict[str, Any]) -> None:
        acc = s["accelerator"]
        print(f"forged {s['version']} (pid {s['pid']}), up {int(s['uptime_s'])} s")
        print(f"socket       {s['socket']}")
        print(f"data         {s['data_dir']}")
        mem = f" ({size(acc['memory_bytes'])})" if acc.get("memory_bytes") else ""
        count = f"{acc['count']} × " if acc.get("count", 1) > 1 else ""
        print(f"accelerator  {acc['kind']}: {count}{acc['name']}{mem}")
        print(
            f"memory       {size(s['memory_available_bytes'])} free of "
            f"{size(s['memory_total_bytes'])}"
        )
        q = s["queue"]
        print(
            f"queue        {q['queued']} queued, {q['running']} running (max {q['max_parallel']})"
        )
        for job in s["running"]:
            progress = progress_text(job.get("progress"))
            print(f"running      {job['id']} {job['kind']} {job['name']} {progress}")

    cli.out(cli.call("system.status"), show)
    return 0


def cmd_daemon(cli: Cli) -> int:
    from forged.daemon import main as run_daemon

    return run_daemon(cli.paths)


def _lock_holder(lock_file: Path) -> int | None:
    """The pid of the daemon holding the instance lock, or None when nobody holds it."""
    import fcntl

    try:
        with open(lock_file) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None  # we could take it: no daemon holds it
    except BlockingIOError:
        return int(lock_file.read_text().strip())
    except (OSError, ValueError):
        return None


def cmd_daemon_stop(cli: Cli) -> int:
    """SIGTERM to the daemon holding the instance lock; done when it lets go of the lock."""
    pid = _lock_holder(cli.paths.lock_file)
    if pid is None:
        print(f"forge: no daemon is running for {cli.paths.runtime_dir}", file=sys.stderr)
        return EXIT_NO_DAEMON
    os.kill(pid, signal.SIGTERM)
    for _ in range(1200):
        if _lock_holder(cli.paths.lock_file) is None:
            print(f"stopped forged (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"forge: forged (pid {pid}) is still stopping", file=sys.stderr)
    return EXIT_ERROR


def cmd_config(cli: Cli) -> int:
    from forge_api.config import (
        Config,
        ConfigError,
        changed_keys,
        default_config_text,
        flat_config,
        load_config,
    )

    path = cli.paths.config_file
    if cli.args.action == "reload":

        def said(r: dict[str, Any]) -> None:
            if not r["changed"]:
                print(f"{path}: nothing changed")
                return
            print(f"applied: {', '.join(r['changed'])}")
            if r["restart_needed"]:
                print(f"at the next start: {', '.join(r['restart_needed'])}")

        cli.out(cli.call("system.reload_config"), said)
    elif cli.args.action == "path":
        print(path)
    elif cli.args.action == "init":
        if path.exists():
            print(f"forge: {path} exists; not overwriting it", file=sys.stderr)
            return EXIT_ERROR
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_config_text())
        print(f"wrote {path}")
    else:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(f"forge: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if cli.args.json:
            print(json.dumps(config.model_dump(), indent=2))
            return 0
        where = path if path.exists() else f"{path} (absent: defaults)"
        print(f"{where}: valid")
        mine, changed = flat_config(config), changed_keys(Config(), config)
        for key in changed:
            print(f"  {key} = {json.dumps(mine[key])}")
        print(
            f"{'every key' if not changed else 'every other key'} at its default"
            " (`forge config check --json` shows them all)"
        )
    return 0


def cmd_service(cli: Cli) -> int:
    from forge_cli import service

    return service.run(cli.args.action, cli.args.platform, cli.paths)


def cmd_dial_stdio(cli: Cli) -> int:
    from forge_client.remote import dial_stdio

    return dial_stdio(cli.paths.socket_file)


def cmd_tui(cli: Cli) -> int:
    """Textual is imported only here, so the other commands start fast."""
    from tui.app import run

    return run(cli.paths)


def register(sub: Subparsers, add: AddCommand) -> None:
    """The commands of this module, under `forge`."""
    add(sub, "status", cmd_status, "what the daemon and the machine are doing")
    add(
        sub,
        "doctor",
        _doctor,
        "is this machine ready: accelerator, torch, backends, disk, daemon, Ollama, base model",
    )

    daemon = sub.add_parser("daemon", help="run the daemon in the foreground, or stop it")
    daemon.set_defaults(fn=cmd_daemon, json=False)
    dsub = daemon.add_subparsers(dest="daemon_action")
    add(dsub, "run", cmd_daemon, "run in the foreground (what the service runs)")
    add(dsub, "stop", cmd_daemon_stop, "stop the running daemon (SIGTERM) and wait")

    tui = sub.add_parser("tui", help="the terminal UI: jobs, missions, logs, models, playground")
    tui.set_defaults(fn=cmd_tui, json=False)

    dial = sub.add_parser(
        "dial-stdio", help="join stdin/stdout to the daemon's socket (what --host runs over ssh)"
    )
    dial.set_defaults(fn=cmd_dial_stdio, json=False)

    config = sub.add_parser("config", help="the config file: path, check, init, reload")
    config.add_argument(
        "action", choices=["path", "check", "init", "reload"], nargs="?", default="check"
    )
    config.add_argument("--json", action="store_true", help="check: every key, as JSON")
    config.set_defaults(fn=cmd_config)

    service = sub.add_parser(
        "service", help="run the daemon as a systemd user service or launchd agent"
    )
    service.add_argument("action", choices=["install", "uninstall", "status"])
    service.add_argument(
        "--platform", choices=["systemd", "launchd"], help="default: this machine's"
    )
    service.set_defaults(fn=cmd_service, json=False)
