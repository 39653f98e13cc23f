"""`forge missions …`: the agent's training proposals, to read, approve, retry or reject."""

from __future__ import annotations

import sys
from typing import Any, get_args

from forge_api.names import MissionStage
from forge_cli.context import AddCommand, Cli, Subparsers, table
from forge_client.format import ago, clock, mission_eta
from forge_client.kv import parse_settings


def cmd_missions_ls(cli: Cli) -> int:
    params: dict[str, Any] = {"stage": cli.args.stage} if cli.args.stage else {}

    def show(r: dict[str, Any]) -> None:
        rows = [
            [
                m["id"],
                _stage(m),
                mission_eta(m["data"].get("eta_s"), m["data"].get("measuring")),
                ago(m["created_at"]),
                m["title"],
            ]
            for m in r["missions"]
        ]
        table(rows, ["ID", "STAGE", "ETA", "PROPOSED", "TITLE"])

    cli.out(cli.call("missions.list", **params), show)
    return 0


def _stage(m: dict[str, Any]) -> str:
    """A mission's stage, with the step that failed (or was cancelled)."""
    from forge_api.schema import Mission
    from forge_client.record_text import stage_text

    return stage_text(Mission.model_validate(m))


def _show_mission(m: dict[str, Any]) -> None:
    """The mission as the TUI shows it: Markdown, rendered on a terminal, plain when piped.
    (Its model and text load here, not at start: listing stays quick.)"""
    from forge_api.schema import Mission
    from forge_client.record_text import CLI_HINTS, mission_markdown

    text = mission_markdown(Mission.model_validate(m), hints=CLI_HINTS)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        print(text)


def _decided(m: dict[str, Any]) -> None:
    """One line for a decision: the mission's stage now, and the newest job of its chain."""
    from forge_api.schema import Mission
    from forge_client.record_text import stage_text

    mission = Mission.model_validate(m)
    data = mission.data
    job = data.deploy_job or data.eval_job or data.train_job
    held = f", held for quiet hours until {clock(data.held_until)}" if data.held_until else ""
    print(f"{mission.id}: {stage_text(mission)}" + (f"; job {job}{held}" if job else ""))


def cmd_missions_show(cli: Cli) -> int:
    cli.out(cli.call("missions.get", id=cli.args.id), _show_mission)
    return 0


def cmd_missions_approve(cli: Cli) -> int:
    changes = parse_settings(cli.args.set or [])
    cli.out(cli.call("missions.approve", id=cli.args.id, set=changes), _decided)
    return 0


def cmd_missions_retry(cli: Cli) -> int:
    cli.out(cli.call("missions.retry", id=cli.args.id), _decided)
    return 0


def cmd_missions_reject(cli: Cli) -> int:
    cli.out(cli.call("missions.reject", id=cli.args.id, reason=cli.args.reason), _decided)
    return 0


def cmd_missions_dismiss(cli: Cli) -> int:
    cli.out(cli.call("missions.dismiss", id=cli.args.id), _decided)
    return 0


def register(sub: Subparsers, add: AddCommand) -> None:
    """The commands of this module, under `forge`."""
    missions = sub.add_parser("missions", help="training proposals: list, show, approve, reject")
    msub = missions.add_subparsers(dest="missions_action", required=True, metavar="ACTION")
    p = add(msub, "ls", cmd_missions_ls, "list missions")
    p.add_argument("--stage", action="append", choices=get_args(MissionStage))
    p = add(msub, "show", cmd_missions_show, "show a mission")
    p.add_argument("id")
    p = add(msub, "approve", cmd_missions_approve, "approve a mission; its training starts")
    p.add_argument("id")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change the plan first: steps, max_seq_len, rank, base_model, max_minutes, …",
    )
    p = add(msub, "retry", cmd_missions_retry, "run a failed mission again from its failed step")
    p.add_argument("id")
    p = add(msub, "dismiss", cmd_missions_dismiss, "put a failed mission away (`ls` hides it)")
    p.add_argument("id")
    p = add(msub, "reject", cmd_missions_reject, "reject a mission, with a reason")
    p.add_argument("id")
    p.add_argument("--reason", "-r", required=True)
