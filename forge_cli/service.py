"""`forge service install|uninstall|status`: run the daemon as a systemd user service or a
launchd agent.

We write the unit and print the commands that enable it rather than running them, so nothing
changes on the machine behind the person's back. The unit runs the daemon (`python -m forged`)
with this very interpreter and, when set, this `FORGE_HOME`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from forge_api.paths import ForgePaths

UNIT_NAME = "forged.service"
LAUNCHD_LABEL = "dev.aiforge.forged"

LINGER_COMMAND = 'loginctl enable-linger "$USER"'
LINGER_NOTE = f"""\
Over SSH: a user service stops when your last session ends unless lingering is on.
Turn it on once, so forged keeps training after you log out:
    {LINGER_COMMAND}
"""


def linger_state() -> str:
    """Whether systemd keeps this user's services running with no session open: "on" or "off".
    Asked of loginctl; without it, logind's record (a file named after the user) is looked for."""
    user = os.environ.get("USER") or Path.home().name
    if shutil.which("loginctl"):
        done = subprocess.run(
            ["loginctl", "show-user", user, "--property=Linger", "--value"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip() in ("yes", "no"):
            return "on" if done.stdout.strip() == "yes" else "off"
    return "on" if Path("/var/lib/systemd/linger", user).exists() else "off"


ENV_TEMPLATE = """\
# Environment for the forged service (systemd's EnvironmentFile=; `forge service install` wrote
# this once and never overwrites it). One NAME=value a line; restart the service after a change:
#     systemctl --user restart forged.service
#
# Where Hugging Face downloads go (`forge models pull`), and where Ollama listens:
# HF_HOME=/data/huggingface
# OLLAMA_HOST=127.0.0.1:11434
# Which GPUs jobs may use:
# CUDA_VISIBLE_DEVICES=0
# The key of the LLM provider the agent's advisor uses ([advisor] model), e.g.:
# OPENAI_API_KEY=sk-...
"""


def _command() -> list[str]:
    return [sys.executable, "-m", "forged"]


def env_file(paths: ForgePaths) -> Path:
    """The service's environment file, beside config.toml: keys and paths, never in the unit."""
    return paths.config_file.parent / "forged.env"


def _guide() -> Path | None:
    """The user's guide of this checkout, for the unit's Documentation= (none when installed
    without it)."""
    guide = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
    return guide if guide.exists() else None


def systemd_unit(paths: ForgePaths) -> str:
    env = ["Environment=PYTHONUNBUFFERED=1"]
    if os.environ.get("FORGE_HOME"):
        env.append(f'Environment="FORGE_HOME={os.environ["FORGE_HOME"]}"')
    # The leading "-": the service starts without the file too.
    env.append(f"EnvironmentFile=-{env_file(paths)}")
    guide = _guide()
    return "\n".join(
        [
            "[Unit]",
            "Description=AI Forge daemon (forged): watches repositories, runs fine-tuning jobs",
            *([f"Documentation=file://{guide}"] if guide else []),
            "",
            "[Service]",
            # READY=1 is sent once the socket listens; STOPPING=1 on the way out.
            "Type=notify",
            "NotifyAccess=main",
            "ExecStart=" + " ".join(_command()),
            *env,
            "Restart=on-failure",
            "RestartSec=5",
            # SIGTERM goes to the daemon alone: it stops its jobs (they checkpoint) itself.
            "KillMode=mixed",
            "TimeoutStopSec=60",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def launchd_plist(paths: ForgePaths) -> str:
    args = "\n".join(f"        <string>{escape(a)}</string>" for a in _command())
    env = {"PYTHONUNBUFFERED": "1"}
    if os.environ.get("FORGE_HOME"):
        env["FORGE_HOME"] = os.environ["FORGE_HOME"]
    env_xml = "\n".join(
        f"        <key>{escape(k)}</key><string>{escape(v)}</string>" for k, v in env.items()
    )
    log = escape(str(paths.log_file))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key><string>{LAUNCHD_LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{args}
    </array>
    <key>EnvironmentVariables</key>
    <dict>
{env_xml}
    </dict>
    <key>RunAtLoad</key><true/>
    <key>KeepAlive</key>
    <dict><key>SuccessfulExit</key><false/></dict>
    <key>StandardOutPath</key><string>{log}</string>
    <key>StandardErrorPath</key><string>{log}</string>
</dict>
</plist>
"""


def unit_path(platform: str) -> Path:
    if platform == "launchd":
        return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user" / UNIT_NAME


def _systemd_says(question: str) -> str:
    """`systemctl --user is-active|is-enabled forged.service`, or "unknown" without systemctl."""
    if not shutil.which("systemctl"):
        return "unknown"
    done = subprocess.run(
        ["systemctl", "--user", question, UNIT_NAME], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or done.stderr.strip() or "unknown"


def run(action: str, platform: str | None, paths: ForgePaths) -> int:
    platform = platform or ("launchd" if sys.platform == "darwin" else "systemd")
    path = unit_path(platform)
    if action == "install":
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        text = systemd_unit(paths) if platform == "systemd" else launchd_plist(paths)
        before = path.read_text() if path.exists() else None
        path.write_text(text)
        if before is None:
            print(f"wrote {path}")
        elif before == text:
            print(f"{path} is already this unit; unchanged")
        else:
            old = next((x for x in before.splitlines() if x.startswith("ExecStart=")), "?")
            print(f"replaced {path} (it had {old}); restart the service to use the new one")
        if platform == "systemd":
            env = env_file(paths)
            if not env.exists():
                env.parent.mkdir(parents=True, exist_ok=True)
                env.write_text(ENV_TEMPLATE)
                env.chmod(0o600)
            print(f"Its environment (HF_HOME, OLLAMA_HOST, CUDA_VISIBLE_DEVICES, keys): {env}")
            print("Enable and start it:")
            print("    systemctl --user daemon-reload")
            print(f"    systemctl --user enable --now {UNIT_NAME}")
            print(f"Its log: journalctl --user -u {UNIT_NAME} -f")
            if linger_state() != "on":
                print(LINGER_NOTE)
        else:
            print("Load and start it:")
            print(f"    launchctl bootstrap gui/$(id -u) {path}")
            print(f"Its log: {paths.log_file}")
        return 0
    if action == "uninstall":
        if not path.exists():
            print(f"no service installed at {path}")
            return 0
        if platform == "systemd" and _systemd_says("is-enabled") in ("enabled", "linked"):
            # Removed while enabled, systemd would keep a dangling unit running: stop it first.
            print(f"{UNIT_NAME} is enabled; stop and disable it first, then uninstall again:")
            print(f"    systemctl --user disable --now {UNIT_NAME}")
            return 1
        if platform == "launchd":
            print(f"if it is loaded, unload it too: launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL}")
        path.unlink()
        print(f"removed {path}")
        return 0
    installed = path.exists()
    print(f"unit      {path} ({'installed' if installed else 'not installed'})")
    if platform == "systemd" and installed and shutil.which("systemctl"):
        print(f"systemd   {_systemd_says('is-active')}, {_systemd_says('is-enabled')}")
    if platform == "systemd":
        linger = linger_state()
        hint = "" if linger == "on" else f": it stops when you log out ({LINGER_COMMAND})"
        print(f"linger    {linger}{hint}")
    print(
        f"socket    {paths.socket_file} ({'present' if paths.socket_file.exists() else 'absent'})"
    )
    return 0 if installed else 1
