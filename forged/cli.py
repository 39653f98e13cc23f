"""`forge`: the command line, one subcommand per socket method.

Output is a short human table or, with `--json`, the method's result as JSON for scripts. With
no daemon running, every command that needs it says so in one line and exits 3. Imports stay
light (no pydantic on the client path) so a command answers fast.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forged.client import (
    DEFAULT_TIMEOUT,
    Client,
    DaemonNotRunning,
    DaemonUnresponsive,
    RemoteError,
)
from forged.kv import parse_setting, parse_settings
from forged.paths import ForgePaths, resolve_paths

if TYPE_CHECKING:
    from forged.remote import SshBridge

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3
TERMINAL = {"completed", "failed", "cancelled"}


class Cli:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.paths: ForgePaths = resolve_paths()
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.paths.socket_file, timeout=_timeout())
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        return self.client.call(method, **params)

    def out(self, result: Any, human: Callable[[Any], None]) -> None:
        if self.args.json:
            print(json.dumps(result, indent=2))
        else:
            human(result)


def _timeout() -> float:
    """Seconds a call waits for its reply: FORGE_TIMEOUT, or the client's default."""
    raw = os.environ.get("FORGE_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FORGE_TIMEOUT={raw!r}: not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"FORGE_TIMEOUT={raw!r}: must be more than 0 seconds")
    return value


# ---- formatting -----------------------------------------------------------------------------


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    delta = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return f"{int(delta)}s ago"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _progress(job: dict[str, Any]) -> str:
    p = job.get("progress") or {}
    if not p:
        return ""
    text = f"{p.get('step', 0)}/{p.get('total') or '?'}"
    if p.get("stage"):
        text += f" {p['stage']}"
    return text


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1024**3:.1f} GiB"


# ---- commands ---------------------------------------------------------------------------------


def cmd_status(cli: Cli) -> int:
    def show(s: dict[str, Any]) -> None:
        acc = s["accelerator"]
        print(f"forged {s['version']} (pid {s['pid']}), up {int(s['uptime_s'])} s")
        print(f"socket       {s['socket']}")
        print(f"data         {s['data_dir']}")
        mem = f" ({_bytes(acc['memory_bytes'])})" if acc.get("memory_bytes") else ""
        print(f"accelerator  {acc['kind']}: {acc['name']}{mem}")
        print(
            f"memory       {_bytes(s['memory_available_bytes'])} free of "
            f"{_bytes(s['memory_total_bytes'])}"
        )
        q = s["queue"]
        print(
            f"queue        {q['queued']} queued, {q['running']} running (max {q['max_parallel']})"
        )
        for job in s["running"]:
            print(f"running      {job['id']} {job['kind']} {job['name']} {_progress(job)}")

    cli.out(cli.call("system.status"), show)
    return 0


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
            [j["id"], j["kind"], j["status"], _progress(j), _age(j["created_at"]), j["name"]]
            for j in r["jobs"]
        ]
        _table(rows, ["ID", "KIND", "STATUS", "PROGRESS", "CREATED", "NAME"])
        if r["total"] > len(r["jobs"]):
            print(f"({len(r['jobs'])} of {r['total']}; --limit for more)")

    cli.out(cli.call("jobs.list", **params), show)
    return 0


def cmd_jobs_show(cli: Cli) -> int:
    def show(j: dict[str, Any]) -> None:
        for key in ("id", "name", "kind", "status", "attempt", "exit_code", "error", "checkpoint"):
            if j.get(key) not in (None, ""):
                print(f"{key:<11}{j[key]}")
        print(f"{'created':<11}{_age(j['created_at'])}")
        if j.get("started_at"):
            end = j.get("finished_at") or time.time()
            print(f"{'ran':<11}{end - j['started_at']:.1f} s")
        if j.get("progress"):
            print(f"{'progress':<11}{_progress(j)}")
        print(f"{'run dir':<11}{j['run_dir']}")
        print(f"{'params':<11}{json.dumps(j['params'])}")
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
        return _follow(cli, job["id"], tail=None)
    cli.out(job, lambda j: print(f"submitted {j['id']} ({j['kind']}), {j['status']}"))
    return 0


def _imported_dataset(cli: Cli, value: Any) -> Any:
    """A dataset file from outside the data dir imported first (the daemon trains only on files
    inside it), so `dataset=my.jsonl` works as typed; its id is what the job gets."""
    if not isinstance(value, str) or cli.args.host or not os.path.isfile(value):
        return value  # with --host the path is the remote box's: its daemon judges it
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


def _print_log(line: str) -> None:
    print(line, flush=True)


def _follow(cli: Cli, job_ref: str, tail: int | None) -> int:
    """Print the stored lines, then the live ones until the job ends; exit 0 if it completed."""
    job = cli.call("jobs.get", id=job_ref)
    job_id = job["id"]
    params: dict[str, Any] = {"id": job_id}
    if tail:
        params["tail"] = tail
    last_seq = 0
    for page in _log_pages(cli, params):
        for line in page["lines"]:
            _print_log(line["line"])
        last_seq = page["last_seq"]
    job = cli.call("jobs.get", id=job_id)
    if job["status"] not in TERMINAL:
        cli.call(
            "events.subscribe",
            since=last_seq,
            job_id=job_id,
            types=["job.log", "job.status"],
        )
        for event in cli.client.events(forever=True):
            if event["type"] == "job.log":
                _print_log(event["data"]["line"])
            elif event["data"].get("status") in TERMINAL:
                # A replayed status can be an earlier attempt's (a resumed job was cancelled
                # once): only the job's current status says it is over.
                job = cli.call("jobs.get", id=job_id)
                if job["status"] in TERMINAL:
                    break
    tail_note = f": {job['error']}" if job.get("error") else ""
    print(f"[{job_id} {job['status']}{tail_note}]", file=sys.stderr)
    return 0 if job["status"] == "completed" else EXIT_ERROR


def cmd_jobs_logs(cli: Cli) -> int:
    a = cli.args
    if a.follow:
        return _follow(cli, a.id, a.tail)
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
            _print_log(line["line"])
    return 0


def _log_pages(cli: Cli, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`jobs.logs` replies, one page after another until the daemon says there is no more
    (a log of any length, each reply within the daemon's size cap)."""
    page = cli.call("jobs.logs", **params)
    yield page
    while page.get("more"):
        page = cli.call("jobs.logs", **(params | {"after_seq": page["last_seq"]}))
        yield page


def cmd_missions_ls(cli: Cli) -> int:
    params: dict[str, Any] = {"stage": cli.args.stage} if cli.args.stage else {}

    def show(r: dict[str, Any]) -> None:
        rows = [[m["id"], _stage(m), _age(m["created_at"]), m["title"]] for m in r["missions"]]
        _table(rows, ["ID", "STAGE", "PROPOSED", "TITLE"])

    cli.out(cli.call("missions.list", **params), show)
    return 0


def _stage(m: dict[str, Any]) -> str:
    """A mission's stage, with the step that failed."""
    return f"failed at {m['failed_step']}" if m["stage"] == "failed" else str(m["stage"])


def _show_mission(m: dict[str, Any]) -> None:
    for key in ("id", "title", "stage", "failure", "source_id", "reason"):
        if m.get(key):
            print(f"{key:<10}{_stage(m) if key == 'stage' else m[key]}")
    print(f"{'proposed':<10}{_age(m['created_at'])}")
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
        _table(rows, ["MODEL", "LOSS", "PERPLEXITY", "CHANGE"])
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
        _table(rows, ["ID", "NAME", "LAST COMMIT", "PENDING", "PATH"])

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


def cmd_models_ls(cli: Cli) -> int:
    def show(r: dict[str, Any]) -> None:
        rows = []
        for m in r["models"]:
            data = m.get("data") or {}
            params = data.get("parameters")
            size = f"{params / 1e6:.1f}M" if params else "-"
            loss = (data.get("eval") or {}).get("adapter", {}).get("eval_loss")
            note = data.get("problem") or (f"serves {data['alias']}" if data.get("current") else "")
            if loss is not None:
                note = f"eval loss {loss:.4f} {note}".strip()
            rows.append([m["id"], m["kind"], m["name"], size, note or "-"])
        _table(rows, ["ID", "KIND", "NAME", "PARAMS", "NOTE"])

    kinds = [cli.args.kind] if cli.args.kind else None
    cli.out(cli.call("models.list", kind=kinds), show)
    return 0


def cmd_models_deploy(cli: Cli) -> int:
    params = {"id": cli.args.id, "tag": cli.args.tag, "mode": cli.args.mode}
    job = cli.call("models.deploy", **{k: v for k, v in params.items() if v})
    cli.out(job, lambda j: print(f"deploying as {j['params']['tag']}: job {j['id']}"))
    return 0


def _prepare_base(cli: Cli, path: str, verb: str) -> int:
    """Queue the prepare-model job that makes `path` a base model, and follow it unless asked
    not to: what `models import` and `models pull` both are."""
    params = {"path": path} | ({"name": cli.args.name} if cli.args.name else {})
    job = cli.call("jobs.submit", kind="prepare-model", params=params)
    if cli.args.no_follow or cli.args.json:
        cli.out(job, lambda j: print(f"{verb} {path}: job {j['id']}"))
        return 0
    print(f"{verb} {path} (job {job['id']}); it becomes a base model in `forge models ls`")
    return _follow(cli, job["id"], tail=None)


def cmd_models_import(cli: Cli) -> int:
    """A GGUF file (or ollama:NAME[:TAG]) becomes a trainable base model."""
    ref = cli.args.source
    if not ref.startswith("ollama:") and not cli.args.host:
        if not os.path.isfile(ref):
            print(
                f"forge: {ref}: no such file (a .gguf file or ollama:NAME[:TAG])", file=sys.stderr
            )
            return 2
        ref = os.path.abspath(ref)
    return _prepare_base(cli, ref, "importing")


def cmd_models_pull(cli: Cli) -> int:
    """A model from the Hugging Face Hub becomes a trainable base model."""
    return _prepare_base(cli, "hf:" + cli.args.hf_id.removeprefix("hf:"), "pulling")


def cmd_models_rollback(cli: Cli) -> int:
    target = (
        {"alias": cli.args.target} if ":" in cli.args.target else {"source_id": cli.args.target}
    )
    cli.out(
        cli.call("models.rollback", **target),
        lambda r: print(f"{r['alias']} serves {r['model']['name']} again"),
    )
    return 0


def cmd_datasets_ls(cli: Cli) -> int:
    def show(r: dict[str, Any]) -> None:
        rows = [[d["id"], d["name"], str(d["examples"]), d["path"]] for d in r["datasets"]]
        _table(rows, ["ID", "NAME", "EXAMPLES", "PATH"])

    cli.out(cli.call("datasets.list"), show)
    return 0


def cmd_datasets_import(cli: Cli) -> int:
    params: dict[str, Any] = {"path": str(Path(cli.args.path).expanduser().resolve())}
    if cli.args.name:
        params["name"] = cli.args.name
    cli.out(
        cli.call("datasets.import", **params),
        lambda d: print(f"imported {d['id']}: {d['examples']} examples"),
    )
    return 0


def cmd_daemon(cli: Cli) -> int:
    from forged.config import ConfigError, load_config
    from forged.daemon import run_daemon

    try:
        config = load_config(cli.paths.config_file)
    except ConfigError as exc:
        print(f"forged: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_daemon(cli.paths, config)


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
    from forged.config import ConfigError, default_config_text, load_config

    path = cli.paths.config_file
    if cli.args.action == "path":
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
        where = path if path.exists() else f"{path} (absent: defaults)"
        print(f"# {where}: valid")
        print(json.dumps(config.model_dump(), indent=2))
    return 0


def cmd_service(cli: Cli) -> int:
    from forged import service

    return service.run(cli.args.action, cli.args.platform, cli.paths)


def cmd_dial_stdio(cli: Cli) -> int:
    from forged.remote import dial_stdio

    return dial_stdio(cli.paths.socket_file)


def _bridge(host: str, remote_forge: str) -> SshBridge:
    """Check the remote daemon answers, then point this process's socket at a bridge to it."""
    from forged.remote import SshBridge, SshTarget

    bridge = SshBridge(SshTarget.parse(host), remote_forge)
    try:
        bridge.check()
    except ConnectionError:
        bridge.close()
        raise
    os.environ["FORGE_SOCKET"] = str(bridge.start().socket_path)
    return bridge


def cmd_tui(cli: Cli) -> int:
    """Textual is imported only here, so the other commands start fast."""
    from tui.app import run

    run(cli.paths)
    return 0


# ---- argument parsing -------------------------------------------------------------------------

PATH_PARAMS = ("dataset", "base_model", "adapter", "previous_adapter", "path")
JOB_STATUSES = ["queued", "running", "completed", "failed", "cancelled"]
# The CLI reads plain JSON and imports no pydantic, to start fast: these repeat the schema's
# Literals, and tests/forged/test_cli.py checks that they still agree.
JOB_KINDS = ["prepare-model", "train", "eval", "merge", "deploy", "infer"]
MISSION_STAGES = [
    "proposed",
    "approved",
    "training",
    "evaluating",
    "deploying",
    "done",
    "failed",
    "rejected",
    "superseded",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forge", description="AI Forge: fine-tune local LLMs on your own repositories."
    )
    parser.add_argument(
        "--host",
        metavar="ssh://[USER@]HOST[:PORT]",
        help="drive the daemon on another machine, through ssh and `forge dial-stdio` there",
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

    def add(
        parent: Any, name: str, fn: Callable[[Cli], int], help_: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_)
        p.set_defaults(fn=fn)
        return p

    add(sub, "status", cmd_status, "what the daemon and the machine are doing")

    daemon = sub.add_parser("daemon", help="run the daemon in the foreground, or stop it")
    daemon.set_defaults(fn=cmd_daemon, json=False)
    dsub = daemon.add_subparsers(dest="daemon_action")
    add(dsub, "run", cmd_daemon, "run in the foreground (what the service runs)")
    add(dsub, "stop", cmd_daemon_stop, "stop the running daemon (SIGTERM) and wait")

    jobs = sub.add_parser("jobs", help="list, inspect, follow, submit and cancel jobs")
    jsub = jobs.add_subparsers(dest="jobs_action", required=True, metavar="ACTION")
    p = add(jsub, "ls", cmd_jobs_ls, "list jobs, newest first")
    p.add_argument("--status", action="append", choices=JOB_STATUSES)
    p.add_argument("--kind", action="append", choices=JOB_KINDS)
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
    p.add_argument("kind", choices=JOB_KINDS)
    p.add_argument("--param", "-p", action="append", metavar="KEY=VALUE", help="a job param")
    p.add_argument("--params-json", help="all params as one JSON object")
    p.add_argument("--name")
    p.add_argument("-f", "--follow", action="store_true", help="follow its log until it ends")

    missions = sub.add_parser("missions", help="training proposals: list, show, approve, reject")
    msub = missions.add_subparsers(dest="missions_action", required=True, metavar="ACTION")
    p = add(msub, "ls", cmd_missions_ls, "list missions")
    p.add_argument("--stage", action="append", choices=MISSION_STAGES)
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

    models = sub.add_parser("models", help="the model registry")
    msub2 = models.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    p = add(msub2, "ls", cmd_models_ls, "list models")
    p.add_argument("--kind", choices=["base", "adapter", "merged", "ollama"])
    p = add(msub2, "deploy", cmd_models_deploy, "make an adapter or merged model an Ollama tag")
    p.add_argument("id", help="the model's id (forge models ls)")
    p.add_argument("--tag", help="the Ollama name (default: forge-<source>:<next number>)")
    p.add_argument("--mode", choices=["adapter", "merged"], help="default: adapter where it can")
    p = add(msub2, "import", cmd_models_import, "import a GGUF model as a trainable base model")
    p.add_argument("source", help="a .gguf file, or ollama:NAME[:TAG] from the local Ollama")
    p.add_argument("--name", help="its folder name under the models dir (default: the file's)")
    p.add_argument("--no-follow", action="store_true", help="queue it and return")
    p = add(msub2, "pull", cmd_models_pull, "download a model from the Hugging Face Hub")
    p.add_argument("hf_id", help="ORG/NAME, or ORG/NAME@REVISION (a branch, tag or commit)")
    p.add_argument("--name", help="its folder name under the models dir (default: NAME)")
    p.add_argument("--no-follow", action="store_true", help="queue it and return")
    p = add(msub2, "rollback", cmd_models_rollback, "point an alias back at the previous tag")
    p.add_argument("target", help="a source id, or an alias such as forge-myrepo:latest")

    datasets = sub.add_parser("datasets", help="datasets built or imported")
    dsub2 = datasets.add_subparsers(dest="datasets_action", required=True, metavar="ACTION")
    add(dsub2, "ls", cmd_datasets_ls, "list datasets")
    p = add(dsub2, "import", cmd_datasets_import, "import a JSONL file")
    p.add_argument("path")
    p.add_argument("--name")

    tui = sub.add_parser("tui", help="the terminal UI: jobs, missions, logs, models, playground")
    tui.set_defaults(fn=cmd_tui, json=False)

    dial = sub.add_parser(
        "dial-stdio", help="join stdin/stdout to the daemon's socket (what --host runs over ssh)"
    )
    dial.set_defaults(fn=cmd_dial_stdio, json=False)

    config = sub.add_parser("config", help="the config file: path, check, init")
    config.add_argument("action", choices=["path", "check", "init"], nargs="?", default="check")
    config.set_defaults(fn=cmd_config, json=False)

    service = sub.add_parser(
        "service", help="run the daemon as a systemd user service or launchd agent"
    )
    service.add_argument("action", choices=["install", "uninstall", "status"])
    service.add_argument(
        "--platform", choices=["systemd", "launchd"], help="default: this machine's"
    )
    service.set_defaults(fn=cmd_service, json=False)
    return parser


LOCAL_ONLY = ("daemon", "service", "config", "dial-stdio")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bridge = None
    if args.host:
        if args.command in LOCAL_ONLY:
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
        if cli._client is not None:
            cli._client.close()
        if bridge is not None:
            bridge.close()


if __name__ == "__main__":
    sys.exit(main())
