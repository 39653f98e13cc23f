"""The protocol's limits: what JSON can say but the daemon cannot carry is refused naming it,
batches and replies are bounded, logs of any length are read in pages, unfinished lines cannot
hold the daemon's memory, and the CLI never waits for ever on a daemon that does not answer."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.daemon_harness import Daemon, DaemonFactory, ProcessDaemon, short_tmp
from tests.support.fake_engine import fake_engine
from tests.support.rawsock import Raw


def no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def error_of(raw: Raw, payload: bytes) -> dict[str, Any]:
    raw.send(payload + b"\n")
    reply = raw.recv()
    assert "error" in reply, (payload[:80], reply)
    error: dict[str, Any] = reply["error"]
    return error


def test_what_json_says_but_the_daemon_cannot_carry_is_refused_naming_it(
    daemon: Daemon,
) -> None:
    raw = Raw(daemon.socket)
    deep = b"[" * 100_000 + b"]" * 100_000
    assert error_of(raw, deep)["code"] == -32700
    huge_id = b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "system.health"}'
    assert error_of(raw, huge_id)["code"] == -32700

    def request(method: str, params: dict[str, Any], msg_id: Any = 1) -> bytes:
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        return json.dumps(message).encode()  # lone surrogates go out as \ud800 escapes

    nested: Any = "x"
    for _ in range(100):
        nested = {"a": nested}
    cases = [
        (request("jobs.list", {"offset": 2**64}), "offset", "integer out of range"),
        (request("jobs.logs", {"id": "j", "after_seq": 2**63}), "after_seq", "out of range"),
        (request("jobs.get", {"id": "\ud800"}), "id", "lone surrogate"),
        (
            request("jobs.submit", {"kind": "infer", "params": {"base_model": "\ud800"}}),
            "params.base_model",
            "lone surrogate",
        ),
        (request("jobs.submit", {"kind": "infer", "params": nested}), "params.a.a", "nested"),
    ]
    for payload, param, what in cases:
        err = error_of(raw, payload)
        assert err["code"] == -32602, (param, err)
        assert err["data"][0]["param"].startswith(param) and what in err["message"], err
    err = error_of(raw, request("system.health", {}, msg_id="\udc80"))
    assert err["code"] == -32600 and "Unicode" in err["message"]
    assert daemon.call("jobs.list")["total"] == 0  # nothing was queued
    raw.request("system.health")
    assert raw.recv()["result"]["checks"]["store"] == "ok"  # and the daemon serves on


def test_a_batch_is_bounded_and_answered_in_one_array(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    call = {"jsonrpc": "2.0", "method": "jobs.list", "params": {"limit": 1}}
    batch = [call | {"id": i} for i in range(101)]
    err = error_of(raw, json.dumps(batch).encode())
    assert err["code"] == -32600 and "at most 100 requests" in err["message"]
    raw.send(json.dumps(batch[:100]).encode() + b"\n")
    replies = raw.recv()
    assert [r["id"] for r in replies] == list(range(100))


def test_a_log_of_any_length_is_read_in_pages_and_nan_is_null(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    config = fake_engine(
        tmp_path,
        "for i in range(12_000):\n"
        "    print(f'line {i:05d} ' + 'x' * 2000, flush=True)\n"
        "emit(type='metric', step=1, values={'loss': float('nan'), 'lr': 0.1})\n"
        "emit(type='done', summary={'loss': float('inf')})",
    )
    daemon = make_daemon(config=config).start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "flood"})
    done = daemon.wait_job(job["id"], {"completed", "failed"}, 120)
    assert done["status"] == "completed", done["error"]

    raw = Raw(daemon.socket)
    raw.request("jobs.logs", {"id": job["id"], "limit": 10_000})
    page = raw.recv()["result"]
    assert page["more"] is True and 1000 < len(page["lines"]) < 10_000  # cut by size
    # `forge jobs logs` reads every page: all 12,000 lines, in order, each whole.
    out = subprocess.run(
        [sys.executable, "-m", "forge_cli", "jobs", "logs", job["id"]],
        env=dict(os.environ, FORGE_HOME=str(daemon.home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("line ")]
    assert [line[5:10] for line in lines] == [f"{i:05d}" for i in range(12_000)]
    assert all(len(line) == 2011 for line in lines)

    # A NaN loss is said in the log; no reply holds a bare NaN or Infinity (not JSON).
    assert "loss at step 1 is nan (not a number: diverged?)" in out.stdout
    for method in ("jobs.metrics", "jobs.get"):
        raw.request(method, {"id": job["id"]})
        while b"\n" not in raw.buf:
            raw.buf += raw.sock.recv(1 << 20)
        line, raw.buf = raw.buf.split(b"\n", 1)
        reply = json.loads(line, parse_constant=no_constants)
        assert "result" in reply, reply
    assert [m["name"] for m in daemon.call("jobs.metrics", id=job["id"])["metrics"]] == ["lr"]


def serve_once(path: Path, answer: bool) -> threading.Thread:
    """A socket that takes one request and then hangs (or, with `answer`, closes)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def run() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        if answer:
            conn.close()
        else:
            time.sleep(10)
            conn.close()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_cli_never_hangs_on_a_daemon_that_does_not_answer() -> None:
    home = short_tmp("fl")
    sock = home / "forged.sock"
    env = dict(os.environ, FORGE_HOME=str(home), FORGE_SOCKET=str(sock), FORGE_TIMEOUT="1")
    for closes, said in (
        (False, "did not answer within 1 s"),
        (True, "closed the connection before answering"),
    ):
        sock.unlink(missing_ok=True)
        serve_once(sock, closes)
        out = subprocess.run(
            [sys.executable, "-m", "forge_cli", "jobs", "ls"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 3, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], out.stderr


def test_unfinished_lines_cannot_hold_the_daemons_memory(process_daemon: ProcessDaemon) -> None:
    daemon = process_daemon  # a process: its resident memory is the daemon's alone
    assert daemon.proc is not None
    status = Path(f"/proc/{daemon.proc.pid}/status")

    def resident_mb() -> float:
        kb = next(int(x.split()[1]) for x in status.read_text().splitlines() if "VmRSS" in x)
        return kb / 1024

    before = resident_mb()
    partial = b'{"jsonrpc": "2.0", "id": 1, "method": "system.health", "x": "' + b"a" * 1_000_000
    for _ in range(3):
        held = []
        for _ in range(150):
            raw = Raw(daemon.socket)
            with contextlib.suppress(OSError):  # closed by the daemon already
                raw.send(partial)
            held.append(raw)
        time.sleep(0.5)
        # A refused connection has its reply waiting; one the daemon still holds has nothing to
        # read (only the first are read, not each waited on in turn).
        answered, _, _ = select.select([raw.sock for raw in held], [], [], 0.5)
        refused = 0
        for raw in held:
            if raw.sock in answered:
                raw.sock.settimeout(0.5)
                with contextlib.suppress(OSError, EOFError, ValueError):
                    refused += "unfinished messages" in json.dumps(raw.recv())
            raw.close()
        assert refused > 0  # over the cap: connections were turned away, with the reason
    grew = resident_mb() - before
    assert grew < 250, f"resident memory grew by {grew:.0f} MB"
    assert daemon.call("system.health")["checks"]["store"] == "ok"


def test_five_hundred_clients_at_once_are_all_answered(process_daemon: ProcessDaemon) -> None:
    """Many clients connecting at the same moment wait in the socket's queue (or retry for a
    moment while it is full), never fail with a traceback."""
    from forge_client.client import Client

    answered: list[int] = []
    failed: list[str] = []
    start = threading.Barrier(500)

    def one() -> None:
        start.wait()
        try:
            with Client(process_daemon.paths.socket_file, timeout=60) as client:
                answered.append(client.call("system.status")["pid"])
        except Exception as exc:  # what a person would have seen instead of an answer
            failed.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one) for _ in range(500)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failed, failed[:3]
    assert len(answered) == 500
