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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from memdesk.engine.cube import from_ts, new_id, ts, utcnow
from memdesk.engine.errors import InvalidInputError, ModelError, NotFoundError
from memdesk.engine.vault import adapters as adapter_rows
from memdesk.engine.vault.database import Database
from memdesk.engine.vault.scratch import private_scratch

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


def _row(r) -> Adapter:
    """An adapter from a row in the order of engine/vault/adapters.py's COLUMNS."""
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
            adapter_rows.insert(conn, adapter_id, base_fingerprint=base_fingerprint, base_name=base_name,
                                trainer=trainer, data_snapshot=data_snapshot,
                                config=json.dumps(config, sort_keys=True), created_at=ts(utcnow()))
        return self.get(adapter_id)

    def save_checkpoint(self, adapter_id: str, folder: Path) -> None:
        with self.db.write() as conn:
            adapter_rows.set_checkpoint(conn, adapter_id, zip_folder(folder))

    def checkpoint(self, adapter_id: str, folder: Path) -> Path | None:
        with self.db.read() as conn:
            data = adapter_rows.checkpoint(conn, adapter_id)
        return unzip_folder(data, folder) if data else None

    def store_weights(self, adapter_id: str, *, native_dir: Path, gguf_path: Path | None) -> Adapter:
        native = zip_folder(native_dir)
        gguf = gguf_path.read_bytes() if gguf_path is not None else None
        with self.db.write() as conn:
            adapter_rows.set_weights(conn, adapter_id, native=native, gguf=gguf,
                                     size_bytes=len(native) + len(gguf or b""))
        return self.get(adapter_id)

    def set_status(self, adapter_id: str, status: str, *, metrics: dict | None = None) -> Adapter:
        if status not in STATUSES:
            raise InvalidInputError(f"Unknown adapter status {status!r}; use one of {', '.join(STATUSES)}.")
        with self.db.write() as conn:
            adapter_rows.set_status(conn, adapter_id, status,
                                    metrics=json.dumps(metrics, sort_keys=True) if metrics is not None else None)
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
            was_active = adapter_rows.active_id(conn, base_fingerprint)
            adapter_rows.retire_active(conn, base_fingerprint)
            adapter_rows.mark_active(conn, adapter.id, ts(utcnow()))
            if not _rolling_back and was_active != adapter.id:
                adapter_rows.set_previous(conn, adapter.id, was_active)
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
            previous = adapter_rows.previous_id(conn, current.id)
        if previous is None:
            self.set_status(current.id, "retired")
            return None
        return self.activate(previous, base_fingerprint, _rolling_back=True)

    # ------------------------------------------------------------ reading
    def get(self, adapter_id: str) -> Adapter:
        with self.db.read() as conn:
            rows = adapter_rows.rows_by_prefix(conn, adapter_id)
        if not rows:
            raise NotFoundError(f"No adapter {adapter_id!r}; `memdesk adapter list` shows them.")
        if len(rows) > 1:
            raise InvalidInputError(f"{adapter_id!r} matches {len(rows)} adapters; give more of the id.")
        return _row(rows[0])

    def list(self, base_fingerprint: str | None = None) -> list[Adapter]:
        with self.db.read() as conn:
            return [_row(r) for r in adapter_rows.rows(conn, base_fingerprint)]

    def active(self, base_fingerprint: str) -> Adapter | None:
        with self.db.read() as conn:
            row = adapter_rows.active_row(conn, base_fingerprint)
        return _row(row) if row else None

    def native(self, adapter_id: str, folder: Path) -> Path:
        with self.db.read() as conn:
            data = adapter_rows.native(conn, adapter_id)
        if not data:
            raise NotFoundError(f"Adapter {adapter_id[:8]} has no trainer weights stored.")
        return unzip_folder(data, folder)

    @contextmanager
    def materialise(self, adapter_id: str, kind: str = "gguf") -> Iterator[Path]:
        """The adapter as files for a loader that needs a path, removed when the block ends
        (a private scratch folder, in RAM where possible: engine/vault/scratch.py)."""
        with private_scratch("adapter") as folder:
            if kind == "gguf":
                with self.db.read() as conn:
                    data = adapter_rows.gguf(conn, adapter_id)
                if not data:
                    raise NotFoundError(f"Adapter {adapter_id[:8]} has no llama.cpp (GGUF) weights.")
                path = folder / "adapter.gguf"
                path.write_bytes(data)
                yield path
            else:
                yield self.native(adapter_id, folder / "native")
