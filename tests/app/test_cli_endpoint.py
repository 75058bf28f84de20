"""`memdesk chat --endpoint URL` against a real OpenAI-compatible server on loopback."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.app.test_cli import memdesk, ok
from tests.llm_server import free_port

pytestmark = pytest.mark.slow


def settings_file() -> Path:
    return Path(os.environ["MEMDESK_DATA_DIR"]) / "profiles" / "default" / "settings.json"


def test_chat_through_a_server_is_remembered_for_later_runs(llama_server):
    first = ok("chat", "My sister Ana lives in Lisbon.", "--endpoint", llama_server.url + "/v1", "--json",
               "--max-tokens", "24", "--n-ctx", "2048", "--no-extract")
    data = json.loads(first.stdout)
    assert data["reply"].strip() and data["session_id"]
    assert data["backend"] == "endpoint" and data["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert data["activation"] == "off" and data["stats"]["completion_tokens"] > 0
    assert "remembered" in first.stderr and "--no-endpoint" in first.stderr
    saved = json.loads(settings_file().read_text())
    assert saved["model_source"] == "endpoint" and saved["endpoint_url"] == llama_server.url
    assert saved["endpoint_model"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")

    # No flag: the remembered server answers, and nothing new is said about it.
    later = ok("chat", "Where does my sister live?", "--json", "--max-tokens", "24", "--n-ctx", "2048",
               "--no-extract")
    again = json.loads(later.stdout)
    assert again["backend"] == "endpoint" and again["reply"].strip()
    assert "remembered" not in later.stderr
    # The first turn is a memory now, and the later turn was given it.
    assert any("Lisbon" in text for text in again["memories"])


def test_a_server_that_is_not_running_gives_its_own_exit_code_and_is_not_remembered():
    port = free_port()
    proc = memdesk("chat", "hello", "--endpoint", f"127.0.0.1:{port}", "--no-extract")
    assert proc.returncode == 14, proc.stderr
    assert f"Nothing answers at http://127.0.0.1:{port} — is the model server running?" in proc.stderr
    assert "Settings" in proc.stderr and "Traceback" not in proc.stderr
    assert not settings_file().exists()


def test_addresses_off_this_computer_and_mixed_flags_are_refused():
    proc = memdesk("chat", "hello", "--endpoint", "http://192.168.1.20:11434")
    assert proc.returncode == 2 and "not this computer" in proc.stderr
    proc = memdesk("chat", "hello", "--endpoint", "http://127.0.0.1:11434", "--model", "x.gguf")
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc = memdesk("chat", "hello", "--endpoint-model", "llama3")
    assert proc.returncode == 2 and "--endpoint URL" in proc.stderr
