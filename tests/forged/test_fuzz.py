"""The socket under random and mutated input: 10,000 messages from hypothesis, each answered with
a well-formed JSON-RPC reply (or, for a notification, none), and a normal client served after.

Each message is followed by a sentinel request, so replies are matched to what caused them
without predicting which messages get one. Jobs that random but valid submits start are
cancelled at the end; the daemon must still list them all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forged.api import build_registry
from tests.support.daemon_harness import ProcessDaemon, short_tmp
from tests.support.rawsock import Raw

pytestmark = pytest.mark.slow

METHODS = sorted(build_registry().methods)
EXAMPLES = 2_000
PER_EXAMPLE = 5  # 10,000 messages in all

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
param_names = st.sampled_from(
    ["id", "kind", "params", "name", "status", "limit", "since", "path", "tag", "source_id", "x"]
)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "method": st.sampled_from(METHODS)},
    optional={
        "id": st.integers() | st.text(max_size=8) | st.none(),
        "params": st.dictionaries(param_names, json_values, max_size=4) | json_values,
    },
)


def mutate(message: dict[str, Any], how: int) -> bytes:
    """A request with one thing wrong: a key dropped, a version changed, bytes cut or added."""
    text = json.dumps(message)
    if how == 0:
        return text.encode()
    if how == 1:
        return json.dumps({k: v for k, v in message.items() if k != "method"}).encode()
    if how == 2:
        return json.dumps(message | {"jsonrpc": "1.0"}).encode()
    if how == 3:
        return text[: len(text) // 2].encode()
    if how == 4:
        return json.dumps([message, message]).encode()
    return text.encode() + b"\xff\x00garbage"


messages = (
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" "))
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(mutate, requests, st.integers(0, 5))
)


def well_formed(reply: Any) -> bool:
    if isinstance(reply, list):
        return bool(reply) and all(well_formed(r) for r in reply)
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
        return False
    if reply.get("method") == "event":  # a subscription the fuzz made
        return isinstance(reply.get("params"), dict)
    if ("result" in reply) == ("error" in reply) or "id" not in reply:
        return False
    if "error" in reply:
        error = reply["error"]
        return isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    return True


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[ProcessDaemon]:
    daemon = ProcessDaemon(short_tmp("fz")).start()
    yield daemon
    daemon.cleanup()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(messages, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
def test_random_and_mutated_messages_get_well_formed_replies(
    fuzzed: ProcessDaemon, batch: list[bytes]
) -> None:
    raw = Raw(fuzzed.socket, timeout=30)
    try:
        for number, message in enumerate(batch):
            raw.send(message + b"\n")
            sentinel = f"sentinel-{number}"
            raw.request("system.health", msg_id=sentinel)
            while True:
                reply = raw.recv()
                assert well_formed(reply), (message, reply)
                if isinstance(reply, dict) and reply.get("id") == sentinel:
                    assert reply["result"]["ok"] in (True, False)
                    break
    finally:
        raw.sock.close()


def test_the_daemon_serves_normally_after_the_fuzz(fuzzed: ProcessDaemon) -> None:
    jobs = fuzzed.call("jobs.list", limit=10_000)
    for job in jobs["jobs"]:
        if job["status"] in ("queued", "running"):
            fuzzed.call("jobs.cancel", id=job["id"])
    assert fuzzed.call("system.health")["ok"] is True
    status = fuzzed.call("system.status")
    assert fuzzed.proc is not None and status["pid"] == fuzzed.proc.pid  # the same daemon
    assert fuzzed.call("jobs.list", limit=10_000)["total"] == jobs["total"]
