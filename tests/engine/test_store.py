"""MemVault: encryption, keys, damage detection, migrations."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from keyring.backend import KeyringBackend

from memdesk.engine.api import Memory
from memdesk.engine.cube import ChatMessage, Filters
from memdesk.engine.errors import CorruptStoreError, KeyUnavailableError, MemDeskError, WrongKeyError
from memdesk.engine.vault.keys import KdfParams
from memdesk.engine.vault.migrations import MIGRATIONS
from memdesk.engine.vault.paths import ProfilePaths
from tests.conftest import FAST_KDF, PASSPHRASE


# ------------------------------------------------------------------ helpers
def files_under(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def profile(data_dir: Path) -> ProfilePaths:
    return ProfilePaths.for_profile(data_dir)


def open_kw(data_dir: Path, **kwargs) -> Memory:
    return Memory.open(data_dir, embedder=False, kdf=FAST_KDF, **kwargs)


def read_everything(mem: Memory, ids: list[str], words: list[str]) -> list[str]:
    """Touch every memory through get(), a full export-style scan and keyword searches."""
    texts = [mem.get(i).memory for i in ids]
    for word in words:
        mem.search(word, k=1000)
    mem.stats()
    mem.check()  # every page, including ones no query above happened to touch
    return texts


# A template vault with many pages, built once per module and copied into each test.
VOCAB = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


@pytest.fixture(scope="module")
def big_vault(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMDESK_PASSPHRASE", PASSPHRASE)
        with open_kw(root) as mem:
            ids = []
            for i in range(200):
                words = " ".join(VOCAB[(i + j) % len(VOCAB)] for j in range(40))
                ids.append(mem.add(f"note {i}: {words} {uuid.uuid4().hex}").id)
            with mem.db.read() as conn:
                page_size = conn.pragma("page_size")
                leaf_pages = [p for (p,) in conn.execute(
                    "SELECT pageno FROM dbstat WHERE name = 'memories' AND pagetype = 'leaf'")]
            texts = [mem.get(i).memory for i in ids]
    assert not Path(str(profile(root).vault) + "-wal").exists(), "close should checkpoint the WAL away"
    return {"root": root, "ids": ids, "texts": texts, "page_size": page_size, "leaf_pages": leaf_pages}


@pytest.fixture
def copied_vault(big_vault, data_dir):
    shutil.copytree(big_vault["root"], data_dir)
    return {**big_vault, "root": data_dir, "vault": profile(data_dir).vault}


# --------------------------------------------------------------- wrong keys
def test_wrong_passphrase_is_refused_and_changes_nothing(data_dir, monkeypatch):
    with open_kw(data_dir) as mem:
        memory_id = mem.add("the spare key is under the blue flowerpot").id
    before = files_under(data_dir)
    assert "profiles/default/vault.db" in before

    monkeypatch.setenv("MEMDESK_PASSPHRASE", "not the passphrase")
    with pytest.raises(WrongKeyError, match="MEMDESK_PASSPHRASE"):
        open_kw(data_dir)
    with pytest.raises(WrongKeyError):
        open_kw(data_dir, passphrase=lambda confirm: PASSPHRASE + " ")
    assert files_under(data_dir) == before

    monkeypatch.setenv("MEMDESK_PASSPHRASE", PASSPHRASE)
    with open_kw(data_dir) as mem:
        assert mem.get(memory_id).memory == "the spare key is under the blue flowerpot"


def test_sidecar_of_another_vault_is_detected_at_decrypt_time(tmp_path, monkeypatch):
    """The key check passes (sidecar and passphrase agree) but the vault is someone else's."""
    a, b = tmp_path / "a", tmp_path / "b"
    with open_kw(a) as mem:
        mem.add("vault a")
    monkeypatch.setenv("MEMDESK_PASSPHRASE", "the other passphrase")
    with open_kw(b) as mem:
        mem.add("vault b")
    shutil.copy(profile(b).key_sidecar, profile(a).key_sidecar)
    before = files_under(a)
    with pytest.raises(MemDeskError) as info:
        open_kw(a)
    assert isinstance(info.value, (WrongKeyError, CorruptStoreError))
    assert files_under(a) == before


# ----------------------------------------------------------- damaged vaults
@pytest.mark.parametrize("cut", ["half_on_page_boundary", "odd_size", "first_page_only"])
def test_truncated_vault_is_corrupt_and_untouched(copied_vault, cut):
    vault, page = copied_vault["vault"], copied_vault["page_size"]
    size = vault.stat().st_size
    assert size % page == 0 and size // page > 20
    new_size = {"half_on_page_boundary": (size // 2) // page * page,
                "odd_size": size // 2 + 123,
                "first_page_only": page}[cut]
    with open(vault, "r+b") as fh:
        fh.truncate(new_size)
    before = files_under(copied_vault["root"])

    with pytest.raises(CorruptStoreError):
        open_kw(copied_vault["root"])

    assert vault.stat().st_size == new_size
    assert files_under(copied_vault["root"]) == before  # no -wal/-shm, no fresh vault over it


def test_empty_vault_file_is_corrupt(data_dir):
    with open_kw(data_dir) as mem:
        mem.add("something")
    vault = profile(data_dir).vault
    vault.write_bytes(b"")
    before = files_under(data_dir)
    with pytest.raises(CorruptStoreError, match="empty"):
        open_kw(data_dir)
    assert files_under(data_dir) == before
    assert vault.stat().st_size == 0


@pytest.mark.parametrize("where", [0.35, 0.5, 0.65])
def test_garbage_in_the_middle_is_an_error_not_wrong_data(copied_vault, where):
    vault = copied_vault["vault"]
    size = vault.stat().st_size
    with open(vault, "r+b") as fh:
        fh.seek(int(size * where))
        fh.write(os.urandom(16 * 1024))
    with pytest.raises(CorruptStoreError):
        with open_kw(copied_vault["root"]) as mem:
            read_everything(mem, copied_vault["ids"], VOCAB)


def test_one_damaged_memory_page_is_detected_on_read(copied_vault):
    """A few bytes flipped in one data page (not the header) must fail the read, not return garbage."""
    vault, page = copied_vault["vault"], copied_vault["page_size"]
    leaves = copied_vault["leaf_pages"]
    assert len(leaves) > 10
    target = leaves[len(leaves) // 2]
    with open(vault, "r+b") as fh:
        fh.seek((target - 1) * page + page // 2)
        original = fh.read(8)
        fh.seek((target - 1) * page + page // 2)
        fh.write(bytes(b ^ 0xFF for b in original))
    with open_kw(copied_vault["root"]) as mem:  # page 1 is intact: opening may succeed
        with pytest.raises(CorruptStoreError):
            read_everything(mem, copied_vault["ids"], [])


def test_undamaged_copy_reads_back_exactly(copied_vault):
    """Control for the damage tests: the same procedure on an intact copy returns the data."""
    with open_kw(copied_vault["root"]) as mem:
        assert read_everything(mem, copied_vault["ids"], VOCAB) == copied_vault["texts"]


def test_missing_key_file_with_existing_vault(data_dir):
    with open_kw(data_dir) as mem:
        mem.add("keep me")
    paths = profile(data_dir)
    paths.key_sidecar.unlink()
    before = files_under(data_dir)
    with pytest.raises(CorruptStoreError, match="key file"):
        open_kw(data_dir)
    assert files_under(data_dir) == before
    assert not paths.key_sidecar.exists()


def test_missing_vault_with_existing_key_file_is_not_recreated(data_dir):
    with open_kw(data_dir) as mem:
        mem.add("keep me")
    paths = profile(data_dir)
    paths.vault.unlink()
    before = files_under(data_dir)
    with pytest.raises(CorruptStoreError, match="missing"):
        open_kw(data_dir)
    assert files_under(data_dir) == before
    assert not paths.vault.exists()


def test_damaged_key_file(data_dir):
    with open_kw(data_dir) as mem:
        mem.add("keep me")
    profile(data_dir).key_sidecar.write_text("{ not json", encoding="utf-8")
    before = files_under(data_dir)
    with pytest.raises(CorruptStoreError):
        open_kw(data_dir)
    assert files_under(data_dir) == before


# -------------------------------------------------------------------- keyring
class DictKeyring(KeyringBackend):
    """A secure-looking in-memory keyring."""

    priority = 10

    def __init__(self):
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.secrets.get((service, username))

    def set_password(self, service, username, password):
        self.secrets[(service, username)] = password

    def delete_password(self, service, username):
        self.secrets.pop((service, username), None)


class PlaintextFileKeyring(DictKeyring):
    """Looks like keyrings.alt's plaintext file backend: must not be trusted with the key."""

    __module__ = "keyrings.alt.file"
    priority = 20


# Defining a backend registers it for keyring's auto-detection; keep these out of it.
for _cls in (DictKeyring, PlaintextFileKeyring):
    KeyringBackend._classes.discard(_cls)


@pytest.fixture
def use_keyring(monkeypatch):
    monkeypatch.delenv("MEMDESK_PASSPHRASE", raising=False)
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


def test_keyring_mode_creates_and_reopens_without_key_on_disk(data_dir, use_keyring):
    backend = DictKeyring()
    use_keyring(backend)
    with open_kw(data_dir) as mem:
        memory_id = mem.add("stored with a keyring key").id
    info = json.loads(profile(data_dir).key_sidecar.read_text(encoding="utf-8"))
    assert info["mode"] == "keyring"
    assert info.get("salt") is None
    assert len(backend.secrets) == 1
    (service, username), secret = next(iter(backend.secrets.items()))
    assert service == "MemDesk" and username == info["vault_id"]
    assert len(bytes.fromhex(secret)) == 32

    needles = [secret.encode(), secret.upper().encode(), bytes.fromhex(secret)]
    for path in data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"key material found in {path}"

    with open_kw(data_dir) as mem:
        assert mem.get(memory_id).memory == "stored with a keyring key"

    use_keyring(DictKeyring())  # the entry is gone (another machine, wiped keyring)
    with pytest.raises(KeyUnavailableError):
        open_kw(data_dir)


def test_no_keyring_and_no_passphrase_is_key_unavailable(data_dir, use_keyring):
    use_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(KeyUnavailableError) as info:
        open_kw(data_dir)
    assert "MEMDESK_PASSPHRASE" in str(info.value)
    paths = profile(data_dir)
    assert not paths.vault.exists() and not paths.key_sidecar.exists()


def test_plaintext_keyring_is_not_trusted_with_the_key(data_dir, use_keyring):
    backend = PlaintextFileKeyring()
    use_keyring(backend)
    ask = lambda confirm: PASSPHRASE  # noqa: E731 - a terminal prompt stand-in
    with open_kw(data_dir, passphrase=ask) as mem:
        memory_id = mem.add("not in a plaintext keyring").id
    assert backend.secrets == {}
    info = json.loads(profile(data_dir).key_sidecar.read_text(encoding="utf-8"))
    assert info["mode"] == "passphrase" and info["salt"]
    with open_kw(data_dir, passphrase=ask) as mem:
        assert mem.get(memory_id).memory == "not in a plaintext keyring"


def test_passphrase_env_wins_over_a_secure_keyring(data_dir, use_keyring, monkeypatch):
    backend = DictKeyring()
    use_keyring(backend)
    monkeypatch.setenv("MEMDESK_PASSPHRASE", PASSPHRASE)
    with open_kw(data_dir) as mem:
        mem.add("passphrase chosen")
    assert backend.secrets == {}
    assert json.loads(profile(data_dir).key_sidecar.read_text(encoding="utf-8"))["mode"] == "passphrase"


# ------------------------------------------------------- nothing in plaintext
def find_markers(folder: Path, markers: list[str]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for marker in markers:
            for encoding in ("utf-8", "utf-16-le"):
                if marker.encode(encoding) in data:
                    found.append(f"{marker} ({encoding}) in {path.relative_to(folder)}")
    return found


def test_marker_scanner_detects_plaintext(tmp_path):
    """Control: the scanner finds markers in both encodings, even in nested folders."""
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "f.bin").write_bytes(b"\0junk" + a.encode("utf-16-le") + b"tail")
    (tmp_path / "g.txt").write_text(f"some {b} text", encoding="utf-8")
    assert len(find_markers(tmp_path, [a, b, uuid.uuid4().hex])) == 2


def test_no_plaintext_on_disk_while_open_and_after_close(kw_mem, data_dir):
    m = {name: uuid.uuid4().hex for name in (
        "text", "key", "tag", "msg_text", "speaker", "msg_id", "session", "old_text", "new_text",
        "archived", "query", "info", "scope")}
    ids = {}
    ids["text"] = kw_mem.add(f"my locker code is {m['text']}", key=f"locker {m['key']}",
                             tags=[f"t{m['tag']}"], info={"note": m["info"]}, scope=f"s{m['scope']}").id
    chat = kw_mem.add_messages([
        ChatMessage("Ana", f"the wifi password is {m['msg_text']}", message_id=f"mid-{m['msg_id']}",
                    session_id=m["session"], timestamp=datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ChatMessage(f"Bob{m['speaker']}", "noted, thanks", session_id=m["session"],
                    timestamp=datetime(2024, 5, 1, 10, 1, tzinfo=UTC)),
    ])
    ids["old"] = kw_mem.add(f"first draft {m['old_text']}").id
    kw_mem.update(ids["old"], memory=f"second draft {m['new_text']}")
    ids["archived"] = kw_mem.add(f"archived fact {m['archived']}").id
    kw_mem.archive(ids["archived"])
    kw_mem.add("filler " * 50, expires=datetime.now(UTC) + timedelta(days=1))
    for marker in m.values():
        kw_mem.search(f"what about {marker}", include_inactive=True)

    # The markers really are stored (so the scan below is not vacuous).
    assert kw_mem.search(m["text"], filters=Filters(scope=f"s{m['scope']}"))[0].item.id == ids["text"]
    assert m["old_text"] in kw_mem.history(ids["old"])[0].item.memory
    assert kw_mem.get(chat[0].id).sources[0].message_id == f"mid-{m['msg_id']}"

    paths = profile(data_dir)
    wal = Path(str(paths.vault) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0, "expected an open WAL to scan"
    assert find_markers(data_dir, list(m.values()) + [PASSPHRASE]) == []

    kw_mem.close()
    assert paths.vault.stat().st_size > 0
    assert find_markers(data_dir, list(m.values()) + [PASSPHRASE]) == []


# ---------------------------------------------------------------- migrations
def test_migrations_are_recorded_and_applied_once(data_dir):
    names = [m.__name__ for m in MIGRATIONS]
    with open_kw(data_dir) as mem:
        assert mem.db.applied_migrations == names
        with mem.db.read() as conn:
            recorded = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]
        assert recorded == sorted(names)
        mem.add("survives a reopen")
    with open_kw(data_dir) as mem:
        assert mem.db.applied_migrations == []
        with mem.db.read() as conn:
            assert conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(names)
        assert mem.stats()["memories"] == 1


def test_vault_from_a_newer_version_is_refused(data_dir):
    with open_kw(data_dir) as mem:
        with mem.db.write() as conn:
            conn.execute("INSERT INTO migrations(name, applied_at) VALUES ('m999_future', 0)")
    with pytest.raises(CorruptStoreError, match="newer"):
        open_kw(data_dir)


def test_kdf_parameters_are_kept_in_the_sidecar(data_dir):
    """A vault made with one cost opens later even if the default cost changes."""
    custom = KdfParams(time_cost=2, memory_kib=8 * 1024, parallelism=1)
    with Memory.open(data_dir, embedder=False, kdf=custom) as mem:
        memory_id = mem.add("cost recorded").id
    info = json.loads(profile(data_dir).key_sidecar.read_text(encoding="utf-8"))
    assert info["kdf"] == {"time_cost": 2, "memory_kib": 8192, "parallelism": 1}
    with open_kw(data_dir) as mem:  # FAST_KDF given, sidecar wins
        assert mem.get(memory_id).memory == "cost recorded"
