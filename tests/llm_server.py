"""Real OpenAI-compatible servers on loopback for the endpoint backend's tests.

`llama_cpp_server` runs llama-cpp-python's own server (`python -m llama_cpp.server`) on the
embedded GGUF, as a person would run llama-server or Ollama. `StallingServer` is a small
server that answers like one and then goes silent mid-reply: the one failure a healthy real
server cannot be made to show on demand.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

STARTUP_DEADLINE_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def llama_cpp_server(model: Path, log: Path, n_ctx: int = 2048) -> Iterator[RunningServer]:
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        pytest.importorskip(module, reason="the llama-cpp-python server needs the test extra: pip install -e '.[test]'")
    from memdesk.engine.errors import EndpointUnavailableError
    from memdesk.engine.llm.endpoint import Timeouts, list_models

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its "Disconnected from client" line reaches the log at once
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", str(n_ctx)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    server = RunningServer(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            try:
                list_models(server.url, Timeouts(connect_s=1.0, listing_s=5.0))
                break
            except EndpointUnavailableError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server did not answer within {STARTUP_DEADLINE_S:g} s:\n"
                                         f"{server.log_text()[-3000:]}") from None
            try:  # wait for the process to exit, at most a moment: that is the polling interval
                code = proc.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"the server exited with {code}:\n{server.log_text()[-3000:]}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class StallingServer:
    """Lists one model; a chat completion streams `pieces`, then stays silent until released."""

    MODEL = "stall-model"

    def __init__(self, pieces: tuple[str, ...] = ("Hello", " there")):
        self.pieces = pieces
        self.release = threading.Event()
        self.silent = threading.Event()  # set once the pieces are sent
        self.closed_by_client = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                self._send(200, {"object": "list", "data": [{"id": owner.MODEL, "object": "model"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for piece in owner.pieces:
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                owner.silent.set()
                owner.release.wait(timeout=60)
                # The client hung up meanwhile: reading finds the end of the stream.
                self.connection.settimeout(0.5)
                try:
                    if self.connection.recv(1) == b"":
                        owner.closed_by_client.set()
                except OSError:
                    pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
