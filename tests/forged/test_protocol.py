"""JSON-RPC 2.0 on the real socket: every kind of bad input gets the right error or a close,
and the daemon goes on serving everyone else."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from tests.support.daemon_harness import Daemon
from tests.support.rawsock import Raw


def test_parse_error(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    raw.send(b'{"jsonrpc": "2.0", "method": \n')
    reply = raw.recv()
    assert reply["error"]["code"] == -32700
    assert reply["id"] is None
    # The same connection still works.
    raw.request("system.health")
    assert raw.recv()["result"]["checks"]["store"] == "ok"


def test_valid_json_that_is_not_a_request(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    for payload in [
        b"42",
        b'"hello"',
        b"null",
        b"[1, 2]",
        b'{"jsonrpc": "2.0"}',
        b'{"jsonrpc": "1.0", "id": 3, "method": "system.health"}',
        b'{"jsonrpc": "2.0", "id": 4, "method": 17}',
        b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "system.health"}',
        b'{"jsonrpc": "2.0", "id": 5, "method": "system.health", "params": 3}',
    ]:
        raw.send(payload + b"\n")
        reply = raw.recv()
        replies = reply if isinstance(reply, list) else [reply]
        assert replies, payload
        for r in replies:
            assert r["error"]["code"] == -32600, (payload, r)


def test_unknown_method_lists_the_real_ones(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    raw.request("jobs.explode", {}, msg_id="a")
    reply = raw.recv()
    assert reply["id"] == "a"
    assert reply["error"]["code"] == -32601
    assert "jobs.list" in reply["error"]["data"]["methods"]


def test_wrong_param_types_name_the_param(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    raw.request("jobs.list", {"limit": "many"})
    err = raw.recv()["error"]
    assert err["code"] == -32602
    assert err["data"][0]["param"] == "limit"
    raw.request("jobs.list", {"status": ["exploded"]}, msg_id=2)
    err = raw.recv()["error"]
    assert err["code"] == -32602 and err["data"][0]["param"] == "status.0"
    raw.request("jobs.list", {"colour": "red"}, msg_id=3)
    err = raw.recv()["error"]
    assert err["code"] == -32602 and err["data"][0]["param"] == "colour"
    assert "unknown param" in err["message"]
    raw.request("jobs.submit", {"kind": "prepare-model", "params": {"layers": 0}}, msg_id=4)
    err = raw.recv()["error"]
    assert err["code"] == -32602 and err["data"][0]["param"] == "params.layers"
    raw.request("jobs.list", [1, 2], msg_id=5)
    assert raw.recv()["error"]["code"] == -32602


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists(),
    reason="this machine has an NVIDIA GPU: QLoRA and Unsloth may run here",
)
def test_a_train_job_this_machine_cannot_run_is_refused_at_submit(daemon: Daemon) -> None:
    """By the rule the engine applies, before it is queued (not when its turn comes)."""
    raw = Raw(daemon.socket)
    for msg_id, (params, param, words) in enumerate(
        [
            ({"method": "qlora"}, "params.method", "needs an NVIDIA GPU with CUDA"),
            ({"backend": "unsloth"}, "params.backend", "unsloth needs an NVIDIA GPU with CUDA"),
        ]
    ):
        submit = {"kind": "train", "params": {"dataset": "d.jsonl", **params}}
        raw.request("jobs.submit", submit, msg_id=msg_id)
        err = raw.recv()["error"]
        assert err["code"] == -32602 and err["data"]["param"] == param, err
        assert words in err["message"]
    assert daemon.call("jobs.list")["total"] == 0


def test_application_errors(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    raw.request("jobs.get", {"id": "job-doesnotexist"})
    err = raw.recv()["error"]
    assert err["code"] == -32001 and err["data"]["param"] == "id"
    raw.request("missions.approve", {"id": "m-nope"}, msg_id=2)
    assert raw.recv()["error"]["code"] == -32001
    raw.request("jobs.submit", {"kind": "deploy"}, msg_id=3)
    err = raw.recv()["error"]  # the kind's own params are checked at submit: no tag given
    assert err["code"] == -32602 and "params.tag" in err["message"], err
    raw.request("jobs.submit", {"kind": "fly"}, msg_id=4)
    err = raw.recv()["error"]
    assert err["code"] == -32602 and "kind" in err["message"] and "deploy" in err["message"], err


def test_notification_gets_no_reply_and_batch_gets_a_list(daemon: Daemon) -> None:
    raw = Raw(daemon.socket)
    raw.send(b'{"jsonrpc": "2.0", "method": "system.health"}\n')
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "system.health"},
        {"jsonrpc": "2.0", "method": "system.health"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
    ]
    raw.send(json.dumps(batch).encode() + b"\n")
    reply = raw.recv()  # the notification produced nothing, so this is the batch's reply
    assert isinstance(reply, list) and [r["id"] for r in reply] == [1, 2]
    assert "result" in reply[0] and reply[1]["error"]["code"] == -32601
    raw.send(b"[]\n")
    assert raw.recv()["error"]["code"] == -32600


def test_two_mib_line_is_refused_and_closed_others_unaffected(daemon: Daemon) -> None:
    other = Raw(daemon.socket)
    big = Raw(daemon.socket)
    blob = (
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "jobs.list",
                "params": {"text": "x" * (2 * 1024 * 1024)},
            }
        ).encode()
        + b"\n"
    )
    # The daemon may close before we finish sending: that is the point.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        big.send(blob)
    reply = big.recv()
    assert reply["error"]["code"] == -32600
    assert "too large" in reply["error"]["message"]
    assert big.closed_by_peer()
    other.request("system.status")
    assert other.recv()["result"]["pid"] > 0


def test_client_disconnecting_mid_stream(daemon: Daemon) -> None:
    for _ in range(5):
        raw = Raw(daemon.socket)
        raw.request("events.subscribe", {"since": 0})
        raw.recv()
        raw.send(b'{"jsonrpc": "2.0", "id": 9, "method": "jobs.li')  # half a request, then gone
        raw.close()
    # Events keep flowing to nobody; the daemon keeps serving.
    with daemon.client() as c:
        for _ in range(20):
            c.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"})  # no model
        status = c.call("system.status")
    assert status["subscribers"] == 0


def test_fifty_clients_at_once(daemon: Daemon) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            with daemon.client() as c:
                for i in range(10):
                    job = c.call(
                        "jobs.submit",
                        kind="prepare-model",
                        params={"path": "/tmp"},  # no model there: each fails
                        name=f"c{n}-{i}",
                    )
                    assert c.call("jobs.get", id=job["id"])["name"] == f"c{n}-{i}"
                    c.call("jobs.list", limit=5)
                    with lock:
                        ids.append(job["id"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(set(ids)) == 500
    listed = daemon.call("jobs.list", limit=1)
    assert listed["total"] == 500
