"""Background vector indexing: the second half of the fast path.

An add commits text (keyword-searchable at once) and wakes this thread, which embeds
pending rows in batches and stores their vectors. Pending rows are found in the vault
itself (embed_fp IS NULL), so a crash or a model change simply leaves work to resume.
"""
from __future__ import annotations

import logging
import threading

from memdesk.engine.scheduler.health import Health
from memdesk.engine.search.embed import Embedder
from memdesk.engine.vault import items as vault
from memdesk.engine.vault import vectors
from memdesk.engine.vault.database import Database, VaultClosed

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 60.0


class Indexer:
    def __init__(self, db: Database, embedder: Embedder, batch_size: int = 32, *, health: Health | None = None,
                 retry_after: float = 1.0):
        self.db = db
        self.embedder = embedder
        self.batch_size = batch_size
        self.health = health or Health()
        self.retry_after = retry_after  # first pause after a failed batch; doubles up to MAX_RETRY_AFTER_S
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._state_lock = threading.Lock()

    def prepare(self) -> None:
        """Load the model and make sure the vector table matches it (re-embedding on a change)."""
        with self._prepare_lock:
            if self._prepared:
                return
            dim = self.embedder.dim
            with self.db.write() as conn:
                if vectors.ensure_table(conn, dim, self.embedder.fingerprint):
                    log.info("vector table (re)built for model %s", self.embedder.fingerprint)
                # Rows embedded by another model are pending again.
                vectors.mark_other_models_pending(conn, self.embedder.fingerprint)
            self._prepared = True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="memdesk-indexer", daemon=True)
            self._thread.start()
        self._wake.set()

    def notify(self) -> None:
        # Under the lock so a wake-up cannot slip between the worker's "nothing new?" check
        # and its "idle" announcement (which would let wait_idle return too early).
        with self._state_lock:
            self._idle.clear()
            self._wake.set()

    def run_once(self) -> int:
        """Embed one batch of pending rows; returns how many were stored."""
        self.prepare()
        with self.db.read() as conn:
            batch = vault.pending_embeddings(conn, self.batch_size)
        if not batch:
            return 0
        vecs = self.embedder.encode([text for _, text in batch])
        stored = 0
        with self.db.write() as conn:
            for (rowid, text), vec in zip(batch, vecs):
                stored += vault.store_vector(conn, rowid, text, vec, self.embedder.fingerprint)
        return stored if stored else len(batch)

    def drain(self) -> None:
        """Index everything pending, on the calling thread."""
        while self.run_once():
            pass

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending (when the thread runs) or drain here (when it does not)."""
        if self._thread is None:
            self.drain()
            return True
        self.notify()
        return self._idle.wait(timeout)

    def _run(self) -> None:
        pause: float | None = None  # the next pause after a failure; None while all is well
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.run_once():
                    pass
                self.last_error = None
                pause = None
            except Exception as exc:  # noqa: BLE001 - the loop boundary: recorded, retried after a pause
                if self._stop.is_set() or isinstance(exc, VaultClosed):
                    return  # shutting down, or the vault closed under us
                self.last_error = self.health.failed("indexer", "indexing new memories (search by meaning "
                                                                "waits; keyword search works)", exc).error
                # The same batch is tried again: a passing problem (disk full, a busy vault) heals,
                # and a lasting one is retried less and less often, not in a tight loop.
                pause = self.retry_after if pause is None else min(pause * 2, MAX_RETRY_AFTER_S)
                self._stop.wait(pause)
                self._wake.set()
                continue
            with self._state_lock:
                if not self._wake.is_set():
                    self._idle.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
