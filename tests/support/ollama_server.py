"""A local HTTP server that speaks Ollama's API for the calls forge makes, for the tests.

It keeps what a real Ollama keeps for those calls: content-addressed blobs (the digest of what
arrives is checked, and a body cut short is not stored), models created `from` another model with
adapters or from uploaded safetensors files, tags, copies (aliases), deletes, and streamed
`generate`/`chat` answers as NDJSON. It refuses what Ollama refuses: a missing blob or model, an
architecture it cannot import or put adapters on, and the rest of Ollama's rules, each named
with the file of Ollama's source it mirrors (below). Answers are made from the prompt, not a model:
`<model> heard: <prompt words>`, one word per chunk.

Faults on request: `cut_uploads_after` closes the connection after that many bytes of a blob
upload (a partial upload); `token_delay_s` slows the stream (to cancel in the middle).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.support.http_fake import LocalServer

# Ollama's rules, each from the file of its source that makes it:
IMPORT_ARCHITECTURES = frozenset(
    # convert/convert.go, LoadModelMetadata: the safetensors models it converts (text ones).
    {
        "LlamaForCausalLM", "MixtralForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM",
        "Gemma3ForCausalLM", "Phi3ForCausalLM", "Qwen2ForCausalLM", "Olmo3ForCausalLM",
        "CohereForCausalLM", "GptOssForCausalLM", "DeepseekV3ForCausalLM", "Ministral3ForCausalLM",
    }
)  # fmt: skip
SAFETENSORS_ADAPTER_ARCHITECTURES = frozenset({"llama", "gemma2"})
"""convert/convert.go, ConvertAdapter: a safetensors adapter only onto these base architectures
(the base GGUF's general.architecture); "unsupported architecture" otherwise."""
DEFAULT_ROPE_THETA = 10_000.0
"""convert/convert_llama.go reads `rope_theta` only at the top of config.json; without it the
GGUF has no rope base and llama.cpp runs the model at its default, 10,000."""


def gguf_fields(blob: bytes) -> dict[str, Any]:
    """The metadata of a GGUF blob, read by the `gguf` package as Ollama's own reader would."""
    import tempfile

    from engine.gguf_import import gguf_metadata

    with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
        f.write(blob)
        f.flush()
        return gguf_metadata(Path(f.name))


def safetensors_shapes(blob: bytes) -> dict[str, list[int]]:
    """Tensor name -> shape, from a safetensors blob's header."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def full_name(name: str) -> str:
    """Ollama's names: `x` is `x:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def now() -> str:
    return datetime.now(UTC).isoformat()


class OllamaError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeOllama:
    """The server's state and behaviour; `start()` serves it on a free local port."""

    def __init__(self, library: dict[str, str] | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        # Models by full name; the library models are "pulled" already (name -> family).
        self.models: dict[str, dict[str, Any]] = {}
        for name, family in (library or {"llama3.2:1b": "llama"}).items():
            self.models[full_name(name)] = {
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"family": family, "format": "gguf", "parameter_size": "1.2B"},
                "modified_at": now(),
            }
        self.requests: list[tuple[str, str]] = []
        self.cut_uploads_after: int | None = None
        self.token_delay_s = 0.0
        self.lock = threading.Lock()
        self.server: LocalServer | None = None

    # ---- serving -----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    def start(self) -> FakeOllama:
        fake = self

        class Handler(_Handler):
            ollama = fake

        self.server = LocalServer(Handler)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    # ---- the API -----------------------------------------------------------------------------

    def model(self, name: str) -> dict[str, Any]:
        found = self.models.get(full_name(name))
        if found is None:
            raise OllamaError(404, f"model '{name}' not found")
        return found

    def create(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        name = full_name(str(body["model"]))
        record: dict[str, Any] = {
            k: body.get(k) for k in ("from", "files", "adapters", "template", "system")
        }
        record["parameters"] = body.get("parameters") or {}
        statuses = []
        for digest in [*(body.get("files") or {}).values(), *(body.get("adapters") or {}).values()]:
            if digest not in self.blobs:
                raise OllamaError(400, f"blob {digest} not found; upload it first")
            statuses.append({"status": f"using existing layer {digest}"})
        if body.get("adapters"):
            if not body.get("from"):
                raise OllamaError(400, "adapters need a base model (from)")
            base = self.model(str(body["from"]))
            self.check_adapters(body["adapters"], base["details"].get("family"))
            record["details"] = dict(base["details"], parent_model=full_name(str(body["from"])))
        elif body.get("files"):
            files = body["files"]
            config = json.loads(self.blobs[files["config.json"]]) if "config.json" in files else {}
            arch = (config.get("architectures") or ["unknown"])[0]
            if arch not in IMPORT_ARCHITECTURES:
                raise OllamaError(400, f'unsupported architecture "{arch}"')
            if not any(f.endswith(".safetensors") for f in files):
                raise OllamaError(400, "no safetensors files to import")
            tokenizer = files.get("tokenizer_config.json")
            template = json.loads(self.blobs[tokenizer]).get("chat_template") if tokenizer else None
            if not body.get("template"):
                # convert/tokenizer.go: the template comes from tokenizer_config.json only.
                record["template"] = template
            record["details"] = {
                "family": config.get("model_type"),
                "format": "safetensors",
                "parameter_size": "tiny",
                "rope_theta": float(config.get("rope_theta") or DEFAULT_ROPE_THETA),
                "chat_template_read": bool(template),
            }
        elif body.get("from"):
            record["details"] = dict(self.model(str(body["from"]))["details"])
        else:
            raise OllamaError(400, "neither from nor files was given")
        manifest = json.dumps(record, sort_keys=True).encode()
        record["digest"] = hashlib.sha256(manifest).hexdigest()
        record["modified_at"] = now()
        with self.lock:
            self.models[name] = record
        return [{"status": "parsing model"}, *statuses, {"status": "writing manifest"}]

    def check_adapters(self, adapters: dict[str, str], family: str | None) -> None:
        """What Ollama does with an adapter layer, by its kind (server/create.go): a GGUF file
        is kept as it is (llama.cpp loads it onto the base, refusing another architecture's);
        safetensors go through convert/convert.go's ConvertAdapter."""
        blobs = {name: self.blobs[digest] for name, digest in adapters.items()}
        ggufs = {name: blob for name, blob in blobs.items() if blob[:4] == b"GGUF"}
        for name, blob in ggufs.items():
            meta = gguf_fields(blob)
            if (meta.get("general.type"), meta.get("adapter.type")) != ("adapter", "lora"):
                raise OllamaError(400, f"{name}: not a GGUF LoRA adapter")
            if meta.get("general.architecture") != family:
                # llama.cpp, src/llama-adapter.cpp, at load: the error Ollama reports.
                raise OllamaError(500, "model arch and LoRA arch mismatch")
        if ggufs:
            return
        if family not in SAFETENSORS_ADAPTER_ARCHITECTURES:
            raise OllamaError(400, "unsupported architecture")
        config = json.loads(blobs.get("adapter_config.json", b"{}"))
        alpha = config.get("lora_alpha")
        if alpha is not None and not isinstance(alpha, int):
            # AdapterParameters.Alpha is a uint32: Go's JSON decoder refuses 16.0.
            raise OllamaError(
                400,
                f"json: cannot unmarshal number {alpha} into Go struct field "
                "AdapterParameters.lora_alpha of type uint32",
            )
        for name, blob in blobs.items():
            if name.endswith(".safetensors"):
                for tensor, shape in safetensors_shapes(blob).items():
                    if len(shape) != 2:
                        # convert/convert_llama_adapter.go, repack: indexes shape[1].
                        raise OllamaError(500, f"{tensor}: index out of range [1] with length 1")

    def show(self, name: str) -> dict[str, Any]:
        m = self.model(name)
        params = "\n".join(f"{k} {v}" for k, v in (m.get("parameters") or {}).items())
        return {
            "modelfile": f"FROM {m.get('from') or name}",
            "parameters": params,
            "template": m.get("template") or "{{ .Prompt }}",
            "system": m.get("system") or "",
            "details": m["details"],
            "model_info": {"general.architecture": m["details"].get("family")},
            "capabilities": ["completion"],
            "modified_at": m["modified_at"],
        }

    def tags(self) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": n,
                    "model": n,
                    "modified_at": m["modified_at"],
                    "size": 1,
                    "digest": m["digest"],
                    "details": m["details"],
                }
                for n, m in sorted(self.models.items())
            ]
        }

    def answer_words(self, name: str, prompt: str, options: dict[str, Any]) -> list[str]:
        self.model(name)
        words = f"{name} heard: {prompt}".split()
        limit = int(options.get("num_predict") or 0)
        return words[:limit] if limit > 0 else words


class _Handler(BaseHTTPRequestHandler):
    ollama: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:  # quiet, like a test fixture
        pass

    # ---- plumbing ----------------------------------------------------------------------------

    def _body(self, cut_after: int | None = None) -> bytes | None:
        """The request body (plain or chunked); None when the connection is cut on purpose."""
        chunks = []
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if cut_after is not None and sum(map(len, chunks)) >= cut_after:
                    return None
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if cut_after is not None and length > cut_after:
            self.rfile.read(cut_after)
            return None
        return self.rfile.read(length)

    def _json(self) -> dict[str, Any]:
        raw = self._body() or b"{}"
        return dict(json.loads(raw))

    def _send(self, status: int, payload: Any = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _stream(self, lines: list[dict[str, Any]] | Any, delay: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        try:
            for line in lines:
                self.wfile.write(json.dumps(line).encode() + b"\n")
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: a cancelled answer

    def _handle(self, method: str) -> None:
        self.ollama.requests.append((method, self.path))
        try:
            self._route(method)
        except OllamaError as exc:
            self._send(exc.status, {"error": exc.message})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ---- routes ------------------------------------------------------------------------------

    def _route(self, method: str) -> None:
        o = self.ollama
        path = self.path.split("?", 1)[0]
        if path.startswith("/api/blobs/"):
            digest = path.removeprefix("/api/blobs/")
            if method == "HEAD":
                self._send(200 if digest in o.blobs else 404)
                return
            blob = self._body(o.cut_uploads_after)
            if blob is None:
                self.close_connection = True
                self.connection.close()  # a partial upload: nothing stored, no answer
                return
            got = "sha256:" + hashlib.sha256(blob).hexdigest()
            if got != digest:
                raise OllamaError(400, f"digest mismatch, expected {digest}, got {got}")
            o.blobs[digest] = blob
            self._send(201)
            return
        if (method, path) == ("GET", "/api/version"):
            self._send(200, {"version": "0.12.0"})
        elif (method, path) == ("GET", "/api/tags"):
            self._send(200, o.tags())
        elif (method, path) == ("POST", "/api/show"):
            self._send(200, o.show(str(self._json()["model"])))
        elif (method, path) == ("POST", "/api/create"):
            body = self._json()
            statuses = o.create(body)
            if body.get("stream", True):
                self._stream([*statuses, {"status": "success"}])
            else:
                self._send(200, {"status": "success"})
        elif (method, path) == ("POST", "/api/copy"):
            body = self._json()
            source = o.model(str(body["source"]))
            with o.lock:
                o.models[full_name(str(body["destination"]))] = dict(source, modified_at=now())
            self._send(200)
        elif (method, path) == ("DELETE", "/api/delete"):
            name = full_name(str(self._json()["model"]))
            o.model(name)
            with o.lock:
                del o.models[name]
            self._send(200)
        elif (method, path) in (("POST", "/api/generate"), ("POST", "/api/chat")):
            self._answer(path.endswith("chat"), self._json())
        else:
            raise OllamaError(404, f"{method} {path}: no such endpoint")

    def _answer(self, chat: bool, body: dict[str, Any]) -> None:
        name = str(body["model"])
        if chat:
            prompt = " ".join(m["content"] for m in body.get("messages", []) if m["role"] == "user")
        else:
            prompt = str(body.get("prompt", ""))
        words = self.ollama.answer_words(name, prompt, body.get("options") or {})

        def chunk(text: str, done: bool) -> dict[str, Any]:
            base: dict[str, Any] = {"model": name, "created_at": now(), "done": done}
            if chat:
                base["message"] = {"role": "assistant", "content": text}
            else:
                base["response"] = text
            if done:
                base |= {"done_reason": "stop", "eval_count": len(words), "total_duration": 1}
            return base

        pieces = [chunk(w + " ", False) for w in words]
        if not body.get("stream", True):
            self._send(200, chunk("".join(w + " " for w in words), True))
            return
        self._stream([*pieces, chunk("", True)], self.ollama.token_delay_s)
