"""The CLI's trust items, run for real: forget, safe exports, clear errors instead of tracebacks,
strict imports, searches that do not wait for the embedding backlog."""
from __future__ import annotations

import json
import os

from tests.app.test_cli import add, memdesk, ok


def test_forget_previews_without_yes_then_erases(data_dir):
    memory_id = add("my old phone pin is 4821", "-t", "secrets")
    preview = memdesk("forget", memory_id[:8])
    assert preview.returncode == 2 and "Would forget 1 memory" in preview.stderr and "--yes" in preview.stderr
    assert json.loads(ok("get", memory_id, "--json").stdout)["memory"] == "my old phone pin is 4821"

    done = ok("forget", memory_id[:8], "--yes")
    assert done.stdout.startswith("Forgot 1 memory, 0 chat messages")
    assert memdesk("get", memory_id).returncode == 5
    missing = memdesk("forget", "--session", "no-such-chat", "--yes")
    assert missing.returncode == 5 and "Traceback" not in missing.stderr
    both = memdesk("forget", memory_id, "--session", "x")
    assert both.returncode == 2


def _env(**extra: str) -> dict:
    return {**os.environ, **extra}


def test_export_dash_writes_standard_output_not_a_file(tmp_path):
    add("exported to a pipe")
    proc = ok("export", "-")
    lines = proc.stdout.splitlines()
    assert json.loads(lines[0])["format"] == "memdesk.memories" and len(lines) == 2
    assert "exported 1 memories to standard output" in proc.stderr
    assert not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "-"))


# ---------------------------------------------------------------- clear errors (item F)
import subprocess  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import pytest  # noqa: E402


@contextmanager
def read_only(folder):
    """`folder` made read-only for this process: by its mode, or (as root, whom modes do not stop)
    by a read-only bind mount over it."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o500)
        try:
            yield folder
        finally:
            os.chmod(folder, 0o700)
        return
    mount = folder.parent / (folder.name + "-ro")
    mount.mkdir()
    bound = subprocess.run(["mount", "--bind", str(folder), str(mount)], capture_output=True)
    if bound.returncode != 0:
        mount.rmdir()
        pytest.skip("running as root without the right to mount: cannot make a folder read-only here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        mount.rmdir()


def test_a_read_only_profile_folder_is_a_clear_error_even_for_reading(data_dir, tmp_path):
    memory_id = add("stored before the folder became read-only")
    with read_only(data_dir) as folder:
        for command in (["stats"], ["check"], ["get", memory_id], ["search", "stored"], ["add", "more"]):
            proc = memdesk("--data-dir", str(folder), *command)
            assert proc.returncode == 11, (command, proc.stderr)
            assert "Traceback" not in proc.stderr and "cannot write in" in proc.stderr


def test_damage_met_while_writing_exits_4(data_dir):
    from tests.engine.test_clear_errors import damage_memory_pages

    ids = damage_memory_pages(data_dir)
    codes = set()
    for memory_id in ids[len(ids) // 2:len(ids) // 2 + 20]:
        proc = memdesk("edit", memory_id, "--text", "changed")
        assert "Traceback" not in proc.stderr, proc.stderr
        codes.add(proc.returncode)
    assert 4 in codes and codes <= {0, 4}


def test_undecodable_passphrase_tampered_key_file_and_huge_priority(data_dir):
    memory_id = add("a memory")
    env = {k.encode(): v.encode() for k, v in os.environ.items()}
    env[b"MEMDESK_PASSPHRASE"] = b"caf\xe9 latin-1 bytes"
    proc = subprocess.run([os.sys.executable, "-m", "memdesk", "get", memory_id], env=env, capture_output=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), timeout=120)
    assert proc.returncode == 2 and b"not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr

    for args in (["add", "x y", "--priority", "100000000000000000000000"], ["edit", memory_id, "--priority", "1e23"]):
        proc = memdesk(*args)
        assert proc.returncode == 2 and "priority" in proc.stderr and "Traceback" not in proc.stderr

    short = memdesk("get", memory_id[:2])
    assert short.returncode == 5 and "at least its first 4 characters" in short.stderr

    sidecar = data_dir / "profiles" / "default" / "vault.key.json"
    info = json.loads(sidecar.read_text())
    info["kdf"]["memory_kib"] = 1 << 40
    sidecar.write_text(json.dumps(info))
    proc = memdesk("get", memory_id)
    assert proc.returncode == 4 and "memory_kib" in proc.stderr and "Traceback" not in proc.stderr


def test_escape_sequences_in_memories_are_escaped_on_the_terminal():
    memory_id = add("title\x1b]0;owned\x07 and \x1b[2Jclear screen")
    for proc in (ok("get", memory_id), ok("history", memory_id), ok("search", "clear screen")):
        assert "\x1b" not in proc.stdout and "\\x1b]0;owned\\x07" in proc.stdout
    assert json.loads(ok("get", memory_id, "--json").stdout)["memory"].startswith("title\x1b]0;owned")


def test_search_does_not_wait_for_the_backlog_and_index_shows_progress():
    target = add("I play the saxophone in a jazz band")
    add("The weather was fine on Sunday")
    first = ok("search", "saxophone", "--json")
    assert json.loads(first.stdout)[0]["item"]["id"] == target
    assert "2 of 2 memories are not embedded yet" in first.stderr and "memdesk index" in first.stderr
    indexed = ok("index")
    assert "2 memories embedded now; 2 of 2 have their vector" in indexed.stdout
    assert "embedding: 2/2 (100%)" in indexed.stderr
    again = ok("search", "which instrument do I play?")
    assert "not embedded yet" not in again.stderr and "saxophone" in again.stdout
