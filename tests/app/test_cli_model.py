"""`memdesk model ...` for real, in subprocesses, against a loopback Hub (HF_ENDPOINT) that
serves the embedded GGUF under the shipped catalog's name for Qwen2.5-0.5B."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bench.hub_server import LoopbackHub
from memdesk.engine.llm.catalog import load_catalog
from memdesk.engine.llm.registry import embedded_model_path
from tests.app.test_cli import ROOT, memdesk, ok

NAME = "qwen2.5-0.5b-instruct"


@pytest.fixture
def hub(monkeypatch):
    entry = load_catalog().get(NAME)
    server = LoopbackHub()
    server.add_file(entry.gguf.repo, entry.gguf.file, embedded_model_path())
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield server


def settings(data_dir) -> dict:
    return json.loads((data_dir / "profiles" / "default" / "settings.json").read_text())


def listing() -> dict:
    return json.loads(ok("model", "list", "--json").stdout)


def test_download_use_list_and_remove_a_catalog_model(hub, data_dir):
    proc = ok("model", "download", NAME, "--json")
    result = json.loads(proc.stdout)
    path = data_dir / "models" / NAME / load_catalog().get(NAME).gguf.file
    assert result["path"] == str(path) and path.read_bytes() == embedded_model_path().read_bytes()
    assert result["licence"] == "Apache-2.0" and not result["in_use"] and not result["already_downloaded"]
    row = next(r for r in listing()["catalog"] if r["name"] == NAME)
    assert row["downloaded"] == ["gguf"] and row["in_use"] is False

    ok("model", "use", NAME)
    assert settings(data_dir)["model_path"] == str(path) and settings(data_dir)["model_source"] == "file"
    assert listing()["in_use"] == str(path)
    refused = memdesk("model", "remove", NAME)
    assert refused.returncode == 2 and "is the model MemDesk uses" in refused.stderr and path.exists()
    removed = json.loads(ok("model", "remove", NAME, "--force", "--json").stdout)
    assert removed["back_to_embedded"] and not path.exists() and settings(data_dir)["model_path"] == ""


def test_download_shows_progress_and_resumes_after_ctrl_c(hub, data_dir):
    size = embedded_model_path().stat().st_size
    hub.faults.stall_after = 20_000_000
    child = subprocess.Popen([sys.executable, "-m", "memdesk", "model", "download", NAME], cwd=ROOT,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert hub.stalled.wait(60)
        part = data_dir / "models" / NAME / (load_catalog().get(NAME).gguf.file + ".part")
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size == 20_000_000):  # the CLI is now blocked on the network
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)  # Ctrl-C in the terminal
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "Stopped" in err and f"memdesk model download {NAME}` again to resume" in err and "Traceback" not in err
    assert "%" in err and "licence: Apache-2.0" in err  # progress lines (a pipe: one per 10%) and the licence
    hub.release.set()
    hub.faults.stall_after = None
    again = ok("model", "download", NAME)
    assert "downloaded and verified" in again.stdout
    assert hub.ranges()[-1] == "bytes=20000000-" and hub.body_bytes() == size


def test_errors_have_their_own_exit_codes_and_say_what_to_do(hub, data_dir):
    missing = memdesk("model", "download", "llama-3.2-1b-instruct")  # this hub does not have it
    assert missing.returncode == 5 and "was not found" in missing.stderr and "Traceback" not in missing.stderr
    typo = memdesk("model", "download", "qwen2.5-0.5b")
    assert typo.returncode == 5 and "Did you mean" in typo.stderr
    assert memdesk("model", "download").returncode == 2
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    offline = memdesk("model", "download", NAME, env={**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert offline.returncode == 12 and "connection was refused" in offline.stderr
    hub.faults.wrong_sha256 = True
    tampered = memdesk("model", "download", NAME)
    assert tampered.returncode == 13 and "deleted unused" in tampered.stderr
    assert not any(p.suffix == ".gguf" for p in (data_dir / "models").rglob("*"))
    not_yet = memdesk("model", "use", NAME)
    assert not_yet.returncode == 5 and f"memdesk model download {NAME}" in not_yet.stderr
    export = memdesk("model", "export-mlx")
    assert export.returncode == 2 and "export-mlx OUT" in export.stderr


def test_add_a_model_in_place_use_it_and_forget_it(tmp_path, data_dir):
    mine = tmp_path / "My Model.Q4_K_M.gguf"
    mine.write_bytes(embedded_model_path().read_bytes()[:1 << 20])
    added = json.loads(ok("model", "add", str(mine), "--json").stdout)
    assert added == [{"name": "my-model.q4_k_m", "path": str(mine), "backend": "llama.cpp", "source": "added",
                      "size_bytes": 1 << 20, "origin": "file", "present": True}]
    ok("model", "use", "my-model.q4_k_m")
    assert settings(data_dir)["model_path"] == str(mine)
    assert listing()["added"][0]["in_use"] is True
    ok("model", "use", "embedded")
    assert settings(data_dir)["model_path"] == ""
    assert "its files were left" in ok("model", "remove", "my-model.q4_k_m").stdout and mine.exists()


def test_recommend_and_folder(tmp_path, data_dir):
    data = json.loads(ok("model", "recommend", "--json").stdout)
    assert data["default"] in load_catalog().names and data["hardware"]["total_ram"] > 0
    assert {m["fit"] for m in data["models"]} <= {"fits well", "slow", "will not fit"}
    text = ok("model", "recommend").stdout
    assert f"memdesk model download {data['default']} --use" in text
    chosen = tmp_path / "elsewhere"
    assert json.loads(ok("model", "folder", str(chosen), "--json").stdout) == {"models_folder": str(chosen)}
    assert listing()["models_folder"] == str(chosen)
    assert json.loads(ok("model", "folder", "--reset", "--json").stdout)["models_folder"] == str(data_dir / "models")
