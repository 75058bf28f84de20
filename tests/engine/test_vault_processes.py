"""Several processes on one vault (the app and `memdesk` commands): writes wait their turn;
closing the vault never pulls a connection out from under a read or a write."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from memdesk.engine.api import Memory
from memdesk.engine.cube import Filters
from memdesk.engine.errors import MemDeskError, VaultBusyError
from memdesk.engine.vault import connection
from tests.conftest import FAST_KDF, PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]
ADDS = 300

WRITER = textwrap.dedent("""
    import sys
    from memdesk.engine.api import Memory
    from memdesk.engine.vault.keys import KdfParams

    mem = Memory.open(sys.argv[1], embedder=False, background=False,
                      kdf=KdfParams(time_cost=1, memory_kib=8192, parallelism=1))
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start adding together
    for i in range(int(sys.argv[3])):
        mem.add(f"{sys.argv[2]} note {i}", tags=[sys.argv[2]])
    mem.close()
    print("done", flush=True)
""")


def _env() -> dict:
    return {**os.environ, "MEMDESK_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(ROOT)}


def test_two_processes_adding_at_once_all_succeed(data_dir, tmp_path):
    """Writes began DEFERRED: a transaction read first, then failed its upgrade to a writer at
    once with a raw "database is locked" when the other process had committed meanwhile."""
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF):
        pass
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, str(script), str(data_dir), name, str(ADDS)], cwd=ROOT, env=_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("alpha", "beta")]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0 and "done" in out, err[-3000:]
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        assert mem.count() == 2 * ADDS
        for name in ("alpha", "beta"):
            assert mem.count(Filters(tags=(name,))) == ADDS


def test_cli_writes_next_to_an_app_that_holds_the_vault(data_dir, tmp_path):
    """The app keeps the vault open and writes; `memdesk add` in other processes still succeeds."""
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF):
        pass
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    app = subprocess.Popen([sys.executable, str(script), str(data_dir), "app", str(ADDS)], cwd=ROOT, env=_env(),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline().strip() == "ready", app.stderr.read()[-2000:]
        app.stdin.write("go\n")
        app.stdin.flush()
        clis = [subprocess.Popen([sys.executable, "-m", "memdesk", "add", f"cli note {i}", "-t", "cli",
                                  "--data-dir", str(data_dir)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for i in range(3)]
        outputs = [cli.communicate(timeout=300) for cli in clis]
        out, err = app.communicate(timeout=300)
    finally:
        for proc in [app, *locals().get("clis", [])]:
            if proc.poll() is None:
                proc.kill()
    assert app.returncode == 0, err[-3000:]
    for cli, (_cli_out, cli_err) in zip(clis, outputs):
        assert cli.returncode == 0, cli_err[-2000:]
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        assert mem.count() == ADDS + 3


def test_a_vault_busy_past_the_timeout_is_a_clear_error(data_dir, monkeypatch):
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 200)
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as app, \
            Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as command:
        with app.db.write() as conn:  # another connection holds the write lock (as another process would)
            conn.execute("INSERT INTO meta(key, value) VALUES ('held', '1')")
            with pytest.raises(VaultBusyError, match="locked by another MemDesk process") as caught:
                command.add("this waits, then gives up")
        assert isinstance(caught.value, MemDeskError) and caught.value.exit_code == 10
        assert "Try again" in str(caught.value)
        assert command.add("after the lock is gone").created


def test_close_waits_for_a_write_and_leaves_a_running_read_its_connection(kw_mem, data_dir):
    kw_mem.add("first note")
    in_write, finish_write = threading.Event(), threading.Event()
    in_read, finish_read = threading.Event(), threading.Event()
    seen: list = []

    def writer():
        with kw_mem.db.write() as conn:
            in_write.set()
            assert finish_write.wait(60)
            conn.execute("INSERT INTO meta(key, value) VALUES ('late', 'write')")

    def reader():
        with kw_mem.db.read() as conn:
            in_read.set()
            assert finish_read.wait(60)
            seen.append(conn.execute("SELECT count(*) FROM memories").fetchone()[0])

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    assert in_write.wait(30) and in_read.wait(30)
    closer = threading.Thread(target=kw_mem.close)
    closer.start()
    finish_read.set()  # the read ends after close() began: its connection is still there
    threads[1].join(30)
    assert seen == [1]
    assert closer.is_alive()  # close() waits for the write under way
    finish_write.set()
    threads[0].join(30)
    closer.join(30)
    assert not closer.is_alive()
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as again:
        with again.db.read() as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'late'").fetchone() == ("write",)


def test_open_closes_the_vault_when_the_embedder_cannot_load(data_dir, tmp_path, monkeypatch):
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF):
        pass
    monkeypatch.setenv("MEMDESK_EMBED_MODEL", str(tmp_path / "no-model-here"))
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to list open files")

    def open_vault_files() -> list[str]:
        names = []
        for fd in fds.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if "vault.db" in target:
                names.append(target)
        return names

    before = open_vault_files()
    with pytest.raises(MemDeskError, match="no-model-here"):
        Memory.open(data_dir, kdf=FAST_KDF)
    assert open_vault_files() == before
