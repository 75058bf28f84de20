"""The SQL of the job queue (tables from migrations): the `jobs` table (m002) and the queue's
owner lease, a row in `meta`.

Like the rest of the vault, functions take a connection and never commit: the JobQueue
(engine/scheduler/queue.py) keeps the policy (claiming, retries, the lease) and calls these
inside its own transactions, so one user action or one job step stays one transaction.
Times are the queue's `ts(utcnow())` floats, passed in so one step writes one time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import apsw

LEASE_KEY = "jobs_owner"


@dataclass(frozen=True)
class JobRow:
    """A pending job as stored (attempts before the one about to start)."""

    id: int
    kind: str
    payload: dict
    attempts: int


# ------------------------------------------------------------ the owner lease (a row in meta)
def lease_value(conn: apsw.Connection) -> str | None:
    """The lease as stored (JSON text), or None when nobody holds it."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (LEASE_KEY,)).fetchone()
    return None if row is None else row[0]


def save_lease(conn: apsw.Connection, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (LEASE_KEY, value))


def drop_lease(conn: apsw.Connection) -> None:
    conn.execute("DELETE FROM meta WHERE key = ?", (LEASE_KEY,))


# ------------------------------------------------------------ jobs
def fail_interrupted(conn: apsw.Connection, max_attempts: int, now: float) -> None:
    """Jobs left running that already had `max_attempts` tries: failed for good, with why."""
    conn.execute("UPDATE jobs SET status = 'failed', updated_at = ?, error = COALESCE(error || '; ', '') || "
                 "'interrupted ' || attempts || ' times (MemDesk stopped while it ran); not tried again' "
                 "WHERE status = 'running' AND attempts >= ?", (now, max_attempts))


def requeue_running(conn: apsw.Connection, now: float) -> None:
    """Every job still marked running goes back to pending."""
    conn.execute("UPDATE jobs SET status = 'pending', updated_at = ? WHERE status = 'running'", (now,))


def insert_job(conn: apsw.Connection, kind: str, payload: dict, dedup_key: str | None, priority: int,
               now: float) -> int | None:
    """A new pending job's id, or None when an equal job (same kind and dedup_key) is already waiting."""
    conn.execute(
        "INSERT OR IGNORE INTO jobs(kind, dedup_key, payload, status, priority, created_at, updated_at) "
        "VALUES (?, ?, ?, 'pending', ?, ?, ?)", (kind, dedup_key, json.dumps(payload), priority, now, now))
    return conn.last_insert_rowid() if conn.changes() else None


def has_pending(conn: apsw.Connection, max_attempts: int) -> bool:
    return conn.execute("SELECT 1 FROM jobs WHERE status = 'pending' AND attempts < ? LIMIT 1",
                        (max_attempts,)).fetchone() is not None


def next_pending(conn: apsw.Connection, max_attempts: int) -> JobRow | None:
    """The pending job to run next: highest priority first, then oldest."""
    row = conn.execute("SELECT id, kind, payload, attempts FROM jobs WHERE status = 'pending' AND attempts < ? "
                       "ORDER BY priority DESC, id LIMIT 1", (max_attempts,)).fetchone()
    return None if row is None else JobRow(row[0], row[1], json.loads(row[2]), row[3])


def mark_running(conn: apsw.Connection, job_id: int, now: float) -> None:
    """The job starts one more attempt."""
    conn.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                 (now, job_id))


def set_status(conn: apsw.Connection, job_id: int, status: str, error: str | None, now: float) -> None:
    """A job's outcome; a done job's progress becomes 1."""
    conn.execute("UPDATE jobs SET status = ?, error = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, "
                 "updated_at = ? WHERE id = ?", (status, error, status, now, job_id))


def set_progress(conn: apsw.Connection, job_id: int, value: float, now: float) -> None:
    conn.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?", (value, now, job_id))


def cancel_pending(conn: apsw.Connection, kind: str | None, now: float) -> int:
    """Cancel the pending jobs (of `kind`, or of every kind when None); returns how many."""
    conn.execute("UPDATE jobs SET status = 'cancelled', updated_at = ? WHERE status = 'pending' "
                 "AND (? IS NULL OR kind = ?)", (now, kind, kind))
    return conn.changes()


def counts(conn: apsw.Connection) -> list[tuple[str, str, int]]:
    """(kind, status, number of jobs) for every kind and status there is."""
    return conn.execute("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status").fetchall()


def recent_errors(conn: apsw.Connection, limit: int = 5) -> list[tuple[str, str, float]]:
    """(kind, error, updated_at) of the jobs with an error, newest first."""
    return conn.execute("SELECT kind, error, updated_at FROM jobs WHERE error IS NOT NULL "
                        "ORDER BY updated_at DESC LIMIT ?", (limit,)).fetchall()


def running(conn: apsw.Connection) -> list[tuple[int, str, float]]:
    """(id, kind, progress) of the jobs marked running."""
    return conn.execute("SELECT id, kind, progress FROM jobs WHERE status = 'running'").fetchall()
