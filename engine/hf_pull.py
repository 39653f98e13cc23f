"""`forge models pull HF_ID`: a model's files from the Hugging Face Hub, through huggingface_hub.

Only what transformers needs to load and train the model is fetched (config, tokenizer, chat
template, and the safetensors weights, or the PyTorch ones where a repository has no others),
never the ONNX, GGUF, Flax or TF copies many repositories also hold. Files land in a folder
kept per model under the models dir (`.pull/<name>`), so pulling again after a failure or a
cancel fetches only the files that had not arrived (a model's weights usually come in shards of
a few GB); within one pull huggingface_hub resumes a file whose connection dropped from the last
piece written. (It keeps no partial file across processes since 1.x, so a file cut by a cancel
starts over.) The hub is whatever `HF_ENDPOINT` names (a mirror, or a local server in the
tests); a token comes from the usual `HF_TOKEN` or `hf auth login`.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import control
from engine.errors import EngineError
from engine.events import Emitter

PREFIX = "hf:"
# Loaded by transformers: configuration, tokenizer, chat template.
SMALL_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
]
SAFETENSORS = ["*.safetensors", "model.safetensors.index.json"]
PYTORCH = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
MiB = 2**20


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`hf:ORG/NAME[@REVISION]` → (repo id, revision)."""
    repo, _, revision = ref.removeprefix(PREFIX).partition("@")
    if repo.count("/") > 1 or not repo.strip("/"):
        raise EngineError(f"{ref}: want hf:ORG/NAME or hf:ORG/NAME@REVISION")
    return repo, revision or None


def pulled_name(ref: str) -> str:
    """A folder name for a pulled model: `hf:HuggingFaceTB/SmolLM2-135M` → `SmolLM2-135M`."""
    return parse_ref(ref)[0].rsplit("/", 1)[-1]


def wanted(files: dict[str, int]) -> list[str]:
    """The files of a repository (path → size) a transformers model folder needs, top level
    only; the safetensors weights where there are any, else the PyTorch ones."""
    top = [f for f in files if "/" not in f]
    weights = [f for f in top if any(fnmatch.fnmatch(f, p) for p in SAFETENSORS)]
    if not weights:
        weights = [f for f in top if any(fnmatch.fnmatch(f, p) for p in PYTORCH)]
    if not weights:
        raise EngineError(
            f"no weights to train on ({', '.join(SAFETENSORS[:1] + PYTORCH[:1])}) among "
            f"{len(files)} files: {', '.join(sorted(files)[:8])}"
        )
    return sorted(f for f in top if f in SMALL_FILES) + sorted(weights)


def _progress_bar(report: Callable[[int], None]) -> type[Any]:
    """A tqdm class for huggingface_hub that reports each downloaded chunk's bytes."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no bar on the job's stdout: that is the event stream
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            report(int(n or 0))
            control.check()  # a cancel stops the download between chunks; it resumes later
            return None

    return Reporting


def pull(ref: str, dest: Path, events: Emitter) -> dict[str, Any]:
    """Download the model `ref` names into `dest`; returns where it came from."""
    from huggingface_hub import HfApi, constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    # Read in 1 MiB pieces (10 MiB by default): progress, a cancel and the point a later pull
    # resumes from all move with each piece written.
    constants.DOWNLOAD_CHUNK_SIZE = MiB

    repo, revision = parse_ref(ref)
    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    except OfflineModeIsEnabled as exc:
        raise EngineError(f"{ref}: HF_HUB_OFFLINE is set in the daemon's environment") from exc
    except HfHubHTTPError as exc:
        raise EngineError(f"{ref}: the hub refused: {exc}") from exc
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    files = wanted(sizes)
    total = sum(sizes[f] for f in files)
    events.log(
        f"pulling {repo} at {str(info.sha)[:12]}: {len(files)} files, {total / MiB:,.1f} MiB"
        f" into {dest}"
    )
    done = last_tenth = 0
    last = 0.0
    started = time.monotonic()

    def report(n: int) -> None:
        nonlocal done, last, last_tenth
        done += n
        now = time.monotonic()
        if now - last >= 1.0 or done >= total:
            last = now
            events.progress(done // MiB, max(1, total // MiB), stage="download")
        tenth = done * 10 // max(total, 1)
        if tenth > last_tenth:  # a log line every 10 %: what `forge models pull` prints
            last_tenth = tenth
            rate = done / MiB / max(now - started, 1e-3)
            events.log(
                f"downloaded {min(done, total) / max(total, 1):.0%} ({done / MiB:,.1f} of"
                f" {total / MiB:,.1f} MiB, {rate:,.1f} MiB/s)"
            )

    bar = _progress_bar(report)
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        before = (dest / name).stat().st_size if (dest / name).exists() else 0
        try:
            hf_hub_download(repo, name, revision=info.sha, local_dir=dest, tqdm_class=bar)
        except HfHubHTTPError as exc:
            raise EngineError(f"{ref}: downloading {name} failed: {exc}") from exc
        if before == sizes[name]:
            report(sizes[name])  # already here from an earlier pull: counted, not fetched
        control.check()
    events.progress(max(1, total // MiB), max(1, total // MiB), stage="download")
    seconds = time.monotonic() - started
    events.log(
        f"pulled {total / MiB:,.1f} MiB in {seconds:.0f} s ({total / MiB / max(seconds, 1e-3):,.1f}"
        " MiB/s)"
    )
    return {"hf_id": repo, "revision": info.sha, "files": files}
