"""`memdesk backup create|restore`, `memdesk passphrase change` and `memdesk key`, run for real."""
from __future__ import annotations

import json
import os

from tests.app.test_cli import add, memdesk, ok
from tests.conftest import PASSPHRASE


def test_backup_create_and_restore_into_another_data_dir(tmp_path, data_dir):
    memory_id = add("I keep my passport in the blue folder", "-t", "documents")
    ok("delete", memory_id)
    env = {**os.environ, "MEMDESK_BACKUP_PASSPHRASE": "backup passphrase 1"}
    backup = tmp_path / "memdesk.backup"
    made = json.loads(ok("backup", "create", str(backup), "--json", env=env).stdout)
    assert made["tables"]["memories"] == 1 and backup.stat().st_size == made["bytes"]

    other = tmp_path / "other"
    wrong = memdesk("--data-dir", str(other), "backup", "restore", str(backup),
                    env={**env, "MEMDESK_BACKUP_PASSPHRASE": PASSPHRASE})
    assert wrong.returncode == 3 and "Wrong backup passphrase" in wrong.stderr
    assert not (other / "profiles" / "default").exists()

    restored = json.loads(ok("backup", "restore", str(backup), "--data-dir", str(other), "--json", env=env).stdout)
    assert restored["key"] == "passphrase" and restored["replaced"] is False
    item = json.loads(ok("get", memory_id, "--data-dir", str(other), "--json").stdout)
    assert item["memory"] == "I keep my passport in the blue folder" and item["status"] == "deleted"
    # `restore ID` still undeletes a memory.
    ok("restore", memory_id[:8], "--data-dir", str(other))
    assert json.loads(ok("get", memory_id, "--data-dir", str(other), "--json").stdout)["status"] == "activated"

    again = memdesk("backup", "restore", str(backup), "--data-dir", str(other), env=env)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    ok("backup", "restore", str(backup), "--data-dir", str(other), "--overwrite", env=env)
    assert json.loads(ok("get", memory_id, "--data-dir", str(other), "--json").stdout)["status"] == "deleted"


def test_passphrase_change_on_the_command_line():
    memory_id = add("behind a passphrase")
    assert json.loads(ok("key", "status", "--json").stdout)["mode"] == "passphrase"
    short = memdesk("passphrase", "change", env={**os.environ, "MEMDESK_NEW_PASSPHRASE": "short"})
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    ok("passphrase", "change", env={**os.environ, "MEMDESK_NEW_PASSPHRASE": "the new passphrase"})
    old = memdesk("get", memory_id)
    assert old.returncode == 3 and "Traceback" not in old.stderr
    assert "behind a passphrase" in ok("get", memory_id, env={**os.environ,
                                                             "MEMDESK_PASSPHRASE": "the new passphrase"}).stdout
    no_keyring = memdesk("key", "use-keyring", env={**os.environ, "MEMDESK_PASSPHRASE": "the new passphrase"})
    assert no_keyring.returncode == 6 and "No secure OS keyring" in no_keyring.stderr
