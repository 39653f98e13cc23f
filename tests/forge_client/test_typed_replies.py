"""Typed replies: `forge_api.methods` is the one table of the socket's methods, the daemon
registers exactly those, and a client's `ask` hands back each result as its model."""

from __future__ import annotations

import pytest

from forge_api import methods as M
from forge_api.schema import Job, JobsListResult, SystemHealth
from forge_client.client import RemoteError
from forged.api import build_registry
from tests.support.daemon_harness import Daemon


def test_the_daemon_serves_every_method_of_the_table_with_its_params_model() -> None:
    served = build_registry().methods
    assert set(served) == set(M.METHODS)
    for name, method in M.METHODS.items():
        assert served[name].params is method.params, name


def test_a_client_gets_models_back_and_the_daemons_refusal_names_the_param(
    daemon: Daemon,
) -> None:
    with daemon.client() as c:
        health = c.ask(M.SYSTEM_HEALTH)
        assert isinstance(health, SystemHealth) and health.ok
        job = c.ask(M.JOBS_SUBMIT, kind="prepare-model", params={"name": "typed"})
        assert isinstance(job, Job) and job.kind == "prepare-model"
        listed = c.ask(M.JOBS_LIST, kind=["prepare-model"])
        assert isinstance(listed, JobsListResult) and [j.id for j in listed.jobs] == [job.id]
        with pytest.raises(RemoteError) as refused:
            c.ask(M.JOBS_SUBMIT, kind="train", params={"rank": -1})
        assert refused.value.code == -32602 and "params." in refused.value.message
