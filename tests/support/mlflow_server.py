"""A local server speaking the MLflow tracking server's REST API (the `/api/2.0/mlflow/` calls a
client makes to create an experiment and a run, log a batch and end the run), so a test reaches
MLflow's own client over real HTTP without an MLflow server installed. It keeps what it was sent."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.http_fake import LocalServer

API = "/api/2.0/mlflow/"


class FakeMlflow:
    """Experiments and runs in memory; `calls` lists every path asked for."""

    def __init__(self) -> None:
        self.experiments: dict[str, str] = {}  # name → id
        self.runs: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self._server: LocalServer | None = None

    @property
    def uri(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> FakeMlflow:
        self._server = LocalServer(self._handler())
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def answer(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append(f"{method} {path}")
            return self._answer(method, path, body)

    def _answer(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "experiments/get-by-name":
            name = body.get("experiment_name", "")
            if name not in self.experiments:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"no {name}"}
            return 200, {"experiment": self._experiment(name)}
        if path == "experiments/create":
            self.experiments[body["name"]] = str(len(self.experiments) + 1)
            return 200, {"experiment_id": self.experiments[body["name"]]}
        if path == "runs/create":
            run_id = f"run{len(self.runs) + 1:04d}"
            tags = {t["key"]: t["value"] for t in body.get("tags", [])}
            self.runs[run_id] = {
                "info": {
                    "run_id": run_id,
                    "run_uuid": run_id,
                    "experiment_id": body["experiment_id"],
                    "run_name": body.get("run_name", ""),
                    "status": "RUNNING",
                    "start_time": body.get("start_time", int(time.time() * 1000)),
                    "lifecycle_stage": "active",
                    "artifact_uri": f"mlflow-artifacts:/{run_id}",
                },
                "tags": tags,
                "params": {},
                "metrics": [],
            }
            return 200, {"run": self._run(run_id)}
        run = self.runs.get(body.get("run_id") or body.get("run_uuid") or "")
        if run is None:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"no {path}"}
        if path == "runs/get":
            return 200, {"run": self._run(run["info"]["run_id"])}
        if path == "runs/log-batch":
            for p in body.get("params", []):
                run["params"].setdefault(p["key"], p["value"])
            run["metrics"].extend(body.get("metrics", []))
            run["tags"].update({t["key"]: t["value"] for t in body.get("tags", [])})
            return 200, {}
        if path == "runs/update":
            run["info"]["status"] = body.get("status", run["info"]["status"])
            run["info"]["end_time"] = body.get("end_time")
            return 200, {"run_info": run["info"]}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"{method} {path}"}

    def _experiment(self, name: str) -> dict[str, Any]:
        return {
            "experiment_id": self.experiments[name],
            "name": name,
            "lifecycle_stage": "active",
            "artifact_location": "mlflow-artifacts:/",
        }

    def _run(self, run_id: str) -> dict[str, Any]:
        run = self.runs[run_id]
        return {
            "info": run["info"],
            "data": {
                "tags": [{"key": k, "value": v} for k, v in run["tags"].items()],
                "params": [{"key": k, "value": v} for k, v in run["params"].items()],
                "metrics": [],
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                body: dict[str, Any] = dict(urllib.parse.parse_qsl(url.query))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    body.update(json.loads(self.rfile.read(length) or b"{}"))
                path = url.path.removeprefix(API) if url.path.startswith(API) else url.path
                status, answer = fake.answer(method, path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

        return Handler
