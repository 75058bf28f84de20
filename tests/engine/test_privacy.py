"""Private by construction: folder and file modes, durable key sidecar, decrypted scratch in RAM
and swept after a crash, no core dumps."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from memdesk.app.settings_store import SettingsStore
from memdesk.engine.api import Memory
from memdesk.engine.parametric.registry import AdapterRegistry
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.engine.vault.scratch import private_scratch, ram_folder, sweep_leftovers
from memdesk.ui.settings_model import AppSettings
from tests.conftest import FAST_KDF

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    previous = os.umask(0o022)  # the usual desktop umask: new files 0644, folders 0755
    yield
    os.umask(previous)


def test_profile_folder_key_sidecar_and_settings_are_private(data_dir, loose_umask, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real_fsync(fd))[1])
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF):
        pass
    paths = ProfilePaths.for_profile(data_dir)
    assert mode(paths.root) == 0o700 and mode(data_dir / "profiles") == 0o700
    assert mode(paths.key_sidecar) == 0o600
    # The sidecar holds the only copy of the salt: its content and its name in the folder are synced.
    assert os.stat(paths.key_sidecar).st_ino in synced and os.stat(paths.root).st_ino in synced
    assert [p.name for p in paths.root.iterdir() if p.name.startswith(".")] == []  # no temporary left

    SettingsStore(paths).save(AppSettings())
    assert mode(paths.root / "settings.json") == 0o600


def test_adapter_weights_are_decrypted_to_ram_and_removed(kw_mem, tmp_path):
    registry = AdapterRegistry(kw_mem.db)
    adapter = registry.create(base_fingerprint="b", base_name="m", trainer="torch", data_snapshot="s" * 64, config={})
    (tmp_path / "native").mkdir()
    (tmp_path / "native" / "adapter_config.json").write_text("{}")
    gguf = tmp_path / "a.gguf"
    gguf.write_bytes(b"GGUF" + b"w" * 64)
    registry.store_weights(adapter.id, native_dir=tmp_path / "native", gguf_path=gguf)
    with registry.materialise(adapter.id) as path:
        assert path.read_bytes() == gguf.read_bytes()
        assert mode(path.parent) == 0o700 and f"-{os.getpid()}-" in path.parent.name
        if sys.platform.startswith("linux") and ram_folder() is not None:
            assert path.parent.parent == ram_folder()  # RAM, not a disk
    assert not path.parent.exists()


def test_leftovers_of_a_dead_process_are_swept_at_start_up(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    leftover = tmp_path / f"memdesk-adapter-{dead_pid}-abc123"
    leftover.mkdir()
    (leftover / "adapter.gguf").write_bytes(b"decrypted weights")
    with private_scratch("train") as mine_in_use:
        live = tmp_path / mine_in_use.name
        live.mkdir()
        unrelated = tmp_path / f"someone-else-{dead_pid}"
        unrelated.mkdir()
        removed = sweep_leftovers([tmp_path])
    assert removed == [leftover] and not leftover.exists()
    assert live.exists() and unrelated.exists()


def test_the_command_line_turns_core_dumps_off():
    code = ("import resource, sys\n"
            "from memdesk.app.cli import main\n"
            "main(['--help'])\n"
            "from memdesk.engine.vault.hardening import is_dumpable\n"
            "print(resource.getrlimit(resource.RLIMIT_CORE), is_dumpable())\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("(0, 0)")
    if sys.platform.startswith("linux"):
        assert last.endswith("False")
