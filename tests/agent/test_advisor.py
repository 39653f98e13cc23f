"""The LLM advisor through the real litellm, against a local OpenAI-compatible server, and
against a real provider when one is configured."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.advisor import Advisor, AdvisorSettings, grounded
from tests.support.daemon_harness import DaemonFactory
from tests.support.missions import agent_config, widgets_proposal
from tests.support.openai_server import OpenAIServer

RATIONALE = "These commits define widget sizes; training helps answer questions about them."


def reply(messages: list[dict[str, Any]]) -> str:
    prompt = messages[-1]["content"]
    if "question and answer pairs" in prompt:
        return "Here you go:\n" + json.dumps(
            [
                {
                    "question": "How do I get a widget?",
                    "answer": "Call make_widget(size) to get a widget of that size.",
                },
                {
                    "question": "Who invented widgets?",
                    "answer": "Marie Dupont invented them in Lyon during 1887.",
                },
            ]
        )
    return RATIONALE


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    s = OpenAIServer(reply)
    yield s
    s.close()


def test_rationale_and_grounded_pairs(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGE_TEST_ADVISOR_KEY", "local-test-key")
    advisor = Advisor(
        AdvisorSettings(
            model="openai/test-model",
            api_base=server.url,
            api_key_env="FORGE_TEST_ADVISOR_KEY",
            qa_pairs=2,
        )
    )
    assert advisor.rationale({"source": "widgets"}, "template") == RATIONALE
    section = "Call `make_widget(size)` to get a widget of that size; sizes run from 1 to 10."
    kept, rejected = advisor.qa_pairs("Usage", section)
    assert kept == [
        ("How do I get a widget?", "Call make_widget(size) to get a widget of that size.")
    ]
    assert rejected == 1  # the made-up answer does not pass the check
    assert server.requests[0]["auth"] == "Bearer local-test-key"
    assert server.requests[0]["body"]["model"] == "test-model"


def test_an_unreachable_advisor_falls_back_to_the_template() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    advisor = Advisor(
        AdvisorSettings(
            model="openai/test-model", api_base=f"http://127.0.0.1:{port}/v1", timeout_s=5
        )
    )
    assert advisor.rationale({}, "the template text") == "the template text"
    assert advisor.qa_pairs("t", "some section text") == ([], 0)
    missing_key = Advisor(AdvisorSettings(model="openai/x", api_key_env="FORGE_NO_SUCH_VAR_SET"))
    assert missing_key.rationale({}, "fallback") == "fallback"


def test_an_advisor_without_litellm_installed_falls_back_to_the_template(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # what `import` sees when it is absent
    advisor = Advisor(AdvisorSettings(model="openai/test-model"))
    assert advisor.rationale({}, "the template text") == "the template text"
    assert advisor.qa_pairs("t", "some section text") == ([], 0)
    assert "install the `llm` extra" in caplog.text


def test_grounding_check() -> None:
    assert grounded("sizes run from 1 to 10", "Sizes run from one... 1 to 10, widgets")
    assert not grounded("invented in Lyon in 1887", "widgets come in sizes 1 to 10")
    assert not grounded("", "anything")


def test_daemon_uses_the_advisor_for_missions(
    make_daemon: DaemonFactory,
    tiny_model: Path,
    tmp_path: Path,
    server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORGE_TEST_ADVISOR_KEY", "local-test-key")
    config = agent_config(tiny_model) + (
        f'\n[advisor]\nmodel = "openai/test-model"\napi_base = "{server.url}"\n'
        'api_key_env = "FORGE_TEST_ADVISOR_KEY"\nqa_pairs = 2\n'
    )
    daemon, _, _, mission = widgets_proposal(make_daemon, config, tmp_path)
    assert mission["data"]["rationale"] == RATIONALE
    card = mission["data"]["card"]
    assert card["per_builder"]["qa"] == 1
    assert card["skipped"]["qa: not grounded in its section"] == 1
    dataset = Path(daemon.call("datasets.list")["datasets"][0]["path"])
    assert "How do I get a widget?" in (dataset / "qa.jsonl").read_text()


@pytest.mark.skipif(
    not os.environ.get("FORGE_TEST_LLM_MODEL"),
    reason="no real LLM provider configured: set FORGE_TEST_LLM_MODEL (a litellm model id) "
    "and its key (FORGE_TEST_LLM_KEY_ENV names the variable) to run this",
)
def test_a_real_provider() -> None:
    advisor = Advisor(
        AdvisorSettings(
            model=os.environ["FORGE_TEST_LLM_MODEL"],
            api_base=os.environ.get("FORGE_TEST_LLM_API_BASE", ""),
            api_key_env=os.environ.get("FORGE_TEST_LLM_KEY_ENV", ""),
            qa_pairs=2,
            timeout_s=60,
        )
    )
    text = advisor.rationale({"source": "widgets", "new_commits": 3}, "TEMPLATE")
    assert text and text != "TEMPLATE"
    section = "The make_widget function takes a size from 1 to 10 and returns a widget string."
    kept, _ = advisor.qa_pairs("make_widget", section)
    assert all(grounded(a, section) for _, a in kept)
