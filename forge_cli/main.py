"""`forge`: the command line, one subcommand per socket method, grouped by noun.

Output is a short human table or, with `--json`, the method's result as JSON for scripts. With
no daemon running, every command that needs it says so in one line and exits 3. Imports stay
light (no pydantic, no Textual on the client path) so a command answers fast; each noun's
commands live in their own module and add themselves to the parser here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from forge_api.version import VERSION
from forge_cli import jobs, mcp, missions, models, sources, system, web
from forge_cli.context import EXIT_ERROR, EXIT_NO_DAEMON, EXIT_USAGE, Cli, Command, Subparsers
from forge_client.client import DaemonNotRunning, DaemonUnresponsive, RemoteError

if TYPE_CHECKING:
    from forge_client.remote import SshBridge


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forge", description="AI Forge: fine-tune local LLMs on your own repositories."
    )
    parser.add_argument("--version", action="version", version=f"forge {VERSION}")
    parser.add_argument(
        "--host",
        metavar="ssh://[USER@]HOST[:PORT]|NAME",
        help="drive the daemon on another machine, through ssh and `forge dial-stdio` there;"
        " NAME: a [hosts.NAME] of config.toml (its target, forge command and environment)",
    )
    parser.add_argument(
        "--remote-forge",
        default="forge",
        metavar="CMD",
        help="the forge command on that machine (default: forge on its PATH)",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the raw result as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: Subparsers, name: str, fn: Command, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_)
        p.set_defaults(fn=fn)
        return p

    for noun in (system, jobs, missions, sources, models, web, mcp):
        noun.register(sub, add)
    return parser


def _bridge(host: str, remote_forge: str) -> SshBridge:
    """Check the remote daemon answers, then point this process's socket at a bridge to it.
    `host` is an ssh:// address, or the name of a `[hosts.NAME]` profile in the config."""
    from forge_api.paths import REMOTE_ENV
    from forge_client.remote import SshBridge, SshTarget

    env: dict[str, str] = {}
    if "://" not in host:
        from forge_api.config import ConfigError, load_config
        from forge_api.paths import resolve_paths

        try:
            hosts = load_config(resolve_paths().config_file).hosts
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if host not in hosts:
            known = ", ".join(sorted(hosts)) or "none in config.toml"
            raise ValueError(
                f"--host {host}: not ssh://… and not a [hosts.{host}] (known: {known})"
            )
        profile = hosts[host]
        host, env = profile.target, profile.env
        remote_forge = profile.forge if remote_forge == "forge" else remote_forge
    # Stopped by a signal from here on, the bridge still takes its folder away (below while it
    # starts, then the `finally` in main): the handlers come before the folder does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(128 + signal.SIGHUP))
    bridge = SshBridge(SshTarget.parse(host), remote_forge, env)
    try:
        if sys.stderr.isatty():
            print(f"connecting to {bridge.target.destination} over ssh…", file=sys.stderr)
        bridge.check()
        os.environ["FORGE_SOCKET"] = str(bridge.start().socket_path)
    except BaseException:
        bridge.close()
        raise
    os.environ[REMOTE_ENV] = host
    return bridge


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bridge = None
    if args.host:
        if args.command in system.LOCAL_ONLY:
            print(
                f"forge: --host drives a remote daemon; `{args.command}` acts on this machine",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            bridge = _bridge(args.host, args.remote_forge)
        except (ValueError, ConnectionError) as exc:
            print(f"forge: {exc}", file=sys.stderr)
            return EXIT_NO_DAEMON
    cli = Cli(args)
    try:
        code: int = args.fn(cli)
        return code
    except (DaemonNotRunning, DaemonUnresponsive) as exc:
        print(f"forge: {exc}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except RemoteError as exc:
        print(f"forge: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, json.JSONDecodeError) as exc:
        print(f"forge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        cli.close()
        if bridge is not None:
            bridge.close()
