"""The extraction job's name and payload: what a chat turn queues for MemReader.

Apart from memreader.py so that queueing a job does not import the reader itself (its rules
and classifiers are a tenth of a second to import, spent before the first window otherwise).
"""
from __future__ import annotations

from memdesk.engine.cube import iso, utcnow

EXTRACT_JOB = "extract"


def extraction_payload(memory_ids: list[str], scope: str, session_id: str | None) -> dict:
    return {"memory_ids": memory_ids, "scope": scope, "session_id": session_id, "queued_at": iso(utcnow())}
