"""Talking to Ollama through its official client, with failures turned into what to do next.

Every call the engine makes to Ollama goes through `talking_to`, so a server that is not running,
a connection that breaks during an upload and a request Ollama refuses each end the job with a
message that names the server, what was being done, and how to fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import EngineError

DEFAULT_HOST = "127.0.0.1:11434"


def shown_host(host: str | None) -> str:
    """The server a client made with `host` talks to, as a person would write it."""
    return host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


def client(host: str | None, timeout: float | None = None) -> Any:
    import ollama

    return ollama.Client(host=host or None, timeout=timeout)


class NotFound(EngineError):
    """Ollama answered 404: the model (or blob) asked for is not there."""


@contextlib.contextmanager
def talking_to(host: str | None, doing: str) -> Iterator[None]:
    """Run Ollama calls; any failure becomes an EngineError saying where, what and why."""
    import httpx
    import ollama

    where = shown_host(host)
    try:
        yield
    except ConnectionError as exc:
        raise EngineError(
            f"Ollama is not reachable at {where} while {doing}: is it running? Start it with "
            "`ollama serve`, or set `ollama.host` in config.toml (or OLLAMA_HOST) to where it "
            "listens"
        ) from exc
    except ollama.ResponseError as exc:
        message = f"Ollama at {where} refused {doing}: {exc.error} (HTTP {exc.status_code})"
        if exc.status_code == 404:
            raise NotFound(message) from exc
        raise EngineError(message) from exc
    except httpx.HTTPError as exc:
        raise EngineError(
            f"the connection to Ollama at {where} broke while {doing}: "
            f"{type(exc).__name__}: {exc or 'no reason given'}"
        ) from exc


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def upload(api: Any, host: str | None, path: Path) -> tuple[str, bool]:
    """Put one file in Ollama's blob store: (digest, whether it had to be sent).

    A blob Ollama already holds (HEAD answers 200) is not sent again: a second deploy on the same
    base costs only the adapter. Ollama checks the digest of what arrives, so a cut upload is
    refused rather than stored.
    """
    digest = file_digest(path)
    with talking_to(host, f"checking for {path.name} ({digest[:19]}…)"):
        # The client has no call for HEAD /api/blobs/:digest; its own HTTP session does it.
        if api._client.head(f"/api/blobs/{digest}").status_code == 200:
            return digest, False
    with talking_to(host, f"uploading {path.name} ({path.stat().st_size} bytes)"):
        sent = api.create_blob(path)
    if sent != digest:
        raise EngineError(f"{path} changed while it was being uploaded to Ollama; deploy again")
    return digest, True


def chat_format(model_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """The Go template and stop parameters for a model whose chat format we know, else none.

    Ollama reads the usual chat templates from tokenizer_config.json itself; the tiny model's
    own format is not one it knows, so it gets the same format written as a Go template.
    """
    from engine.tiny_model import CHAT_TEMPLATE, OLLAMA_STOP, OLLAMA_TEMPLATE

    template = ""
    jinja = model_dir / "chat_template.jinja"
    config = model_dir / "tokenizer_config.json"
    if jinja.exists():
        template = jinja.read_text(encoding="utf-8")
    elif config.exists():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template") or ""
    if template == CHAT_TEMPLATE:
        return OLLAMA_TEMPLATE, {"stop": OLLAMA_STOP}
    return None, {}
