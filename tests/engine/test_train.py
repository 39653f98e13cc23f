"""Training the tiny model for real on the CPU, through the daemon as a person would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.backends import choose_backend, cuda_available
from engine.errors import EngineError
from engine.synthetic import write_dataset
from forge_api.jobs import TrainParams
from tests.conftest import engine_job
from tests.support.cli import forge
from tests.support.daemon_harness import Daemon, DaemonFactory

STEPS = 24


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "chat.jsonl", 300, seed=7)


def train_params(tiny_model: Path, dataset: Path | str, **extra: Any) -> dict[str, Any]:
    return {
        "base_model": str(tiny_model),
        "dataset": str(dataset),
        "max_steps": STEPS,
        "max_seq_len": 256,
        "checkpoint_every": 4,
        "rank": 8,
        **extra,
    }


def metrics_of(events: list[dict[str, Any]]) -> dict[str, float]:
    return {k: v for e in events if e["type"] == "metric" for k, v in e["values"].items()}


def metric(daemon: Daemon, job_id: str, name: str) -> list[tuple[int, float]]:
    rows = daemon.call("jobs.metrics", id=job_id, names=[name])["metrics"]
    return [(m["step"], m["value"]) for m in rows]


def test_train_lowers_held_out_loss_and_registers_the_adapter(
    daemon: Daemon, tiny_model: Path, dataset: Path
) -> None:
    params = train_params(tiny_model, daemon.imported(dataset))
    job = daemon.call("jobs.submit", kind="train", params=params)
    done = daemon.wait_job(job["id"], {"completed", "failed"}, timeout=240)
    assert done["status"] == "completed", done["error"]
    evals = metric(daemon, job["id"], "eval_loss")
    assert evals[0][0] == 0 and evals[-1][0] == STEPS
    assert evals[-1][1] < evals[0][1] - 0.5, evals  # measurably better on held-out data
    losses = metric(daemon, job["id"], "loss")
    assert len(losses) == STEPS
    assert done["progress"]["tokens_per_s"] > 0
    adapter = Path(done["run_dir"]) / "adapter"
    assert (adapter / "adapter_model.safetensors").exists()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    models = daemon.call("models.list", kind=["adapter"])["models"]
    assert [m["path"] for m in models] == [str(adapter)]
    assert models[0]["base"] == str(tiny_model)
    logs = [x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"]]
    assert any(line.startswith("backend peft on cpu: no GPU here") for line in logs)
    # Sized from one measured row and the memory free here, and the job says so.
    assert any(line.startswith("batch size ") and "GiB free on cpu" in line for line in logs)
    assert (Path(done["run_dir"]) / "measured.json").exists()
    assert any(line.startswith("learning rate 0.005") for line in logs)
    # The step's loss and the held-out loss are computed alike; the log says how they differ.
    footing = [line for line in logs if "the held-out loss is the same mean" in line]
    assert len(footing) == 1 and footing[0].startswith("step "), footing
    # What it chose where the params left it to the engine is kept on the job, and shown.
    chosen = done["summary"]["chosen"]
    assert chosen["learning_rate"] == 0.005 and chosen["batch_size"] >= 1
    assert done["params"]["batch_size"] is None
    shown = forge("jobs", "show", job["id"], home=daemon.home).stdout
    assert re.search(rf"batch_size +auto: {chosen['batch_size']}\n", shown), shown
    assert re.search(r"learning_rate +auto: 0.005\n", shown), shown


def test_cancel_then_resume_ends_where_an_uninterrupted_run_does(
    make_daemon: DaemonFactory, tiny_model: Path, dataset: Path
) -> None:
    daemon = make_daemon(config="[jobs]\nmax_parallel = 1\n").start()
    params = train_params(tiny_model, daemon.imported(dataset))
    straight = daemon.call("jobs.submit", kind="train", params=params)
    assert daemon.wait_job(straight["id"], {"completed", "failed"}, 240)["status"] == "completed"

    job = daemon.call("jobs.submit", kind="train", params=params)
    with daemon.client() as c:
        c.call("events.subscribe", since=0, job_id=job["id"], types=["job.checkpoint"])
        next(c.events())  # the first checkpoint (step 4) is on disk
    daemon.call("jobs.cancel", id=job["id"])
    cancelled = daemon.wait_job(job["id"], {"cancelled", "completed", "failed"}, 60)
    assert cancelled["status"] == "cancelled", cancelled
    stopped_at = int(Path(cancelled["checkpoint"]).name.split("-")[1])
    assert 4 <= stopped_at < STEPS

    daemon.call("jobs.resume", id=job["id"])
    # Following the resumed job's log goes on past its earlier `cancelled`, to the real end.
    follow = subprocess.run(
        [sys.executable, "-m", "forge_cli", "jobs", "logs", "-f", job["id"]],
        env=dict(os.environ, FORGE_HOME=str(daemon.home)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert follow.returncode == 0, follow.stderr
    assert "held-out loss" in follow.stdout and "completed]" in follow.stderr
    resumed = daemon.wait_job(job["id"], {"completed", "failed"}, 240)
    assert resumed["status"] == "completed" and resumed["attempt"] == 2
    logs = [x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"]]
    assert any(f"at step {stopped_at}" in line and "resuming" in line for line in logs)
    a = metric(daemon, straight["id"], "eval_loss")[-1][1]
    b = metric(daemon, job["id"], "eval_loss")[-1][1]
    assert abs(a - b) < 1e-3 * a, (a, b)


def test_bad_data_fails_before_training_with_file_and_line(
    daemon: Daemon, tiny_model: Path
) -> None:
    bad = daemon.paths.datasets_dir / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"txt": "typo"}\n')
    job = daemon.call("jobs.submit", kind="train", params=train_params(tiny_model, bad))
    failed = daemon.wait_job(job["id"], {"failed", "completed"}, 120)
    assert failed["status"] == "failed"
    assert f"{bad}:3: unknown format" in failed["error"]
    assert daemon.call("jobs.metrics", id=job["id"])["metrics"] == []  # not one step ran


def test_params_are_checked_at_submit(daemon: Daemon, dataset: Path) -> None:
    with daemon.client() as c:
        for params, where in [
            ({}, "params.dataset"),
            ({"dataset": "x", "method": "ia3"}, "params.method"),
            ({"dataset": "x", "rank": 0}, "params.rank"),
            ({"dataset": "x", "base_model": "nope"}, "params.base_model: no base model 'nope'"),
            ({"dataset": "ds-missing", "base_model": "/tmp"}, None),
        ]:
            try:
                c.call("jobs.submit", kind="train", params=params)
            except Exception as exc:
                if where:
                    assert where in str(exc), (params, exc)
                else:
                    assert "no dataset 'ds-missing'" in str(exc)
            else:
                raise AssertionError(f"{params} was accepted")
        assert c.call("jobs.list")["total"] == 0
        # A base model a queued prepare-model job will build is taken on trust.
        prepare = c.call("jobs.submit", kind="prepare-model", params={})
        params = {"dataset": daemon.imported(dataset), "base_model": "tiny-llama"}
        train = c.call("jobs.submit", kind="train", params=params)
        for job in (train, prepare):
            c.call("jobs.cancel", id=job["id"])


@pytest.mark.parametrize("method", ["dora", "pissa"])
def test_dora_and_pissa_train_and_evaluate_on_the_untouched_base(
    method: str, tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    params = train_params(tiny_model, dataset, method=method, max_steps=12, rank=4)
    engine_job("train", params, tmp_path, "train")
    config = json.loads((tmp_path / "train" / "adapter" / "adapter_config.json").read_text())
    if method == "dora":
        assert config["use_dora"] is True
    else:  # converted to a plain LoRA adapter for the original base (rank doubles)
        assert config["r"] == 8 and config["init_lora_weights"] is True
    evals = engine_job(
        "eval",
        {
            "base_model": str(tiny_model),
            "dataset": str(dataset),
            "adapter": str(tmp_path / "train"),
            "max_seq_len": 256,
            "generations": 2,
            "max_new_tokens": 8,
        },
        tmp_path,
        "eval",
    )
    scores = metrics_of(evals)
    assert scores["adapter_eval_loss"] < scores["base_eval_loss"] - 0.2, scores
    assert 0 <= scores["adapter_chrf"] <= 100


def test_eval_compares_three_and_merge_matches(
    daemon: Daemon, tiny_model: Path, dataset: Path
) -> None:
    dataset_id = daemon.imported(dataset)
    first = daemon.call(
        "jobs.submit", kind="train", params=train_params(tiny_model, dataset_id, max_steps=6)
    )
    second = daemon.call(
        "jobs.submit", kind="train", params=train_params(tiny_model, dataset_id, max_steps=18)
    )
    for j in (first, second):
        assert daemon.wait_job(j["id"], {"completed", "failed"}, 240)["status"] == "completed"
    ev = daemon.call(
        "jobs.submit",
        kind="eval",
        params={
            "base_model": str(tiny_model),
            "dataset": dataset_id,
            "adapter": second["id"],
            "previous_adapter": first["id"],
            "max_seq_len": 256,
            "generations": 3,
            "max_new_tokens": 16,
        },
    )
    assert daemon.wait_job(ev["id"], {"completed", "failed"}, 240)["status"] == "completed"
    values = {m["name"]: m["value"] for m in daemon.call("jobs.metrics", id=ev["id"])["metrics"]}
    assert {
        "base_eval_loss",
        "adapter_eval_loss",
        "previous_eval_loss",
        "base_chrf",
        "adapter_chrf",
        "previous_chrf",
    } <= set(values)
    assert values["adapter_eval_loss"] < values["previous_eval_loss"] < values["base_eval_loss"]

    merge = daemon.call(
        "jobs.submit",
        kind="merge",
        params={"base_model": str(tiny_model), "adapter": second["id"], "name": "tiny-merged"},
    )
    merged = daemon.wait_job(merge["id"], {"completed", "failed"}, 240)
    assert merged["status"] == "completed", merged["error"]
    art = merged["artifacts"][0]
    assert art["kind"] == "merged-model" and art["max_logit_diff"] < 1e-4
    folder = daemon.paths.models_dir / "tiny-merged"
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert "lora" not in (folder / "model.safetensors").read_bytes()[:20000].decode(errors="ignore")
    kinds = {m["kind"] for m in daemon.call("models.list")["models"]}
    assert {"adapter", "merged"} <= kinds

    # The playground's infer job streams the answer; the merged model writes the same tokens.
    with_adapter = infer(daemon, {"base_model": str(tiny_model), "adapter": second["id"]})
    from_merged = infer(daemon, {"base_model": "tiny-merged"})
    assert with_adapter == from_merged and len(with_adapter) > 0


def infer(daemon: Daemon, target: dict[str, Any]) -> str:
    """The streamed answer of an infer job, checked against the one its summary reports."""
    job = daemon.call(
        "jobs.submit",
        kind="infer",
        params={**target, "prompt": "How do I use the widget API?", "max_new_tokens": 24},
    )
    pieces: list[str] = []
    with daemon.client() as c:
        c.call("events.subscribe", since=0, job_id=job["id"], types=["job.token", "job.status"])
        for event in c.events():
            if event["type"] == "job.token":
                pieces.append(event["data"]["text"])
            elif event["data"].get("status") in ("completed", "failed", "cancelled"):
                assert event["data"]["status"] == "completed", daemon.call("jobs.get", id=job["id"])
                assert "".join(pieces) == event["data"]["summary"]["text"]
                return "".join(pieces)
    raise AssertionError("the event stream ended")


def test_backends_that_cannot_run_here_say_why() -> None:
    if cuda_available():
        pytest.skip("this machine has CUDA; the CPU-only refusals do not apply")
    for params, message in [
        ({"method": "qlora"}, "needs an NVIDIA GPU with CUDA"),
        ({"backend": "unsloth"}, "unsloth needs an NVIDIA GPU with CUDA"),
    ]:
        with pytest.raises(EngineError, match=message):
            choose_backend(TrainParams.model_validate({"dataset": "d.jsonl", **params}))
    backend, why = choose_backend(TrainParams.model_validate({"dataset": "d.jsonl"}))
    assert backend == "peft" and "no GPU" in why


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="needs an NVIDIA GPU with CUDA (none here)")
def test_qlora_on_cuda(tiny_model: Path, dataset: Path, tmp_path: Path) -> None:
    engine_job(
        "train", train_params(tiny_model, dataset, method="qlora", max_steps=4), tmp_path, "run"
    )


@pytest.mark.mlx
@pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlx_lm") is None,
    reason="needs mlx-lm (pip install 'ai-forge[mlx]'); not installed here",
)
def test_mlx_backend_trains_and_saves_a_peft_adapter(tiny_model: Path, tmp_path: Path) -> None:
    small = write_dataset(tmp_path / "small.jsonl", 48, seed=5)
    params = train_params(
        tiny_model,
        small,
        backend="mlx",
        max_steps=3,
        batch_size=1,  # mlx-lm drops a partial batch; 1 scores every example
        checkpoint_every=2,
        val_fraction=0.15,
    )
    events = engine_job("train", params, tmp_path, "run")
    assert any(e["type"] == "checkpoint" for e in events)
    mlx_final = [
        e["values"]["eval_loss"]
        for e in events
        if e["type"] == "metric" and "eval_loss" in e["values"]
    ][-1]
    adapter = tmp_path / "run" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["peft_type"] == "LORA"
    # The converted adapter, applied by PEFT, scores what mlx scored on the same held-out data.
    evals = engine_job(
        "eval",
        {
            "base_model": str(tiny_model),
            "dataset": str(small),
            "adapter": str(adapter),
            "max_seq_len": 256,
            "val_fraction": 0.15,
            "generations": 0,
        },
        tmp_path,
        "eval",
    )
    scores = metrics_of(evals)
    assert abs(scores["adapter_eval_loss"] - mlx_final) < 1e-3 * mlx_final, (scores, mlx_final)
    assert scores["adapter_eval_loss"] != scores["base_eval_loss"]


def test_early_stopping_ends_a_run_that_stops_improving(
    tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    # A learning rate far too high: held-out loss gets worse, and the run must notice.
    params = train_params(
        tiny_model,
        dataset,
        max_steps=40,
        learning_rate=0.5,
        eval_every=2,
        early_stopping_patience=2,
        early_stopping_min_delta=0.01,
    )
    events = engine_job("train", params, tmp_path, "run")
    done = next(e for e in events if e["type"] == "done")["summary"]
    assert done["stopped_early"] is True and done["steps"] < 40
    assert any(e["type"] == "log" and e["message"].startswith("early stop at step") for e in events)


def test_the_batch_is_what_the_free_memory_holds_of_a_measured_row() -> None:
    from engine.memory_probe import batch_for

    mib = 2**20
    # Half of 1 GiB holds five rows of 100 MiB; a CPU also keeps to about 4k tokens a step.
    assert batch_for(100 * mib, 1024 * mib, "cpu", 512) == 5
    assert batch_for(1 * mib, 1024 * mib, "cpu", 512) == 8
    assert batch_for(1 * mib, 1024 * mib, "cpu", 2048) == 2
    assert batch_for(1 * mib, 64 * 1024 * mib, "cuda:0", 2048) == 64
    # Never none, even where one row does not fit: the job then says it ran out of memory.
    assert batch_for(4096 * mib, 1024 * mib, "cuda", 512) == 1


def test_a_row_of_training_is_measured_on_this_machine() -> None:
    import sys

    import pytest

    from engine.memory_probe import measure_row

    if not sys.platform.startswith("linux"):
        pytest.skip("the resident-set peak is reset through /proc on Linux only")
    grown: list[bytearray] = []
    measured = measure_row(lambda: grown.append(bytearray(b"\x01") * (64 * 2**20)), "cpu")
    assert measured is not None and 60 * 2**20 <= measured <= 80 * 2**20


def test_a_stop_in_the_middle_of_a_step_keeps_the_steps_before_it(
    tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    """SIGTERM lands inside a long step (many micro-batches): the job stops at once, without
    finishing the step, and its checkpoint holds the steps completed before it."""
    import signal

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    params = train_params(tiny_model, dataset, max_steps=50, grad_accum=30, checkpoint_every=50)
    spec = {
        "job_id": "stop",
        "kind": "train",
        "params": params,
        "run_dir": str(run_dir),
        "models_dir": str(tmp_path / "models"),
        "datasets_dir": str(dataset.parent),
    }
    (run_dir / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", str(run_dir / "spec.json")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["type"] == "progress" and events[-1].get("stage") == "train":
            proc.send_signal(signal.SIGTERM)  # step 2 of 50 has just begun
            break
    events += [json.loads(line) for line in proc.stdout]
    assert proc.wait(timeout=120) == 143
    steps = [e["step"] for e in events if e["type"] == "progress" and e.get("stage") == "train"]
    checkpoints = [e["step"] for e in events if e["type"] == "checkpoint"]
    assert steps == [1] and checkpoints == [1], events
    (saved,) = [Path(e["path"]) for e in events if e["type"] == "checkpoint"]
    assert (saved / "adapter_model.safetensors").exists()


def test_a_train_job_continues_an_adapter_and_refuses_one_that_does_not_fit(
    daemon: Daemon, tiny_model: Path, dataset: Path
) -> None:
    data = daemon.imported(dataset)
    first = daemon.call("jobs.submit", kind="train", params=train_params(tiny_model, data))
    done = daemon.wait_job(first["id"], {"completed", "failed"}, timeout=240)
    assert done["status"] == "completed", done["error"]
    ended = metric(daemon, first["id"], "eval_loss")[-1][1]
    # Given by the first job's id: it starts where the first ended (the same held-out rows),
    # not at the base's loss.
    params = train_params(tiny_model, data, max_steps=2, init_adapter=first["id"])
    second = daemon.call("jobs.submit", kind="train", params=params)
    assert second["params"]["init_adapter"].endswith(f"{first['id']}/adapter")
    done = daemon.wait_job(second["id"], {"completed", "failed"}, timeout=240)
    assert done["status"] == "completed", done["error"]
    starts = metric(daemon, second["id"], "eval_loss")[0]
    assert starts[0] == 0 and abs(starts[1] - ended) < 1e-3 * ended, (starts, ended)
    base = metric(daemon, first["id"], "eval_loss")[0][1]
    assert starts[1] < base - 0.1, (starts, base)
    logs = " ".join(x["line"] for x in daemon.call("jobs.logs", id=second["id"])["lines"])
    assert "continuing adapter" in logs and "the optimizer starts fresh" in logs
    record = json.loads(Path(done["summary"]["adapter"], "forge_train.json").read_text())
    assert record["init_adapter"] == second["params"]["init_adapter"]
    # Another rank is another adapter: refused, saying why.
    params = train_params(tiny_model, data, rank=4, max_steps=2, init_adapter=first["id"])
    refused = daemon.call("jobs.submit", kind="train", params=params)
    failed = daemon.wait_job(refused["id"], {"completed", "failed"}, timeout=240)
    assert failed["status"] == "failed"
    assert "params.init_adapter" in failed["error"] and "rank 8" in failed["error"], failed


def test_general_replay_mixes_in_the_bases_own_answers_to_prompts_not_held_out(
    daemon: Daemon, tiny_model: Path, dataset: Path
) -> None:
    from engine.held_out import HELD_OUT_PROMPTS, general_prompts

    params = train_params(tiny_model, daemon.imported(dataset), max_steps=2, general_replay=0.1)
    job = daemon.call("jobs.submit", kind="train", params=params)
    done = daemon.wait_job(job["id"], {"completed", "failed"}, timeout=240)
    assert done["status"] == "completed", done["error"]
    logs = " ".join(x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"])
    found = re.search(r"replay: (\d+) rows of the base's own answers", logs)
    assert found and int(found.group(1)) > 0, logs
    made = list((daemon.paths.data_dir / "general-sets").glob("replay-*.jsonl"))
    assert len(made) == 1
    asked = {json.loads(line)["messages"][0]["content"] for line in made[0].open()}
    prompts = general_prompts()
    assert asked and asked <= set(prompts[HELD_OUT_PROMPTS:])  # never a held-out prompt


def test_a_persons_own_general_set_is_scored_and_must_be_in_the_data_dir(
    daemon: Daemon, tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    from forge_client.client import RemoteError

    dataset_id = daemon.imported(dataset)
    params = {
        "base_model": str(tiny_model),
        "dataset": dataset_id,
        "general_dataset": dataset_id,
        "max_seq_len": 256,
        "generations": 0,
    }
    ev = daemon.call("jobs.submit", kind="eval", params=params)
    assert ev["params"]["general_dataset"] == ev["params"]["dataset"]  # the id resolved
    assert daemon.wait_job(ev["id"], {"completed", "failed"}, 240)["status"] == "completed"
    names = {m["name"] for m in daemon.call("jobs.metrics", id=ev["id"])["metrics"]}
    assert "base_eval_loss_general" in names, names
    outside = tmp_path / "mine.jsonl"
    outside.write_text(dataset.read_text())
    with pytest.raises(RemoteError) as refused:
        daemon.call("jobs.submit", kind="eval", params=params | {"general_dataset": str(outside)})
    assert refused.value.data["param"] == "params.general_dataset", refused.value.data
