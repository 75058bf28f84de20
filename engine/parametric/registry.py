"""Adapters as parametric MemCubes: what each was trained for and on, how it scored, and
which one the chat model loads.

Each adapter row carries the base model's fingerprint, the dataset snapshot, the gate's
metrics, created_at and a status: training -> candidate -> active -> retired (or
rejected / failed). One adapter is active per base model; activating another retires
it, and `rollback` brings back the one active before. The weights live in the vault
(encrypted like everything else); `materialise` writes the GGUF LoRA to a private,
short-lived file only for llama.cpp to read it, and removes it after the load (in RAM where
the system has a RAM folder; engine/vault/scratch.py).
"""
from __future__ import annotations

import io
import json
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from collections.abc import Iterator

from memdesk.engine.cube import from_ts, new_id, ts, utcnow
from memdesk.engine.errors import InvalidInputError, ModelError, NotFoundError
from memdesk.engine.vault.scratch import private_scratch
from memdesk.engine.vault.database import Database

STATUSES = ("training", "candidate", "active", "retired", "rejected", "failed")


@dataclass(frozen=True)
class Adapter:
    id: str
    base_fingerprint: str
    base_name: str
    trainer: str
    status: str
    data_snapshot: str
    config: dict
    metrics: dict
    created_at: datetime
    activated_at: datetime | None
    size_bytes: int
    has_gguf: bool = False
    has_native: bool = False

    def to_dict(self) -> dict:
        return {"id": self.id, "base_fingerprint": self.base_fingerprint, "base_name": self.base_name,
                "trainer": self.trainer, "status": self.status, "data_snapshot": self.data_snapshot,
                "config": self.config, "metrics": self.metrics, "created_at": self.created_at.isoformat(),
                "activated_at": self.activated_at.isoformat() if self.activated_at else None,
                "size_bytes": self.size_bytes, "gguf": self.has_gguf, "native": self.has_native}


_COLUMNS = ("id, base_fingerprint, base_name, trainer, status, data_snapshot, config, metrics, created_at, "
            "activated_at, size_bytes, gguf IS NOT NULL, native IS NOT NULL")


def _row(r) -> Adapter:
    return Adapter(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]), from_ts(r[8]),
                   from_ts(r[9]) if r[9] is not None else None, r[10], bool(r[11]), bool(r[12]))


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def unzip_folder(data: bytes, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.startswith("/") or ".." in Path(name).parts:
                raise InvalidInputError(f"An adapter archive holds an unsafe path {name!r}; it was not unpacked.")
        archive.extractall(folder)
    return folder


class AdapterRegistry:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------ writing
    def create(self, *, base_fingerprint: str, base_name: str, trainer: str, data_snapshot: str,
               config: dict) -> Adapter:
        adapter_id = new_id()
        with self.db.write() as conn:
            conn.execute("INSERT INTO adapters(id, base_fingerprint, base_name, trainer, status, data_snapshot, "
                         "config, created_at) VALUES (?, ?, ?, ?, 'training', ?, ?, ?)",
                         (adapter_id, base_fingerprint, base_name, trainer, data_snapshot,
                          json.dumps(config, sort_keys=True), ts(utcnow())))
        return self.get(adapter_id)

    def save_checkpoint(self, adapter_id: str, folder: Path) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE adapters SET checkpoint = ? WHERE id = ?", (zip_folder(folder), adapter_id))

    def checkpoint(self, adapter_id: str, folder: Path) -> Path | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT checkpoint FROM adapters WHERE id = ?", (adapter_id,)).fetchone()
        return unzip_folder(row[0], folder) if row and row[0] else None

    def store_weights(self, adapter_id: str, *, native_dir: Path, gguf_path: Path | None) -> Adapter:
        native = zip_folder(native_dir)
        gguf = gguf_path.read_bytes() if gguf_path is not None else None
        with self.db.write() as conn:
            conn.execute("UPDATE adapters SET native = ?, gguf = ?, size_bytes = ?, checkpoint = NULL WHERE id = ?",
                         (native, gguf, len(native) + len(gguf or b""), adapter_id))
        return self.get(adapter_id)

    def set_status(self, adapter_id: str, status: str, *, metrics: dict | None = None) -> Adapter:
        if status not in STATUSES:
            raise InvalidInputError(f"Unknown adapter status {status!r}; use one of {', '.join(STATUSES)}.")
        with self.db.write() as conn:
            if metrics is not None:
                conn.execute("UPDATE adapters SET status = ?, metrics = ? WHERE id = ?",
                             (status, json.dumps(metrics, sort_keys=True), adapter_id))
            else:
                conn.execute("UPDATE adapters SET status = ? WHERE id = ?", (status, adapter_id))
        return self.get(adapter_id)

    def activate(self, adapter_id: str, base_fingerprint: str, *, _rolling_back: bool = False) -> Adapter:
        """Switch this adapter on for its base model (the active one, if any, is retired and
        remembered as the one to roll back to)."""
        adapter = self.get(adapter_id)
        if adapter.base_fingerprint != base_fingerprint:
            raise ModelError(
                f"Adapter {adapter.id[:8]} was trained for {adapter.base_name} ({adapter.base_fingerprint[:12]}), "
                f"not for the model in use ({base_fingerprint[:12]}). Train a new adapter for this model, "
                "or switch back to that model in Settings.")
        if adapter.status in ("training", "failed", "rejected"):
            raise InvalidInputError(f"Adapter {adapter.id[:8]} is {adapter.status}; only a candidate or a "
                                    "retired adapter can be switched on.")
        if not (adapter.has_gguf or adapter.has_native):
            raise InvalidInputError(f"Adapter {adapter.id[:8]} has no weights stored; it cannot be switched on.")
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM adapters WHERE base_fingerprint = ? AND status = 'active'",
                               (base_fingerprint,)).fetchone()
            conn.execute("UPDATE adapters SET status = 'retired' WHERE base_fingerprint = ? AND status = 'active'",
                         (base_fingerprint,))
            conn.execute("UPDATE adapters SET status = 'active', activated_at = ? WHERE id = ?",
                         (ts(utcnow()), adapter.id))
            if not _rolling_back and (row is None or row[0] != adapter.id):
                conn.execute("UPDATE adapters SET previous_id = ? WHERE id = ?", (row[0] if row else None, adapter.id))
        return self.get(adapter.id)

    def deactivate(self, base_fingerprint: str) -> Adapter | None:
        """Run the base model without an adapter (the active one is retired)."""
        active = self.active(base_fingerprint)
        if active is not None:
            self.set_status(active.id, "retired")
        return active

    def rollback(self, base_fingerprint: str) -> Adapter | None:
        """Back to the adapter that was active before the current one (None: back to no adapter)."""
        current = self.active(base_fingerprint)
        if current is None:
            raise InvalidInputError("No adapter is active for this model, so there is nothing to roll back.")
        with self.db.read() as conn:
            previous = conn.execute("SELECT previous_id FROM adapters WHERE id = ?", (current.id,)).fetchone()[0]
        if previous is None:
            self.set_status(current.id, "retired")
            return None
        return self.activate(previous, base_fingerprint, _rolling_back=True)

    # ------------------------------------------------------------ reading
    def get(self, adapter_id: str) -> Adapter:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM adapters WHERE id LIKE ? || '%'", (adapter_id,)).fetchall()
        if not rows:
            raise NotFoundError(f"No adapter {adapter_id!r}; `memdesk adapter list` shows them.")
        if len(rows) > 1:
            raise InvalidInputError(f"{adapter_id!r} matches {len(rows)} adapters; give more of the id.")
        return _row(rows[0])

    def list(self, base_fingerprint: str | None = None) -> list[Adapter]:
        sql = f"SELECT {_COLUMNS} FROM adapters" + (" WHERE base_fingerprint = ?" if base_fingerprint else "")
        with self.db.read() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC", (base_fingerprint,) if base_fingerprint else ())
            return [_row(r) for r in rows]

    def active(self, base_fingerprint: str) -> Adapter | None:
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM adapters WHERE base_fingerprint = ? AND status = 'active'",
                               (base_fingerprint,)).fetchone()
        return _row(row) if row else None

    def native(self, adapter_id: str, folder: Path) -> Path:
        with self.db.read() as conn:
            row = conn.execute("SELECT native FROM adapters WHERE id = ?", (adapter_id,)).fetchone()
        if not row or not row[0]:
            raise NotFoundError(f"Adapter {adapter_id[:8]} has no trainer weights stored.")
        return unzip_folder(row[0], folder)

    @contextmanager
    def materialise(self, adapter_id: str, kind: str = "gguf") -> Iterator[Path]:
        """The adapter as files for a loader that needs a path, removed when the block ends
        (a private scratch folder, in RAM where possible: engine/vault/scratch.py)."""
        with private_scratch("adapter") as folder:
            if kind == "gguf":
                with self.db.read() as conn:
                    row = conn.execute("SELECT gguf FROM adapters WHERE id = ?", (adapter_id,)).fetchone()
                if not row or not row[0]:
                    raise NotFoundError(f"Adapter {adapter_id[:8]} has no llama.cpp (GGUF) weights.")
                path = folder / "adapter.gguf"
                path.write_bytes(row[0])
                yield path
            else:
                yield self.native(adapter_id, folder / "native")
