"""What a returned write promises: it survives a killed process, and a failed batch leaves nothing."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memdesk.engine.api import Memory
from memdesk.engine.cube import ChatMessage
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.vault import items as vault
from tests.conftest import FAST_KDF, PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys
    from memdesk.engine.api import Memory
    from memdesk.engine.vault.keys import KdfParams

    kdf = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
    mem = Memory.open(sys.argv[1], embedder=False, background=False, kdf=kdf)
    print("ready", flush=True)
    i = 0
    while True:
        result = mem.add(f"durable note {i} " + "padding words here " * 20, tags=[f"n{i % 7}"])
        print(result.id, flush=True)
        i += 1
""")


def _read_lines(proc: subprocess.Popen, wanted: int, deadline: float) -> tuple[list[str], bytes]:
    """At least `wanted` complete lines (more if they arrive together), and any partial tail."""
    lines: list[str] = []
    buffer = b""
    fd = proc.stdout.fileno()
    while len(lines) < wanted:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            break
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines.extend(line.decode() for line in complete)
    return lines, buffer


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_batch_loses_no_acknowledged_write(data_dir, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "MEMDESK_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(data_dir)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines, tail = _read_lines(proc, 51, time.monotonic() + 120)
        os.kill(proc.pid, signal.SIGKILL)  # while it is in the middle of the next add
    finally:
        if proc.poll() is None:
            proc.kill()
        rest, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert lines[:1] == ["ready"], stderr.decode()[-2000:]
    # Every complete line the child wrote before it died is an acknowledged add.
    acknowledged = lines[1:] + [ln.decode() for ln in (tail + rest).split(b"\n")[:-1]]
    assert len(acknowledged) >= 50, stderr.decode()[-2000:]
    assert len(set(acknowledged)) == len(acknowledged)

    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        for memory_id in acknowledged:
            assert mem.get(memory_id).memory.startswith("durable note ")
        count = mem.stats()["memories"]
        assert count >= len(acknowledged)
        # A killed writer leaves no half-row: every stored row is complete and searchable.
        assert len(mem.search("durable padding", k=1000)) == count
        with mem.db.read() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM memory_tags").fetchone()[0] == count


def test_batch_with_one_invalid_message_stores_nothing(kw_mem):
    kw_mem.add("already here")
    t = datetime(2024, 1, 1, tzinfo=UTC)
    batch = [ChatMessage("Ana", "first turn", t), ChatMessage("Bob", "second turn", t),
             ChatMessage("Ana", "bad \x00 turn", t), ChatMessage("Bob", "fourth turn", t)]
    with pytest.raises(InvalidInputError):
        kw_mem.add_messages(batch)
    stats = kw_mem.stats()
    assert stats["memories"] == 1 and stats["edges"] == 0
    assert kw_mem.search("turn") == []


def test_failure_inside_the_write_transaction_rolls_back_the_batch(kw_mem, monkeypatch):
    """Even a failure after some rows were inserted leaves nothing of the batch behind."""
    kw_mem.add("already here")
    real_insert = vault.insert
    calls = {"n": 0}

    def failing_insert(conn, item, digest, embed_text=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise InvalidInputError("simulated failure on the third row")
        return real_insert(conn, item, digest, embed_text)

    monkeypatch.setattr(vault, "insert", failing_insert)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    batch = [ChatMessage("Ana", f"turn number {i}", t, f"m{i}", "s") for i in range(5)]
    with pytest.raises(InvalidInputError, match="third row"):
        kw_mem.add_messages(batch)
    assert calls["n"] == 3
    monkeypatch.setattr(vault, "insert", real_insert)
    stats = kw_mem.stats()
    assert stats["memories"] == 1 and stats["edges"] == 0
    assert kw_mem.search("turn number") == []
    # The vault still works normally afterwards.
    assert len(kw_mem.add_messages(batch)) == 5
    assert kw_mem.stats()["memories"] == 6
