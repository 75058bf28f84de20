"""A persisted job queue owned by the engine; the MemScheduler's executor runs it.

Jobs live in the vault, so a restart resumes them. Any process may enqueue a job or read
the queue's state; only the process holding the queue's *owner lease* runs jobs, and only
it may put a job left "running" back to "pending". The lease is a row in `meta` with a
heartbeat, renewed whenever the owner claims a job or reports progress, and by the idle
executor's wake-ups once it is a quarter of LEASE_S old; it lapses after LEASE_S without
one, or at once when its process is gone from this computer. Without
it, `memdesk scheduler status` (or `memdesk chat`) next to the app reset the job the app
was running, and the job ran twice.

A job that fails is retried until MAX_ATTEMPTS; so is one whose process died while it ran
(it is found "running" when the lease is taken over). After that it is "failed" for good,
so a job that crashes the app cannot crash every start after it.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import apsw

from memdesk.engine.cube import ts, utcnow
from memdesk.engine.errors import MemDeskError
from memdesk.engine.scheduler.health import Health
from memdesk.engine.vault import jobs as job_rows
from memdesk.engine.vault.database import Database

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
LEASE_S = 120.0


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict
    attempts: int


Handler = Callable[[Job, Callable[[float], None]], None]
"""Runs one job; calls the progress callback with 0..1 as it goes."""


class JobQueue:
    """Creating one reads and writes nothing: a status query must never change the queue."""

    def __init__(self, db: Database, *, health: Health | None = None, clock: Callable[[], float] = time.time,
                 lease_s: float = LEASE_S):
        self.db = db
        self.health = health or Health()
        self.clock = clock
        self.lease_s = lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.handlers: dict[str, Handler] = {}
        self.on_enqueued: list[Callable[[], None]] = []  # the scheduler's executor wakes up

    # ------------------------------------------------------------ the owner lease
    def own(self) -> bool:
        """Take the lease if it is free (or lapsed), or renew ours; True when this queue owns it.
        Taking it over puts the jobs the last owner left running back in line (or fails them)."""
        with self.db.write() as conn:
            return self._hold(conn)

    def release(self) -> None:
        """Give the lease back (the executor stops). Jobs still marked running were ours: queue them again."""
        with self.db.write() as conn:
            if (self._lease(conn) or {}).get("owner") != self.owner:
                return
            job_rows.drop_lease(conn)
            self._reclaim(conn)

    def owner_info(self) -> dict | None:
        """Who holds the lease (owner, pid, host, heartbeat, live), or None."""
        with self.db.read() as conn:
            lease = self._lease(conn)
        if lease is not None:
            lease["live"] = not self._lapsed(lease)
        return lease

    def _hold(self, conn: apsw.Connection) -> bool:
        lease = self._lease(conn)
        ours = lease is not None and lease.get("owner") == self.owner
        if lease is not None and not ours and not self._lapsed(lease):
            return False
        value = {"owner": self.owner, "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": self.clock()}
        job_rows.save_lease(conn, json.dumps(value))
        if not ours:
            if lease is not None:
                log.info("job queue taken over from a lapsed owner (pid %s)", lease.get("pid"))
            self._reclaim(conn)
        return True

    def _lapsed(self, lease: dict) -> bool:
        if self.clock() - float(lease.get("heartbeat", 0)) > self.lease_s:
            return True
        # On this computer a lease whose process is gone has lapsed now, not LEASE_S later.
        # (Only on POSIX: os.kill(pid, 0) on Windows would end the process.)
        pid = lease.get("pid")
        if os.name == "posix" and lease.get("host") == socket.gethostname() and isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False  # alive, another user's
        return False

    @staticmethod
    def _lease(conn: apsw.Connection) -> dict | None:
        raw = job_rows.lease_value(conn)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None  # unreadable: treated as free, and rewritten by the next owner
        return value if isinstance(value, dict) else None

    def _reclaim(self, conn: apsw.Connection) -> None:
        now = ts(utcnow())
        job_rows.fail_interrupted(conn, MAX_ATTEMPTS, now)  # first: these are not tried again
        job_rows.requeue_running(conn, now)

    # ------------------------------------------------------------ jobs
    def enqueue(self, kind: str, payload: dict, *, dedup_key: str | None = None, priority: int = 0) -> int | None:
        """Add a job; returns its id, or None when an equal job is already waiting."""
        now = ts(utcnow())
        with self.db.write() as conn:
            job_id = job_rows.insert_job(conn, kind, payload, dedup_key, priority, now)
        # Inside a larger transaction (a chat turn's), the executor is woken once the job is visible.
        self.db.after_commit(self._wake)
        return job_id

    def _wake(self) -> None:
        for wake in list(self.on_enqueued):
            wake()

    def claim(self) -> Job | None:
        """The next pending job, marked running; None when there is none or another process owns the queue."""
        with self.db.read() as conn:  # the idle executor asks every few seconds: no write unless needed
            lease = self._lease(conn) or {}
            fresh = (lease.get("owner") == self.owner
                     and self.clock() - float(lease.get("heartbeat", 0)) < self.lease_s / 4)
            if fresh and not job_rows.has_pending(conn, MAX_ATTEMPTS):
                return None
        with self.db.write() as conn:
            if not self._hold(conn):
                return None
            row = job_rows.next_pending(conn, MAX_ATTEMPTS)
            if row is None:
                return None
            job_rows.mark_running(conn, row.id, ts(utcnow()))
        return Job(row.id, row.kind, row.payload, row.attempts + 1)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        with self.db.write() as conn:
            job_rows.set_status(conn, job.id, status, error, ts(utcnow()))

    def set_progress(self, job_id: int, value: float) -> None:
        with self.db.write() as conn:
            job_rows.set_progress(conn, job_id, max(0.0, min(1.0, value)), ts(utcnow()))
            self._hold(conn)  # a long job keeps its lease alive

    def cancel(self, kind: str | None = None) -> int:
        with self.db.write() as conn:
            return job_rows.cancel_pending(conn, kind, ts(utcnow()))

    def run_one(self) -> bool:
        """Run the next pending job on this thread; False when there is none (or the queue is not ours)."""
        job = self.claim()
        if job is None:
            return False
        handler = self.handlers.get(job.kind)
        if handler is None:
            self._finish(job, "failed", f"no handler for job kind {job.kind!r}")
            return True
        try:
            handler(job, lambda value: self.set_progress(job.id, value))
        except Exception as exc:  # noqa: BLE001 - the executor's loop boundary: recorded, retried, never fatal
            retry = job.attempts < MAX_ATTEMPTS
            self.health.failed("jobs", f"{job.kind} job", exc, f"attempt {job.attempts} of {MAX_ATTEMPTS}; "
                               + ("it will be tried again" if retry else "not tried again"))
            message = str(exc) if isinstance(exc, MemDeskError) else f"{type(exc).__name__}: {exc}"
            self._finish(job, "pending" if retry else "failed", message)
            return True
        self._finish(job, "done")
        return True

    def drain(self) -> int:
        """Run every pending job here (a one-shot command). Nothing runs while another process owns
        the queue: that process runs them. A lease taken here is given back at the end."""
        count = 0
        try:
            while self.run_one():
                count += 1
        finally:
            self.release()
        return count

    def status(self) -> dict:
        """Read-only: counts per kind and status, running jobs, recent errors and the owner."""
        with self.db.read() as conn:
            rows = job_rows.counts(conn)
            errors = job_rows.recent_errors(conn, 5)
            running = job_rows.running(conn)
            lease = self._lease(conn)
        counts: dict[str, dict[str, int]] = {}
        for kind, status, n in rows:
            counts.setdefault(kind, {})[status] = n
        if lease is not None:
            lease["live"] = not self._lapsed(lease)
        return {"counts": counts, "running": [{"id": i, "kind": k, "progress": p} for i, k, p in running],
                "last_errors": [{"kind": k, "error": e} for k, e, _ in errors], "owner": lease}
