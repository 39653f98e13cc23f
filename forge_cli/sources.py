"""`forge sources …`: the git repositories the agent watches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forge_cli.context import AddCommand, Cli, Subparsers, table


def cmd_sources_ls(cli: Cli) -> int:
    def show(r: dict[str, Any]) -> None:
        rows = []
        for s in r["sources"]:
            p = s.get("pending")
            pending = (
                "-"
                if not p
                else p.get("error") or f"{p['commits']} commits, ~{p['approx_tokens']} tokens"
            )
            rows.append(
                [s["id"], s["name"], (s.get("last_commit") or "-")[:10], pending, s["path"]]
            )
        table(rows, ["ID", "NAME", "LAST COMMIT", "PENDING", "PATH"])

    cli.out(cli.call("sources.list"), show)
    return 0


def cmd_sources_add(cli: Cli) -> int:
    a = cli.args
    params: dict[str, Any] = {"path": str(Path(a.path).expanduser().resolve())}
    if a.name:
        params["name"] = a.name
    params["include"] = a.include or []
    params["exclude"] = a.exclude or []
    if a.builders:
        params["builders"] = a.builders.split(",")
    thresholds = {
        k: v
        for k, v in (("min_commits", a.min_commits), ("min_tokens", a.min_tokens))
        if v is not None
    }
    if thresholds:
        params["thresholds"] = thresholds
    cli.out(cli.call("sources.add", **params), lambda s: print(f"added {s['id']}: {s['path']}"))
    return 0


def cmd_sources_rm(cli: Cli) -> int:
    cli.out(cli.call("sources.remove", id=cli.args.id), lambda r: print("removed"))
    return 0


def cmd_sources_scan(cli: Cli) -> int:
    def show(r: dict[str, Any]) -> None:
        m = r["mission"]
        print(f"proposed {m['id']}: {m['title']}" if m else "nothing new enough to propose")

    cli.out(cli.call("sources.scan", id=cli.args.id), show)
    return 0


def register(sub: Subparsers, add: AddCommand) -> None:
    """The commands of this module, under `forge`."""
    sources = sub.add_parser("sources", help="the git repositories the agent watches")
    ssub = sources.add_subparsers(dest="sources_action", required=True, metavar="ACTION")
    add(ssub, "ls", cmd_sources_ls, "list sources")
    p = add(ssub, "add", cmd_sources_add, "watch a git repository")
    p.add_argument("path")
    p.add_argument("--name")
    p.add_argument("--include", action="append", metavar="GLOB")
    p.add_argument("--exclude", action="append", metavar="GLOB")
    p.add_argument("--builders", help="comma-separated: code,docs,commits,jsonl (default: all)")
    p.add_argument("--min-commits", type=int, help="this source's commit threshold")
    p.add_argument("--min-tokens", type=int, help="this source's material threshold")
    p = add(ssub, "rm", cmd_sources_rm, "stop watching a source")
    p.add_argument("id")
    p = add(ssub, "scan", cmd_sources_scan, "look at a source now; propose a mission if due")
    p.add_argument("id")
