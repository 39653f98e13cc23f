"""`forge jobs …`: list, show, submit, follow, cancel and resume jobs."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from forge_api.names import TERMINAL_JOB_STATUSES, JobKind, JobStatus
from forge_cli.context import EXIT_ERROR, AddCommand, Cli, Subparsers, table
from forge_cli.follow_view import follow_view
from forge_client.format import ago, job_status, params_lines, placement_text, progress_text
from forge_client.kv import parse_setting

PATH_PARAMS = ("dataset", "base_model", "adapter", "previous_adapter", "path")


def cmd_jobs_ls(cli: Cli) -> int:
    a = cli.args
    params: dict[str, Any] = {"limit": a.limit}
    if a.status:
        params["status"] = a.status
    if a.kind:
        params["kind"] = a.kind
    if a.text:
        params["text"] = a.text

    def show(r: dict[str, Any]) -> None:
        rows = [
            [
                j["id"],
                j["kind"],
                job_status(j),
                progress_text(j.get("progress")),
                ago(j["created_at"]),
                j["name"],
            ]
            for j in r["jobs"]
        ]
        table(rows, ["ID", "KIND", "STATUS", "PROGRESS", "CREATED", "NAME"])
        if r["total"] > len(r["jobs"]):
            print(f"({len(r['jobs'])} of {r['total']}; --limit for more)")

    cli.out(cli.call("jobs.list", **params), show)
    return 0


def cmd_jobs_show(cli: Cli) -> int:
    def show(j: dict[str, Any]) -> None:
        shown = {**j, "status": job_status(j)}
        for key in ("id", "name", "kind", "status", "attempt", "exit_code", "error", "checkpoint"):
            if shown.get(key) not in (None, ""):
                print(f"{key:<11}{shown[key]}")
        print(f"{'created':<11}{ago(j['created_at'])}")
        if j.get("started_at"):
            end = j.get("finished_at") or time.time()
            print(f"{'ran':<11}{end - j['started_at']:.1f} s")
        if j.get("progress"):
            print(f"{'progress':<11}{progress_text(j.get('progress'))}")
        if where := placement_text(j.get("placement")):
            print(f"{'runs as':<11}{where}")
        print(f"{'run dir':<11}{j['run_dir']}")
        print("params")
        for line in params_lines(j["params"], j.get("summary")):
            print(f"  {line}")
        for art in j.get("artifacts") or []:
            print(f"{'artifact':<11}{art.get('kind')}: {art.get('path')}")

    cli.out(cli.call("jobs.get", id=cli.args.id), show)
    return 0


def cmd_jobs_submit(cli: Cli) -> int:
    a = cli.args
    params: dict[str, Any] = json.loads(a.params_json) if a.params_json else {}
    for item in a.param or []:
        key, value = parse_setting(item, "--param")
        params[key] = value
    for key in PATH_PARAMS:
        value = params.get(key)
        # The engine runs in the job's run dir: a relative path means "from here".
        if isinstance(value, str) and not os.path.isabs(value) and os.path.exists(value):
            params[key] = os.path.abspath(value)
    if "dataset" in params:
        params["dataset"] = _imported_dataset(cli, params["dataset"])
    extra = {"name": a.name} if a.name else {}
    job = cli.call("jobs.submit", kind=a.kind, params=params, **extra)
    if a.follow:
        if not a.json:
            print(f"submitted {job['id']}; following its log (Ctrl-C stops following, not the job)")
        return follow(cli, job["id"], tail=None)
    cli.out(job, lambda j: print(f"submitted {j['id']} ({j['kind']}), {j['status']}"))
    return 0


def _imported_dataset(cli: Cli, value: Any) -> Any:
    """A dataset file from outside the data dir imported first (the daemon trains only on files
    inside it), so `dataset=my.jsonl` works as typed; its id is what the job gets."""
    if not isinstance(value, str) or cli.args.host:
        return value  # with --host the path is the remote box's: its daemon judges it
    if not os.path.exists(value):
        if value.startswith("ds-") or os.path.isabs(value):
            return value  # an id, or a path in the data dir: the daemon judges it
        raise ValueError(
            f"--param dataset={value}: no such file in {os.getcwd()}, and not a dataset id"
            " (`forge datasets ls` lists them)"
        )
    if not os.path.isfile(value):
        return value
    if Path(value).resolve().is_relative_to(cli.paths.datasets_dir.resolve()):
        return value
    dataset = cli.call("datasets.import", path=value)
    print(f"imported {value} as {dataset['id']} ({dataset['examples']} examples)", file=sys.stderr)
    return dataset["id"]


def cmd_jobs_cancel(cli: Cli) -> int:
    job = cli.call("jobs.cancel", id=cli.args.id)
    cli.out(job, lambda j: print(f"{j['id']}: cancel sent ({j['status']})"))
    return 0


def cmd_jobs_resume(cli: Cli) -> int:
    job = cli.call("jobs.resume", id=cli.args.id)
    cli.out(job, lambda j: print(f"{j['id']}: queued again, resuming from {j['checkpoint']}"))
    return 0


def follow(cli: Cli, job_ref: str, tail: int | None) -> int:
    """Print the stored lines, then the live ones until the job ends, with its status and
    progress as they change (`follow_view`); exit 0 if it completed."""
    job = cli.call("jobs.get", id=job_ref)
    job_id = job["id"]
    params: dict[str, Any] = {"id": job_id}
    if tail:
        params["tail"] = tail
    view = follow_view(job_id)
    try:
        last_seq = 0
        for page in _log_pages(cli, params):
            for line in page["lines"]:
                view.log(line["line"])
            last_seq = page["last_seq"]
        job = cli.call("jobs.get", id=job_id)
        if job["status"] not in TERMINAL_JOB_STATUSES:
            # Status and progress since the last stored line are replayed first, in order.
            cli.call(
                "events.subscribe",
                since=last_seq,
                job_id=job_id,
                types=["job.log", "job.status", "job.progress"],
            )
            for event in cli.client.events(forever=True):
                data = event["data"]
                if event["type"] == "job.log":
                    view.log(data["line"], data.get("level", "info"))
                elif event["type"] == "job.progress":
                    view.progress(data)
                elif data.get("status") in TERMINAL_JOB_STATUSES:
                    # A replayed status can be an earlier attempt's (a resumed job was
                    # cancelled once): only the job's current status says it is over.
                    job = cli.call("jobs.get", id=job_id)
                    if job["status"] in TERMINAL_JOB_STATUSES:
                        break
                else:
                    view.status(str(data.get("status")))
    finally:
        view.close()
    tail_note = f": {job['error']}" if job.get("error") else ""
    print(f"[{job_id} {job['status']}{tail_note}]", file=sys.stderr)
    return 0 if job["status"] == "completed" else EXIT_ERROR


def cmd_jobs_logs(cli: Cli) -> int:
    a = cli.args
    if a.follow:
        return follow(cli, a.id, a.tail)
    params: dict[str, Any] = {"id": a.id}
    if a.tail:
        params["tail"] = a.tail
    if cli.args.json:
        pages = list(_log_pages(cli, params))
        lines = [line for page in pages for line in page["lines"]]
        print(json.dumps({"lines": lines, "last_seq": pages[-1]["last_seq"]}, indent=2))
        return 0
    for page in _log_pages(cli, params):
        for line in page["lines"]:
            print(line["line"], flush=True)
    return 0


def _log_pages(cli: Cli, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`jobs.logs` replies, one page after another until the daemon says there is no more
    (a log of any length, each reply within the daemon's size cap)."""
    page = cli.call("jobs.logs", **params)
    yield page
    while page.get("more"):
        page = cli.call("jobs.logs", **(params | {"after_seq": page["last_seq"]}))
        yield page


def register(sub: Subparsers, add: AddCommand) -> None:
    """The commands of this module, under `forge`."""
    jobs = sub.add_parser("jobs", help="list, inspect, follow, submit and cancel jobs")
    jsub = jobs.add_subparsers(dest="jobs_action", required=True, metavar="ACTION")
    p = add(jsub, "ls", cmd_jobs_ls, "list jobs, newest first")
    p.add_argument("--status", action="append", choices=get_args(JobStatus))
    p.add_argument("--kind", action="append", choices=get_args(JobKind))
    p.add_argument("--text", help="a substring of the name or id")
    p.add_argument("--limit", type=int, default=50)
    p = add(jsub, "show", cmd_jobs_show, "one job in full")
    p.add_argument("id", help="job id, or a unique prefix of it")
    p = add(jsub, "logs", cmd_jobs_logs, "a job's log")
    p.add_argument("id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p = add(jsub, "cancel", cmd_jobs_cancel, "cancel a queued or running job")
    p.add_argument("id")
    p = add(
        jsub, "resume", cmd_jobs_resume, "continue a cancelled or failed job from its checkpoint"
    )
    p.add_argument("id")
    p = add(jsub, "submit", cmd_jobs_submit, "queue a job, e.g. `forge jobs submit prepare-model`")
    p.add_argument("kind", choices=get_args(JobKind))
    p.add_argument("--param", "-p", action="append", metavar="KEY=VALUE", help="a job param")
    p.add_argument("--params-json", help="all params as one JSON object")
    p.add_argument("--name")
    p.add_argument("-f", "--follow", action="store_true", help="follow its log until it ends")
