"""A local HTTP server that speaks the Hugging Face Hub's API for the calls huggingface_hub
makes when forge pulls a model, for the tests (pointed at with HF_ENDPOINT).

It serves model folders on disk as repositories at one commit: `GET /api/models/{repo}` (and
`/revision/{rev}`) with the file list and sizes, `HEAD` and `GET /{repo}/resolve/{rev}/{file}`
with the headers huggingface_hub reads (X-Repo-Commit, ETag, Content-Length), byte ranges for
resuming, and the hub's 404 with `X-Error-Code: RepoNotFound`. It records every request, so a
test can see what was fetched twice. Faults on request: `bytes_per_s` slows file bodies (to
cancel a pull midway); `cut_once_after` drops the connection once after that many bytes of a
weights file (a network that fails mid-file).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.support.http_fake import LocalServer

CHUNK = 64 * 1024


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        # One commit per repository: the hash of its files' names and contents.
        self.commits = {name: self._commit(folder) for name, folder in repos.items()}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.bytes_per_s: float | None = None
        self.cut_once_after: int | None = None
        self.server: LocalServer | None = None

    @staticmethod
    def _commit(folder: Path) -> str:
        digest = hashlib.sha1()
        for f in sorted(folder.iterdir()):
            if f.is_file():
                digest.update(f.name.encode() + f.read_bytes())
        return digest.hexdigest()

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub.handle(self, body=True)

            def do_HEAD(self) -> None:
                hub.handle(self, body=False)

        self.server = LocalServer(Handler)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    # ---- the API --------------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append((h.command, path, h.headers.get("Range")))
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if info:
            return self._info(h, info.group(1), info.group(2))
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if resolve:
            return self._file(h, resolve.group(1), resolve.group(2), resolve.group(3), body)
        self._error(h, 404, "EntryNotFound", f"no route {path}")

    def _known(self, h: BaseHTTPRequestHandler, repo: str, revision: str | None) -> bool:
        if repo not in self.repos:
            self._error(h, 404, "RepoNotFound", f"Repository not found: {repo}")
            return False
        if revision not in (None, "main", self.commits[repo]):
            self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return False
        return True

    def _info(self, h: BaseHTTPRequestHandler, repo: str, revision: str | None) -> None:
        if not self._known(h, repo, revision):
            return
        folder = self.repos[repo]
        siblings = [
            {"rfilename": f.name, "size": f.stat().st_size, "blobId": _etag(f)}
            for f in sorted(folder.iterdir())
            if f.is_file()
        ]
        siblings.append({"rfilename": "onnx/model.onnx", "size": 10**9, "blobId": "0" * 40})
        data = {
            "_id": repo,
            "id": repo,
            "modelId": repo,
            "sha": self.commits[repo],
            "private": False,
            "disabled": False,
            "gated": False,
            "tags": ["transformers"],
            "siblings": siblings,
        }
        self._send(h, 200, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _file(
        self, h: BaseHTTPRequestHandler, repo: str, revision: str, name: str, body: bool
    ) -> None:
        if not self._known(h, repo, revision):
            return
        file = self.repos[repo] / name
        if "/" in name or not file.is_file():
            self._error(h, 404, "EntryNotFound", f"{name} is not in {repo}")
            return
        data = file.read_bytes()
        headers = {
            "X-Repo-Commit": self.commits[repo],
            "ETag": f'"{_etag(file)}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        start = 0
        if body and (asked := re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")):
            start = int(asked.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        status = 206 if start else 200
        if body and self.cut_once_after and name.endswith(".safetensors") and not start:
            cut, self.cut_once_after = self.cut_once_after, None
            h.send_response(200)
            for key, value in headers.items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[:cut])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        if not body:
            headers["Content-Length"] = str(len(data))
            self._send(h, 200, None, headers)
            return
        self._send(h, status, data[start:], headers)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(h, status, body, {"X-Error-Code": code, "X-Error-Message": message})

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes | None,
        headers: dict[str, str],
    ) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        if body is not None:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body is None:
            return
        try:
            for i in range(0, len(body), CHUNK):
                h.wfile.write(body[i : i + CHUNK])
                if self.bytes_per_s:
                    time.sleep(CHUNK / self.bytes_per_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-file (a cancelled pull)


def _etag(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()
