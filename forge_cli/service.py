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


def _command() -> list[str]:
    return [sys.executable, "-m", "forged"]


def systemd_unit(paths: ForgePaths) -> str:
    env = ["Environment=PYTHONUNBUFFERED=1"]
    if os.environ.get("FORGE_HOME"):
        env.append(f'Environment="FORGE_HOME={os.environ["FORGE_HOME"]}"')
    return "\n".join(
        [
            "[Unit]",
            "Description=AI Forge daemon (forged): watches repositories, runs fine-tuning jobs",
            "Documentation=https://github.com/ai-forge/ai-forge",
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


def run(action: str, platform: str | None, paths: ForgePaths) -> int:
    platform = platform or ("launchd" if sys.platform == "darwin" else "systemd")
    path = unit_path(platform)
    if action == "install":
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(systemd_unit(paths) if platform == "systemd" else launchd_plist(paths))
        print(f"wrote {path}")
        if platform == "systemd":
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
        if platform == "systemd":
            print(f"first: systemctl --user disable --now {UNIT_NAME}")
        else:
            print(f"first: launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL}")
        path.unlink()
        print(f"removed {path}")
        return 0
    installed = path.exists()
    print(f"unit      {path} ({'installed' if installed else 'not installed'})")
    if platform == "systemd" and installed and shutil.which("systemctl"):
        state = subprocess.run(
            ["systemctl", "--user", "is-active", UNIT_NAME],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"systemd   {state.stdout.strip() or state.stderr.strip()}")
    if platform == "systemd":
        linger = linger_state()
        hint = "" if linger == "on" else f": it stops when you log out ({LINGER_COMMAND})"
        print(f"linger    {linger}{hint}")
    print(
        f"socket    {paths.socket_file} ({'present' if paths.socket_file.exists() else 'absent'})"
    )
    return 0 if installed else 1
