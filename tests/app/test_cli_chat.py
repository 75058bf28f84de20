"""`memdesk chat` end to end on the real embedded model (llama.cpp)."""
from __future__ import annotations

import json

import pytest

from tests.app.test_cli import memdesk, ok

pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")


def test_chat_streams_a_reply_and_remembers_the_fact_for_a_later_session():
    # The full layout, whose memory prefix activation memory keeps between processes.
    first = json.loads(ok("chat", "My sister Ana lives in Lisbon.", "--json", "--max-tokens", "24",
                          "--context", "full").stdout)
    assert first["reply"].strip() and first["session_id"]
    assert first["stats"]["completion_tokens"] > 0 and first["stats"]["ttft_ms"] > 0
    # Fine extraction ran before the process exited: the fact is a memory of its own.
    hits = json.loads(ok("search", "sister Ana", "--json", "--type", "UserMemory").stdout)
    assert any("sister Ana lives in Lisbon" in h["item"]["memory"] for h in hits)
    fact = next(h["item"]["id"] for h in hits if "Lisbon" in h["item"]["memory"])

    later = json.loads(ok("chat", "Where does my sister live?", "--json", "--max-tokens", "24",
                          "--context", "full").stdout)
    assert later["session_id"] != first["session_id"]
    assert fact in later["memory_ids"]
    # The memory prefix computed by the first process was kept (encrypted) and restored here.
    assert first["activation"] == "stored" and later["activation"] == "hit"
    # The embedded model's own layout answers the personal question from the memory.
    compact = json.loads(ok("chat", "Which city does my sister live in?", "--json").stdout)
    assert compact["profile"] == "compact" and "Lisbon" in compact["reply"] and fact in compact["memory_ids"]


def test_chat_with_a_missing_model_names_the_path(tmp_path):
    proc = memdesk("chat", "hello", "--model", str(tmp_path / "missing.gguf"))
    assert proc.returncode == 7
    assert "missing.gguf" in proc.stderr and "Traceback" not in proc.stderr
