"""Encrypted backups of a whole profile, and moving the vault key between keyring and passphrase."""
from __future__ import annotations

import hashlib
import json
import shutil
import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.api import Memory
from memdesk.engine.cube import ChatMessage
from memdesk.engine.errors import CorruptStoreError, InvalidInputError, KeyUnavailableError, WrongKeyError
from memdesk.engine.parametric.registry import AdapterRegistry
from memdesk.engine.parametric.types import Dataset, SftExample
from memdesk.engine.vault.backup import MAGIC, create_backup, read_header, restore_backup
from memdesk.engine.vault.feedback import Feedback
from memdesk.engine.vault.keys import change_key_storage
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.engine.vault.sessions import Sessions
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.engine.test_store import DictKeyring, files_under

BACKUP_PASSPHRASE = "a different backup passphrase"


def open_kw(folder: Path, **kwargs) -> Memory:
    return Memory.open(folder, embedder=False, kdf=FAST_KDF, **kwargs)


def store_dataset(mem: Memory, dataset: Dataset) -> str:
    """What engine.parametric.dataset.save_dataset writes (that module cannot be imported while
    engine.chat.turn is being reworked)."""
    with mem.db.write() as conn:
        conn.execute("INSERT INTO adapter_datasets(snapshot, created_at, sft, dpo, data) VALUES (?, 0, ?, ?, ?)",
                     (dataset.snapshot, len(dataset.sft), len(dataset.dpo), dataset.to_json()))
    return dataset.snapshot


def populate(mem: Memory, tmp_path: Path, model=None) -> str:
    """Something in every part of a profile: memories with history, tags and edges, a chat with
    feedback, a training dataset, an adapter with weights, an activation state. Returns a marker."""
    marker = uuid.uuid4().hex
    first = mem.add(f"my bike lock code is {marker}", tags=["bike", "codes"], key="bike lock", pinned=True).id
    mem.update(first, memory=f"my bike lock code is {marker} (changed)")
    mem.add_messages([ChatMessage("Ana", "I moved to Porto in March", datetime(2024, 4, 1, tzinfo=UTC)),
                      ChatMessage("Assistant", "Noted: Porto.", role="assistant")])
    sessions = Sessions(mem.db)
    session = sessions.create("backup test")
    sessions.append(session.id, "user", "Keep answers short")
    reply = sessions.append(session.id, "assistant", "Sure.")
    Feedback(mem.db).edit(reply.id, "Sure, short it is.")
    snapshot = store_dataset(mem, Dataset(sft=(SftExample("Keep answers short", "Sure, short it is.", (reply.id,)),)))
    registry = AdapterRegistry(mem.db)
    adapter = registry.create(base_fingerprint="base", base_name="SmolLM2", trainer="torch", data_snapshot=snapshot,
                              config={"rank": 8})
    native = tmp_path / "native"
    native.mkdir(exist_ok=True)
    (native / "adapter_config.json").write_text('{"r": 8}')
    gguf = tmp_path / "a.gguf"
    gguf.write_bytes(b"GGUF" + b"weights" * 100)
    registry.store_weights(adapter.id, native_dir=native, gguf_path=gguf)
    registry.set_status(adapter.id, "candidate")
    if model is not None:
        model.reset()
        ActivationCache(mem.db).put(model, model.tokenize("You are MemDesk. The user lives in Porto."), [first])
    return marker


def every_table(mem: Memory) -> dict[str, list]:
    """All rows of every ordinary table (shadow tables of FTS5 and vec0 included), in a stable order."""
    with mem.db.read() as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                            "AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name")]
        return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}


@pytest.fixture
def use_keyring(monkeypatch):
    monkeypatch.delenv("MEMDESK_PASSPHRASE", raising=False)
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


def test_backup_restores_every_table_on_a_machine_without_the_keyring(tmp_path, use_keyring, monkeypatch,
                                                                     llama_model):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    use_keyring(DictKeyring())
    with open_kw(home) as mem:
        marker = populate(mem, tmp_path, llama_model)
        before = every_table(mem)
        report = create_backup(mem, tmp_path / "profile.mdbk", BACKUP_PASSPHRASE, kdf=FAST_KDF)
    assert json.loads(ProfilePaths.for_profile(home).key_sidecar.read_text())["mode"] == "keyring"
    assert report.tables["memories"] == 3 and report.tables["adapters"] == 1 and report.tables["kv_states"] == 1
    assert marker.encode() not in (tmp_path / "profile.mdbk").read_bytes()
    assert all(before[name] for name in ("memories", "memory_versions", "edges", "memory_tags", "messages",
                                         "feedback", "adapter_datasets", "adapters", "kv_states", "memory_fts_data"))

    # Another machine: no keyring entry (no keyring at all), so a copied folder does not open...
    use_keyring(keyring.backends.fail.Keyring())
    shutil.copytree(home, tmp_path / "copied")
    with pytest.raises(KeyUnavailableError):
        open_kw(tmp_path / "copied")
    # ...but the backup does, with its own passphrase; the new vault is protected by a passphrase there.
    monkeypatch.setenv("MEMDESK_PASSPHRASE", PASSPHRASE)
    restored = restore_backup(tmp_path / "profile.mdbk", elsewhere, "default", BACKUP_PASSPHRASE, kdf=FAST_KDF)
    assert restored.key_mode == "passphrase" and not restored.replaced
    with open_kw(elsewhere) as mem:
        assert every_table(mem) == before
        assert mem.search(marker)[0].item.tags == ["bike", "codes"]
        assert AdapterRegistry(mem.db).native(AdapterRegistry(mem.db).list()[0].id, tmp_path / "out") \
            .joinpath("adapter_config.json").read_text() == '{"r": 8}'


def test_wrong_backup_passphrase_or_damage_is_refused_with_nothing_written(kw_mem, tmp_path):
    populate(kw_mem, tmp_path)
    backup = tmp_path / "b.mdbk"
    create_backup(kw_mem, backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    target = tmp_path / "target"
    target.mkdir()

    with pytest.raises(WrongKeyError, match="Nothing was written"):
        restore_backup(backup, target, "default", PASSPHRASE, kdf=FAST_KDF)  # the vault's, not the backup's
    assert files_under(target) == {} and list(target.iterdir()) == []

    data = backup.read_bytes()
    (tmp_path / "cut.mdbk").write_bytes(data[:-4096])
    flipped = bytearray(data)
    flipped[-100] ^= 1
    (tmp_path / "flipped.mdbk").write_bytes(bytes(flipped))
    (length,) = struct.unpack(">I", data[len(MAGIC):len(MAGIC) + 4])
    header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + length])
    header["kdf"]["memory_kib"] = 1 << 40  # a tampered cost must not be tried
    raw = json.dumps(header).encode()
    (tmp_path / "tampered.mdbk").write_bytes(MAGIC + struct.pack(">I", len(raw)) + raw + data[len(MAGIC) + 4 + length:])
    for name in ("cut.mdbk", "flipped.mdbk", "tampered.mdbk"):
        with pytest.raises(CorruptStoreError):
            restore_backup(tmp_path / name, target, "default", BACKUP_PASSPHRASE, kdf=FAST_KDF)
        assert list(target.rglob("*")) in ([], [target / "profiles"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match="not a MemDesk backup"):
        read_header(tmp_path / "notes.txt")
    with pytest.raises(InvalidInputError, match="too short"):
        create_backup(kw_mem, tmp_path / "short.mdbk", "short", kdf=FAST_KDF)
    assert not (tmp_path / "short.mdbk").exists()


def test_restore_replaces_an_existing_profile_only_when_asked(kw_mem, data_dir, tmp_path):
    kept = kw_mem.add("in the backup").id
    backup = tmp_path / "b.mdbk"
    create_backup(kw_mem, backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    later = kw_mem.add("added after the backup").id
    kw_mem.close()
    before = files_under(data_dir)
    with pytest.raises(InvalidInputError, match="--overwrite"):
        restore_backup(backup, data_dir, "default", BACKUP_PASSPHRASE, kdf=FAST_KDF)
    assert files_under(data_dir) == before

    report = restore_backup(backup, data_dir, "default", BACKUP_PASSPHRASE, overwrite=True, kdf=FAST_KDF)
    assert report.replaced
    assert sorted(p.name for p in (data_dir / "profiles").iterdir()) == ["default"]  # no staging left over
    with open_kw(data_dir) as mem:
        assert mem.get(kept).memory == "in the backup"
        with pytest.raises(Exception, match="No memory"):
            mem.get(later)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_passphrase_change_and_moves_between_keyring_and_passphrase(data_dir, use_keyring, monkeypatch):
    use_keyring(keyring.backends.fail.Keyring())
    old, new = PASSPHRASE, "a brand new passphrase"
    with open_kw(data_dir, passphrase=lambda confirm: old) as mem:
        memory_id = mem.add("kept through every change").id
    paths = ProfilePaths.for_profile(data_dir)
    vault_bytes = sha(paths.vault)

    with pytest.raises(WrongKeyError):
        change_key_storage(paths.key_sidecar, current=lambda c: "not it at all", mode="passphrase",
                           new_passphrase=new, kdf=FAST_KDF)
    with pytest.raises(InvalidInputError, match="too short"):
        change_key_storage(paths.key_sidecar, current=lambda c: old, mode="passphrase", new_passphrase="short")
    change_key_storage(paths.key_sidecar, current=lambda c: old, mode="passphrase", new_passphrase=new, kdf=FAST_KDF)
    with pytest.raises(WrongKeyError):
        open_kw(data_dir, passphrase=lambda confirm: old)
    with open_kw(data_dir, passphrase=lambda confirm: new) as mem:
        assert mem.get(memory_id).memory == "kept through every change"

    with pytest.raises(KeyUnavailableError, match="No secure OS keyring"):
        change_key_storage(paths.key_sidecar, current=lambda c: new, mode="keyring")
    backend = DictKeyring()
    use_keyring(backend)
    change_key_storage(paths.key_sidecar, current=lambda c: new, mode="keyring")
    assert len(backend.secrets) == 1
    with open_kw(data_dir, passphrase=lambda confirm: None) as mem:  # nobody is asked
        assert mem.get(memory_id).memory == "kept through every change"

    change_key_storage(paths.key_sidecar, current=lambda c: None, mode="passphrase", new_passphrase=old, kdf=FAST_KDF)
    assert backend.secrets == {}  # the key left the keyring once the passphrase protected it
    with open_kw(data_dir, passphrase=lambda confirm: old) as mem:
        assert mem.get(memory_id).memory == "kept through every change"
    assert sha(paths.vault) == vault_bytes  # the vault itself was never rewritten
    assert oct(paths.key_sidecar.stat().st_mode & 0o777) == "0o600"


def test_a_restore_cut_short_between_its_renames_gives_the_old_profile_back(data_dir):
    with open_kw(data_dir) as mem:
        memory_id = mem.add("the profile before the restore").id
    paths = ProfilePaths.for_profile(data_dir)
    paths.root.rename(data_dir / "profiles" / ".replaced-default-0123abcd")  # the crash: first rename done
    with open_kw(data_dir) as mem:
        assert mem.get(memory_id).memory == "the profile before the restore"
    assert sorted(p.name for p in (data_dir / "profiles").iterdir()) == ["default"]
