"""The `memdesk` CLI, run for real in subprocesses (`python -m memdesk`).

The conftest sets MEMDESK_DATA_DIR and MEMDESK_PASSPHRASE for every test; subprocesses
inherit them from os.environ. Only the search tests load the embedding model.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memdesk.engine.vault.keys import secure_keyring

ROOT = Path(__file__).resolve().parents[2]


def memdesk(*args: str, env: dict | None = None, input: str | None = None,
            stdin=None) -> subprocess.CompletedProcess:
    environ = dict(os.environ if env is None else env)
    environ["HF_HUB_OFFLINE"] = "1"
    environ["TRANSFORMERS_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "memdesk", *args], cwd=ROOT, env=environ, input=input,
                          stdin=stdin if input is None else None, capture_output=True, text=True,
                          timeout=120)


def ok(*args: str, **kwargs) -> subprocess.CompletedProcess:
    proc = memdesk(*args, **kwargs)
    assert proc.returncode == 0, f"memdesk {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def add(*args: str, **kwargs) -> str:
    data = json.loads(ok("add", *args, "--json", **kwargs).stdout)
    assert data["created"] is True
    return data["id"]


def search_ids(query: str, *extra: str) -> list[str]:
    hits = json.loads(ok("search", query, "--json", *extra).stdout)
    for hit in hits:
        assert set(hit) == {"item", "score", "signals"}
    return [hit["item"]["id"] for hit in hits]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vault_file(data_dir: Path) -> Path:
    return data_dir / "profiles" / "default" / "vault.db"


# ------------------------------------------------------------------ basics
def test_add_then_get_round_trip(data_dir):
    memory_id = add("I moved to Porto in March", "-t", "home", "--tag", "move", "--key", "Moving",
                    "--type", "UserMemory", "--priority", "3", "--pinned", "--event-time", "2024-03-05")
    assert vault_file(data_dir).exists()

    item = json.loads(ok("get", memory_id[:6], "--json").stdout)
    assert item["id"] == memory_id
    assert item["memory"] == "I moved to Porto in March"
    assert item["tags"] == ["home", "move"]
    assert item["key"] == "Moving"
    assert item["memory_type"] == "UserMemory"
    assert item["priority"] == 3 and item["pinned"] is True
    assert item["source"] == "capture"
    assert item["event_time"].startswith("2024-03-05")
    assert item["sources"] and item["sources"][0]["type"] == "capture"

    human = ok("get", memory_id).stdout
    assert memory_id in human and "I moved to Porto in March" in human
    assert "sources:" in human and "capture" in human

    # The plain form prints just the id; the same text again is merged, not duplicated.
    again = ok("add", "I moved to Porto in March")
    assert again.stdout.strip() == memory_id


def test_add_reads_stdin():
    memory_id = ok("add", "-", input="Remember the milk\n").stdout.strip()
    assert json.loads(ok("get", memory_id, "--json").stdout)["memory"] == "Remember the milk"


def test_empty_text_is_refused_on_stderr():
    proc = memdesk("add", "   ")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("memdesk: error: ")
    assert "empty" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_id_is_not_found():
    ok("add", "something to make the vault exist")
    proc = memdesk("get", "ffffffff-0000")
    assert proc.returncode == 5
    assert proc.stdout == ""
    assert "memdesk: error: No memory with id" in proc.stderr


def test_edit_keeps_history():
    memory_id = add("The wifi password is tulip42")
    proc = memdesk("edit", memory_id)
    assert proc.returncode == 2 and "Nothing to change" in proc.stderr

    edited = json.loads(ok("edit", memory_id[:8], "--text", "The wifi password is orchid77", "--tag", "home",
                           "--unpinned", "--expires", "2030-01-01", "--json").stdout)
    assert edited["memory"] == "The wifi password is orchid77"
    assert edited["tags"] == ["home"] and edited["version"] == 2
    assert edited["expires"].startswith("2030-01-01")

    history = json.loads(ok("history", memory_id, "--json").stdout)
    assert [row["item"]["memory"] for row in history] == ["The wifi password is tulip42",
                                                           "The wifi password is orchid77"]
    assert [row["current"] for row in history] == [False, True]
    human = ok("history", memory_id).stdout
    assert "tulip42" in human and "orchid77" in human


def test_delete_restore_and_purge():
    memory_id = add("A memory that will be purged")
    assert "deleted" in ok("delete", memory_id).stdout
    assert json.loads(ok("get", memory_id, "--json").stdout)["status"] == "deleted"
    ok("restore", memory_id)
    assert json.loads(ok("get", memory_id, "--json").stdout)["status"] == "activated"

    refused = memdesk("purge", memory_id)
    assert refused.returncode != 0
    assert "--yes" in refused.stderr
    assert json.loads(ok("get", memory_id, "--json").stdout)["id"] == memory_id  # still there

    ok("purge", memory_id, "--yes")
    gone = memdesk("get", memory_id)
    assert gone.returncode == 5


def test_export_import_round_trip(tmp_path):
    first = add("Export me please", "-t", "x")
    second = add("Archived but exported")
    ok("edit", first, "--text", "Export me, edited")
    ok("archive", second)
    export = tmp_path / "memories.jsonl"

    proc = ok("export", str(export))
    assert "2" in proc.stdout
    assert "plaintext" in proc.stderr.lower()
    assert export.exists()

    active = tmp_path / "active.jsonl"
    assert "1" in ok("export", str(active), "--active-only").stdout

    other = tmp_path / "other"
    report = json.loads(ok("--data-dir", str(other), "import", str(export), "--json").stdout)
    assert report == {"added": 2, "skipped": 0, "edges": 0}
    assert vault_file(other).exists()
    item = json.loads(ok("get", first, "--json", "--data-dir", str(other)).stdout)
    assert item["memory"] == "Export me, edited" and item["tags"] == ["x"]
    history = json.loads(ok("--data-dir", str(other), "history", first, "--json").stdout)
    assert history[0]["item"]["memory"] == "Export me please"
    assert json.loads(ok("--data-dir", str(other), "get", second, "--json").stdout)["status"] == "archived"

    again = ok("--data-dir", str(other), "import", str(export)).stdout
    assert "added 0, skipped 2" in again


def test_import_of_bad_file_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    proc = memdesk("import", str(bad))
    assert proc.returncode == 2
    assert "line 1" in proc.stderr and "Traceback" not in proc.stderr


def test_stats_and_data_dir_override(tmp_path, data_dir):
    elsewhere = tmp_path / "elsewhere"
    ok("--data-dir", str(elsewhere), "add", "Stored in the other folder")
    assert vault_file(elsewhere).exists()
    assert not data_dir.exists()  # MEMDESK_DATA_DIR was not touched

    stats = json.loads(ok("--data-dir", str(elsewhere), "stats", "--json").stdout)
    assert stats["memories"] == 1
    assert stats["vault"] == str(vault_file(elsewhere))
    assert stats["embedder"] is None  # keyword-only commands do not load the model
    assert "memories: 1" in ok("stats", "--data-dir", str(elsewhere)).stdout


def test_profiles_are_separate(data_dir):
    ok("--profile", "work", "add", "A work memory")
    assert (data_dir / "profiles" / "work" / "vault.db").exists()
    assert json.loads(ok("stats", "--json").stdout)["memories"] == 0
    bad = memdesk("--profile", "../evil", "stats")
    assert bad.returncode == 2 and "profile" in bad.stderr


def test_bad_arguments_are_usage_errors():
    proc = memdesk("add", "text", "--event-time", "yesterday-ish")
    assert proc.returncode == 2 and "ISO 8601" in proc.stderr
    proc = memdesk("frobnicate")
    assert proc.returncode == 2 and proc.stdout == ""


# ------------------------------------------------------------------- keys
def test_wrong_passphrase_exits_3_and_leaves_vault_untouched(data_dir):
    ok("add", "A secret worth protecting")
    vault = vault_file(data_dir)
    before = {p.name: sha256(p) for p in vault.parent.iterdir()}

    env = dict(os.environ, MEMDESK_PASSPHRASE="not the right one")
    proc = memdesk("stats", env=env)
    assert proc.returncode == 3
    assert "passphrase" in proc.stderr.lower()
    assert proc.stderr.startswith("memdesk: error: ")
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert {p.name: sha256(p) for p in vault.parent.iterdir()} == before


def test_missing_passphrase_without_tty_explains_how():
    ok("add", "Created with the passphrase from the environment")
    env = {k: v for k, v in os.environ.items() if k != "MEMDESK_PASSPHRASE"}
    proc = memdesk("stats", env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "MEMDESK_PASSPHRASE" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


@pytest.mark.skipif(secure_keyring() is not None, reason="a secure OS keyring would hold the key instead")
def test_new_vault_without_passphrase_or_tty_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MEMDESK_PASSPHRASE"}
    proc = memdesk("--data-dir", str(tmp_path / "fresh"), "add", "hello", env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 6
    assert "MEMDESK_PASSPHRASE" in proc.stderr
    assert not (tmp_path / "fresh" / "profiles" / "default" / "vault.db").exists()


# ----------------------------------------------------------------- search
@pytest.mark.slow
def test_search_finds_memory_and_archive_hides_it():
    add("I moved to Porto in March")
    quokka = add("Saw a quokka on Rottnest island", "-t", "travel")
    add("My favourite tea is genmaicha")

    ids = search_ids("quokka Rottnest")
    assert ids and ids[0] == quokka

    ok("archive", quokka[:8])
    assert quokka not in search_ids("quokka Rottnest")

    human = ok("search", "quokka Rottnest", "--all", "--tag", "travel", "-k", "3").stdout
    first = human.splitlines()[0]
    assert first.startswith(quokka[:8]) and "[archived]" in first and "quokka" in first


def test_no_command_opens_the_vault_and_says_where_it_is(tmp_path):
    add("a note to count")
    proc = ok()
    assert str(vault_file(Path(os.environ["MEMDESK_DATA_DIR"]))) in proc.stdout
    assert "(1 memory, encrypted)" in proc.stdout


def test_cache_stats_reports_an_empty_activation_cache():
    data = json.loads(ok("cache", "stats", "--json").stdout)
    assert data["states"] == 0 and data["bytes"] == 0 and data["cap_bytes"] > 0


def test_scheduler_status_lists_persisted_jobs():
    data = json.loads(ok("scheduler", "status", "--json").stdout)
    assert data["pending"] == {} and data["running"] is None and data["last_errors"] == []


def test_every_command_has_working_help(capsys):
    from memdesk.app.cli import build_parser, main

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert main([name, "--help"]) == 0, name
    assert "usage: memdesk" in capsys.readouterr().out
