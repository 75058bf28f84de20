"""Activation memory: KV states of prompt prefixes, so a turn prefills only what is new.

A state is stored inside the encrypted vault with the model's state key (its fingerprint,
plus the adapter and the KV cache format when there are: engine.llm.base.ModelInfo.state_key),
backend, context size and a hash of the exact prefix tokens, plus the ids of the memories
rendered into that prefix. It is used only for a prompt that starts with those very
tokens on the same model, adapter and cache format; a change to any memory inside it deletes it. A state whose
bytes no longer match their hash is dropped with a log line and never restored.

The cache is bounded by count and by bytes, least recently used first, and the pages an
eviction frees are given back to the file system at once (the vault is in incremental
auto-vacuum mode, engine/vault/maintenance.py): a vault holding yesterday's KV states does not
stay that large.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memdesk.engine.cube import from_ts, ts, utcnow
from memdesk.engine.errors import ModelError
from memdesk.engine.llm.base import StatefulModel
from memdesk.engine.vault import kv_states as state_rows
from memdesk.engine.vault.database import Database
from memdesk.engine.vault.maintenance import reclaim_free_pages

if TYPE_CHECKING:  # numpy loads with the first vector, not before the window (bench.bundle)
    pass

log = logging.getLogger(__name__)
# A SmolLM2-135M state of a 1k-token prefix is ~25 MB; a larger model's is several times that.
DEFAULT_CAP_BYTES = 256 << 20
DEFAULT_MAX_STATES = 16  # the chat prefix and the next scenes' prefixes, with room to spare


def tokens_hash(tokens: Sequence[int]) -> str:
    import numpy as np
    return hashlib.sha256(np.asarray(tokens, dtype=np.int32).tobytes()).hexdigest()


@dataclass(frozen=True)
class StateRecord:
    id: int
    model_fp: str
    n_ctx: int
    n_tokens: int
    prefix_hash: str
    bytes: int
    label: str


class ActivationCache:
    def __init__(self, db: Database, cap_bytes: int = DEFAULT_CAP_BYTES, max_states: int = DEFAULT_MAX_STATES):
        self.db = db
        self.cap_bytes = cap_bytes
        self.max_states = max_states
        self.hits = 0
        self.misses = 0
        self.rejected = 0

    def put(self, model: StatefulModel, prefix_tokens: Sequence[int], memory_ids: Sequence[str] = (),
            label: str = "", should_stop=None) -> StateRecord:
        """Prefill `prefix_tokens` on `model` and keep its KV state (replacing an equal one)."""
        state = model.save_state(prefix_tokens, should_stop=should_stop)
        info = model.info
        digest = tokens_hash(prefix_tokens)
        now = ts(utcnow())
        with self.db.write() as conn:
            state_rows.delete_prefix(conn, info.state_key, info.n_ctx, digest)
            state_id = state_rows.insert_state(
                conn, model_fp=info.state_key, backend=info.backend, n_ctx=info.n_ctx, prefix_hash=digest,
                n_tokens=len(prefix_tokens), label=label, state=state, state_hash=hashlib.sha256(state).hexdigest(),
                now=now)
            state_rows.link_memories(conn, state_id, memory_ids)
            self._evict(conn)
        return StateRecord(state_id, info.state_key, info.n_ctx, len(prefix_tokens), digest, len(state), label)

    def has(self, model: StatefulModel, prefix_tokens: Sequence[int]) -> bool:
        with self.db.read() as conn:
            return state_rows.has_prefix(conn, model.info.state_key, model.info.n_ctx, tokens_hash(prefix_tokens))

    def find(self, model: StatefulModel, prompt_tokens: Sequence[int]) -> StateRecord | None:
        """The longest stored prefix of `prompt_tokens` for this model and context size."""
        info = model.info
        with self.db.read() as conn:
            rows = state_rows.shorter_prefixes(conn, info.state_key, info.n_ctx, len(prompt_tokens))
        for state_id, n_tokens, digest, size, label in rows:
            if tokens_hash(prompt_tokens[:n_tokens]) == digest:
                return StateRecord(state_id, info.state_key, info.n_ctx, n_tokens, digest, size, label)
        return None

    def restore(self, model: StatefulModel, record: StateRecord, prompt_tokens: Sequence[int]) -> bool:
        """Load the state into `model`; False (and the state deleted) when it cannot be trusted."""
        with self.db.read() as conn:
            row = state_rows.state_blob(conn, record.id)
        if row is None:
            self.misses += 1
            return False
        state, state_hash, model_fp = row
        if model_fp != model.info.state_key or hashlib.sha256(state).hexdigest() != state_hash:
            log.warning("activation state %s rejected (damaged or from another model); recomputing", record.id)
            return self._reject(record.id)
        try:
            model.load_state(state, prompt_tokens[: record.n_tokens])
        except ModelError as exc:
            log.warning("activation state %s rejected by the backend (%s); recomputing", record.id, exc)
            return self._reject(record.id)
        with self.db.write() as conn:
            state_rows.touch(conn, record.id, ts(utcnow()))
        self.hits += 1
        return True

    def _reject(self, state_id: int) -> bool:
        self.rejected += 1
        self.misses += 1
        with self.db.write() as conn:
            state_rows.delete_state(conn, state_id)
        return False

    def invalidate_memories(self, memory_ids: Sequence[str]) -> int:
        """Drop every state whose prefix rendered one of these memories (they changed)."""
        if not memory_ids:
            return 0
        with self.db.write() as conn:
            dropped = state_rows.delete_for_memories(conn, memory_ids)
            if dropped:
                reclaim_free_pages(conn)
            return dropped

    def _evict(self, conn) -> int:
        """Drop least recently used states until both bounds hold; their pages are reclaimed."""
        count, total = state_rows.totals(conn)
        evicted = 0
        for state_id, size in state_rows.lru_order(conn):
            if total <= self.cap_bytes and count <= self.max_states:
                break
            state_rows.delete_state(conn, state_id)
            total -= size
            count -= 1
            evicted += 1
        if evicted:
            reclaim_free_pages(conn)
        return evicted

    def trim(self) -> int:
        """Apply the bounds now (e.g. after they were lowered); returns how many states went."""
        with self.db.write() as conn:
            return self._evict(conn)

    def stats(self) -> dict:
        with self.db.read() as conn:
            rows = state_rows.per_model(conn)
        models = [{"model": fp, "backend": backend, "states": n, "bytes": size, "tokens": tokens,
                   "last_used": from_ts(last).isoformat() if last else None}
                  for fp, backend, n, size, tokens, last in rows]
        return {"states": sum(m["states"] for m in models), "bytes": sum(m["bytes"] for m in models),
                "cap_bytes": self.cap_bytes, "max_states": self.max_states, "hits": self.hits, "misses": self.misses,
                "rejected": self.rejected,
                "models": models}
