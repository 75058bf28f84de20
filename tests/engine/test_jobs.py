"""JobQueue: the owner lease (only its holder runs and reclaims jobs), poison jobs, read-only status."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from memdesk.app.cli import main as cli_main
from memdesk.engine.api import Memory
from memdesk.engine.scheduler.memscheduler import MemScheduler
from memdesk.engine.scheduler.queue import LEASE_S, MAX_ATTEMPTS, JobQueue
from tests.conftest import FAST_KDF, PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]


def job_rows(mem: Memory) -> list[tuple]:
    with mem.db.read() as conn:
        return conn.execute("SELECT id, status, attempts FROM jobs ORDER BY id").fetchall()


def test_status_next_to_the_owner_changes_nothing_and_the_job_runs_once(kw_mem, data_dir, capsys):
    """`memdesk scheduler status` (and a second process's JobQueue, as `memdesk chat` builds) used
    to put the running job back to pending, so the app ran it twice."""
    owner = JobQueue(kw_mem.db)
    running, release, runs = threading.Event(), threading.Event(), []

    def slow(job, progress):
        runs.append(job.id)
        running.set()
        assert release.wait(60)

    owner.handlers["extract"] = slow
    job_id = owner.enqueue("extract", {"message": "m1"})
    worker = threading.Thread(target=owner.run_one)
    worker.start()
    try:
        assert running.wait(30)
        assert cli_main(["scheduler", "status", "--json", "--data-dir", str(data_dir)]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["jobs"] == {"extract": {"running": 1}} and status["owner"]["live"]
        with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as other:  # another process's view
            second = JobQueue(other.db)
            second.handlers["extract"] = lambda job, progress: runs.append(("second", job.id))
            second.enqueue("extract", {"message": "m2"})
            assert MemScheduler(second).status()["jobs"]["extract"] == {"running": 1, "pending": 1}
            assert second.drain() == 0  # the app owns the queue: it runs them, not this command
        assert job_rows(kw_mem)[0] == (job_id, "running", 1)
    finally:
        release.set()
        worker.join(60)
    assert owner.drain() == 1  # the owner runs the job the other process queued
    assert runs == [job_id, job_id + 1]
    assert [row[1] for row in job_rows(kw_mem)] == ["done", "done"]


def test_a_lapsed_owner_is_taken_over_and_its_running_job_reclaimed(kw_mem):
    clock = [1_000_000.0]
    first = JobQueue(kw_mem.db, clock=lambda: clock[0])
    first.enqueue("extract", {})
    assert first.claim() is not None  # ... and then its process hangs, never finishing the job
    second = JobQueue(kw_mem.db, clock=lambda: clock[0])
    done = []
    second.handlers["extract"] = lambda job, progress: done.append(job.attempts)
    assert not second.own()  # the lease is live: hands off
    clock[0] += LEASE_S / 2
    assert not second.own()
    clock[0] += LEASE_S  # no heartbeat for longer than the lease
    assert second.own()
    assert job_rows(kw_mem)[0][1:] == ("pending", 1)
    assert second.run_one() and done == [2]
    assert not first.own()  # the old owner lost it


def test_a_job_that_keeps_failing_or_crashing_stops_after_its_attempts(kw_mem):
    queue = JobQueue(kw_mem.db)
    calls = []

    def broken(job, progress):
        calls.append(job.attempts)
        raise KeyError("not a MemDeskError")  # the loop boundary catches anything

    queue.handlers["extract"] = broken
    queue.enqueue("extract", {})
    assert queue.drain() == MAX_ATTEMPTS
    assert calls == list(range(1, MAX_ATTEMPTS + 1))
    assert job_rows(kw_mem)[0][1] == "failed"
    failures = queue.health.failures()
    assert failures[-1].source == "jobs" and failures[-1].kind == "KeyError" and failures[-1].count == MAX_ATTEMPTS
    # A job that crashes the whole process is found "running" by the next owner each time.
    queue.enqueue("extract", {"crash": True})
    crashing = job_rows(kw_mem)[1][0]
    with kw_mem.db.write() as conn:
        conn.execute("UPDATE jobs SET status = 'running', attempts = ? WHERE id = ?", (MAX_ATTEMPTS, crashing))
        conn.execute("DELETE FROM meta WHERE key = 'jobs_owner'")  # its process died with the lease
    restarted = JobQueue(kw_mem.db)
    restarted.handlers["extract"] = lambda job, progress: calls.append("ran again")
    assert restarted.drain() == 0 and "ran again" not in calls
    status = restarted.status()
    assert status["counts"]["extract"] == {"failed": 2}
    assert "interrupted 3 times" in status["last_errors"][0]["error"]


def test_the_lease_of_a_process_that_died_is_free_at_once(data_dir, tmp_path):
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF):
        pass
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from memdesk.engine.api import Memory
        from memdesk.engine.scheduler.queue import JobQueue
        from memdesk.engine.vault.keys import KdfParams

        mem = Memory.open(sys.argv[1], embedder=False, background=False,
                          kdf=KdfParams(time_cost=1, memory_kib=8192, parallelism=1))
        queue = JobQueue(mem.db)
        queue.enqueue("extract", {})
        assert queue.claim() is not None
        os._exit(0)  # dies while "running" the job, lease held
    """), encoding="utf-8")
    env = {**os.environ, "MEMDESK_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(data_dir)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        queue = JobQueue(mem.db)
        lease = queue.owner_info()
        assert lease is not None and not lease["live"]  # its pid is gone: no need to wait LEASE_S
        ran = []
        queue.handlers["extract"] = lambda job, progress: ran.append(job.attempts)
        assert queue.drain() == 1 and ran == [2]
        assert queue.owner_info() is None  # drain gave the lease back
