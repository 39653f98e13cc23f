"""`make demo`: the product on its embedded defaults, in a folder of its own, with no download.

It sets up `FORGE_HOME=.demo`, starts the daemon, builds the tiny local model with a real
`prepare-model` job while printing its log, makes a small demo git repository and adds it as a
source, and waits for the agent's mission for it. In a terminal it then opens `forge tui` on
that daemon, where the mission waits to be approved, and stops the daemon when the TUI quits;
without a terminal it prints what the daemon holds and stops at once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from forge_api.config import default_config_text
from forge_api.paths import resolve_paths
from forge_cli.main import main as forge
from forge_client.client import Client
from forge_client.launch import DaemonStartFailed, daemon_answers, spawn_daemon

DEMO_FILES = {
    "README.md": "# Demo project\n\nA tiny service used to show AI Forge at work.\n\n"
    "## Usage\n\nRun `python app.py` and open the printed address.\n",
    "app.py": 'def greet(name: str) -> str:\n    """Say hello."""\n    return f"hello {name}"\n\n\n'
    'if __name__ == "__main__":\n    print(greet("forge"))\n',
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env=dict(
            os.environ,
            GIT_AUTHOR_NAME="Forge Demo",
            GIT_AUTHOR_EMAIL="demo@example.invalid",
            GIT_COMMITTER_NAME="Forge Demo",
            GIT_COMMITTER_EMAIL="demo@example.invalid",
        ),
    )


def make_demo_repo(repo: Path) -> Path:
    """A git repository with a couple of commits, made once."""
    if (repo / ".git").exists():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    for name, text in DEMO_FILES.items():
        (repo / name).write_text(text)
        _git(repo, "add", name)
        _git(repo, "commit", "-q", "-m", f"Add {name}")
    return repo


def _step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def main() -> int:
    home = Path(os.environ.get("FORGE_DEMO_HOME", ".demo")).resolve()
    os.environ["FORGE_HOME"] = str(home)
    paths = resolve_paths()
    paths.ensure()
    if not paths.config_file.exists():
        # The demo repository lives in the demo folder, and is small: allow it, and propose
        # a mission for it at demo-sized thresholds.
        paths.config_file.write_text(
            default_config_text()
            .replace('allowed_roots = ["~"]', f'allowed_roots = ["~", "{home}"]')
            .replace("min_commits = 3", "min_commits = 2")
            .replace("min_tokens = 2000", "min_tokens = 20")
        )
    shell = f"FORGE_HOME={home} {Path(sys.executable).parent / 'forge'}"

    _step(f"starting the daemon (FORGE_HOME={home})")
    proc: subprocess.Popen[bytes] | None = None
    if daemon_answers(paths):
        print("a demo daemon is already running; using it")
    else:
        try:
            proc = spawn_daemon(paths)
        except DaemonStartFailed as exc:
            raise SystemExit(str(exc)) from None
        print(f"forged is up (pid {proc.pid}); its log: {paths.log_file}")

    try:
        forge(["status"])

        if (paths.models_dir / "tiny-llama" / "config.json").exists():
            _step("the tiny local model is built already (a demo before this one made it)")
        else:
            _step("building the tiny local model: forge jobs submit prepare-model -f")
            code = forge(["jobs", "submit", "prepare-model", "--follow"])
            if code != 0:
                print(f"the prepare-model job did not complete; see `{shell} jobs ls`")
                return code

        _step("adding a demo repository as a source")
        repo = make_demo_repo(home / "repos" / "demo-project")
        with Client(paths.socket_file) as client:
            if not any(s["path"] == str(repo) for s in client.call("sources.list")["sources"]):
                client.call("sources.add", path=str(repo))
        forge(["sources", "ls"])
        # The first mission on a base model waits for a short calibration run (the plan's ETA).
        _step("the agent looked at it and measured this machine: forge missions ls")
        for _ in range(900):
            with Client(paths.socket_file) as client:
                if client.call("missions.list")["missions"]:
                    break
            time.sleep(0.1)
        forge(["missions", "ls"])

        _step("what the daemon holds now")
        forge(["jobs", "ls"])
        print()
        forge(["models", "ls"])

        print(f"\nThe CLI works on it too, in another terminal:\n  {shell} status")
        print(f"  {shell} missions ls        # then: missions approve ID, and jobs logs -f")
        if sys.stdin.isatty() and sys.stdout.isatty():
            _step("opening the TUI: press 3 for missions, a to approve, q to quit")
            time.sleep(1.5)
            from tui.app import run as run_tui

            with contextlib.suppress(KeyboardInterrupt):
                run_tui(paths)
        return 0
    finally:
        if proc is not None:
            # Whichever daemon serves the demo now: this one, or one the TUI's `S` started
            # after this one went away.
            if daemon_answers(paths):
                forge(["daemon", "stop"])  # says "stopped forged (pid …)"
            else:
                print("the demo daemon had stopped already")
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)


if __name__ == "__main__":
    sys.exit(main())
