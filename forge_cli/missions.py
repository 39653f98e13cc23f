"""`forge missions …`: the agent's training proposals, to read, approve, retry or reject."""

from __future__ import annotations

import json
from typing import Any, get_args

from forge_api.names import MissionStage
from forge_cli.context import AddCommand, Cli, Subparsers, table
from forge_client.format import ago
from forge_client.kv import parse_settings


def cmd_missions_ls(cli: Cli) -> int:
    params: dict[str, Any] = {"stage": cli.args.stage} if cli.args.stage else {}

    def show(r: dict[str, Any]) -> None:
        rows = [[m["id"], _stage(m), ago(m["created_at"]), m["title"]] for m in r["missions"]]
        table(rows, ["ID", "STAGE", "PROPOSED", "TITLE"])

    cli.out(cli.call("missions.list", **params), show)
    return 0


def _stage(m: dict[str, Any]) -> str:
    """A mission's stage, with the step that failed."""
    return f"failed at {m['failed_step']}" if m["stage"] == "failed" else str(m["stage"])


def _show_mission(m: dict[str, Any]) -> None:
    for key in ("id", "title", "stage", "failure", "source_id", "reason"):
        if m.get(key):
            print(f"{key:<10}{_stage(m) if key == 'stage' else m[key]}")
    print(f"{'proposed':<10}{ago(m['created_at'])}")
    data = dict(m.get("data") or {})
    if results := data.pop("results", None):
        rows = [
            [
                name,
                f"{row['loss']:.4f}",
                f"{row['perplexity']:.2f}",
                "" if row["change_pct"] is None else f"{row['change_pct']:+.1f} %",
            ]
            for name, row in results["models"].items()
        ]
        print("results   held-out, on the mission's validation examples")
        table(rows, ["MODEL", "LOSS", "PERPLEXITY", "CHANGE"])
        print(f"{'verdict':<10}{results['summary']}")
    for key, value in data.items():
        print(f"{key:<10}{json.dumps(value) if not isinstance(value, str) else value}")


def cmd_missions_show(cli: Cli) -> int:
    cli.out(cli.call("missions.get", id=cli.args.id), _show_mission)
    return 0


def cmd_missions_approve(cli: Cli) -> int:
    changes = parse_settings(cli.args.set or [])
    cli.out(cli.call("missions.approve", id=cli.args.id, set=changes), _show_mission)
    return 0


def cmd_missions_retry(cli: Cli) -> int:
    cli.out(cli.call("missions.retry", id=cli.args.id), _show_mission)
    return 0


def cmd_missions_reject(cli: Cli) -> int:
    cli.out(cli.call("missions.reject", id=cli.args.id, reason=cli.args.reason), _show_mission)
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
    p = add(msub, "reject", cmd_missions_reject, "reject a mission, with a reason")
    p.add_argument("id")
    p.add_argument("--reason", "-r", required=True)
