"""A persisted job queue owned by the engine; the MemScheduler's executor runs it.

Jobs live in the vault, so a restart resumes them: anything left "running" by a crash
goes back to "pending" when the queue opens. A `dedup_key` keeps one pending job per
key (e.g. one extraction per message).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from engine.cube import ts, utcnow
from engine.errors import MemDeskError
from engine.store.database import Database

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict
    attempts: int


Handler = Callable[[Job, Callable[[float], None]], None]
"""Runs one job; calls the progress callback with 0..1 as it goes."""


class JobQueue:
    def __init__(self, db: Database):
        self.db = db
        with db.write() as conn:
            conn.execute("UPDATE jobs SET status = 'pending', updated_at = ? WHERE status = 'running'", (ts(utcnow()),))
        self.handlers: dict[str, Handler] = {}

    def enqueue(self, kind: str, payload: dict, *, dedup_key: str | None = None, priority: int = 0) -> int | None:
        """Add a job; returns its id, or None when an equal job is already waiting."""
        now = ts(utcnow())
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jobs(kind, dedup_key, payload, status, priority, created_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?)", (kind, dedup_key, json.dumps(payload), priority, now, now))
            return conn.last_insert_rowid() if conn.changes() else None

    def claim(self) -> Job | None:
        with self.db.write() as conn:
            row = conn.execute("SELECT id, kind, payload, attempts FROM jobs WHERE status = 'pending' "
                               "ORDER BY priority DESC, id LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                         (ts(utcnow()), row[0]))
        return Job(row[0], row[1], json.loads(row[2]), row[3] + 1)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE jobs SET status = ?, error = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, "
                         "updated_at = ? WHERE id = ?", (status, error, status, ts(utcnow()), job.id))

    def set_progress(self, job_id: int, value: float) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                         (max(0.0, min(1.0, value)), ts(utcnow()), job_id))

    def cancel(self, kind: str | None = None) -> int:
        with self.db.write() as conn:
            conn.execute("UPDATE jobs SET status = 'cancelled', updated_at = ? WHERE status = 'pending' "
                         "AND (? IS NULL OR kind = ?)", (ts(utcnow()), kind, kind))
            return conn.changes()

    def run_one(self) -> bool:
        """Run the next pending job on this thread; False when there is none."""
        job = self.claim()
        if job is None:
            return False
        handler = self.handlers.get(job.kind)
        if handler is None:
            self._finish(job, "failed", f"no handler for job kind {job.kind!r}")
            return True
        try:
            handler(job, lambda value: self.set_progress(job.id, value))
        except MemDeskError as exc:
            retry = job.attempts < MAX_ATTEMPTS
            log.warning("job %s (%s) failed%s: %s", job.id, job.kind, ", will retry" if retry else "", exc)
            self._finish(job, "pending" if retry else "failed", str(exc))
            return True
        self._finish(job, "done")
        return True

    def drain(self) -> int:
        count = 0
        while self.run_one():
            count += 1
        return count

    def status(self) -> dict:
        with self.db.read() as conn:
            rows = conn.execute("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status").fetchall()
            errors = conn.execute("SELECT kind, error, updated_at FROM jobs WHERE error IS NOT NULL "
                                  "ORDER BY updated_at DESC LIMIT 5").fetchall()
            running = conn.execute("SELECT id, kind, progress FROM jobs WHERE status = 'running'").fetchall()
        counts: dict[str, dict[str, int]] = {}
        for kind, status, n in rows:
            counts.setdefault(kind, {})[status] = n
        return {"counts": counts, "running": [{"id": i, "kind": k, "progress": p} for i, k, p in running],
                "last_errors": [{"kind": k, "error": e} for k, e, _ in errors]}
