"""Watched-folder ingestion: chunking, incremental re-scans, moves, skips, crashes, the watcher."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memdesk.app.cli import main as cli_main
from memdesk.engine.api import Memory
from memdesk.engine.cube import Filters, MemoryType, Source
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.ingestion.chunks import chunk_file, chunk_markdown
from memdesk.engine.ingestion.folders import Ingestor
from memdesk.engine.ingestion.watch import FolderWatcher
from tests.conftest import FAST_KDF

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15.0  # generous upper bound for a watcher to react; polls return as soon as it has

TRIP = """# Trip

Planning the summer trip to Portugal with Ana.

## Day 1

Arrived in Lisbon late at night.
Ate a pastel de nata at Belem.

## Day 2

Took the train to Porto along the coast.

```sh
# not a heading: inside a fenced block

echo still the same block
```

## Day 3

Walked across the Dom Luis bridge at sunset.
"""


def write(path: Path, text: str | bytes, age: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    if age is not None:  # an mtime in the past: the file is not "racy", so a re-scan trusts its stat
        when = time.time() - age
        os.utime(path, (when, when))
    return path


def file_memories(mem: Memory, status: tuple[str, ...] = ("activated",)) -> dict[str, object]:
    items = mem.list(Filters(sources=(Source.FILE.value,), statuses=status), limit=1000)
    return {item.key: item for item in items}


def lines_of(path: Path, start: int, end: int) -> str:
    return "\n".join(path.read_text(encoding="utf-8").splitlines()[start - 1:end]).strip()


def poll(events: dict, condition, timeout: float = WAIT, what: str = "condition"):
    """Wait for `condition`, checking it again each time the watcher reports (no sleeping)."""
    found = []
    with events["cv"]:
        if events["cv"].wait_for(lambda: found.append(condition()) or found[-1], timeout):
            return found[-1]
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def notes(tmp_path) -> Path:
    folder = tmp_path / "notes"
    write(folder / "trip.md", TRIP, age=60)
    write(folder / "lists" / "groceries.txt", "oat milk\nrye bread\n\nfor the party: lemons and mint\n", age=60)
    return folder


# ------------------------------------------------------------------ chunking
def test_markdown_chunks_keep_heading_path_and_exact_line_spans(tmp_path):
    path = write(tmp_path / "trip.md", TRIP)
    chunks = chunk_file("trip.md", TRIP)
    assert [c.heading for c in chunks] == ["Trip", "Trip > Day 1", "Trip > Day 2", "Trip > Day 3"]
    for chunk in chunks:  # the text is exactly the lines its provenance points at
        assert chunk.text == lines_of(path, chunk.start_line, chunk.end_line)
    assert "# not a heading" in chunks[2].text and "echo still the same block" in chunks[2].text
    assert chunk_file("trip.md", TRIP) == chunks  # deterministic
    assert chunk_markdown(["# Only a heading"]) == []


def test_chunks_respect_the_size_cap_and_plain_text_splits_by_paragraph():
    paragraphs = [f"Paragraph {i} " + "word " * 40 for i in range(12)]
    text = "# Long\n\n" + "\n\n".join(paragraphs) + "\n\n" + "x" * 2000 + "\n"
    chunks = chunk_file("long.md", text, max_chars=400)
    assert len(chunks) > 5 and all(len(c.text) <= 400 for c in chunks)
    assert {c.heading for c in chunks} == {"Long"}
    assert "".join(c.text for c in chunks if c.text.startswith("x")) == "x" * 2000
    plain = chunk_file("a.txt", "# not markdown here\nfirst\n\nsecond\n", max_chars=30)
    assert [(c.text, c.heading, c.start_line, c.end_line) for c in plain] == [
        ("# not markdown here\nfirst", "", 1, 2), ("second", "", 4, 4)]


# ------------------------------------------------------------------ scanning
def test_new_files_become_searchable_with_provenance(kw_mem, notes):
    report = Ingestor(kw_mem).scan(notes)
    assert sorted(report.added) == sorted([str(notes / "trip.md"), str(notes / "lists" / "groceries.txt")])
    assert report.chunks_added == 5 and not report.skipped and report.files == 2
    hit = kw_mem.search("train to Porto coast")[0].item
    assert hit.memory_type == MemoryType.RAW_FILE.value and hit.source == Source.FILE.value
    assert hit.key == "Trip > Day 2" and hit.info["heading"] == "Trip > Day 2"
    ref = hit.sources[0]
    assert (ref.type, ref.doc_path) == ("file", str(notes / "trip.md"))
    assert lines_of(notes / "trip.md", ref.start_line, ref.end_line) == hit.memory
    assert lines_of(notes / "trip.md", ref.start_line, ref.start_line) == "## Day 2"
    grocery = kw_mem.search("lemons")[0].item
    assert grocery.key == "groceries" and grocery.sources[0].start_line == 1


def test_unchanged_rescan_touches_nothing(kw_mem, notes, monkeypatch):
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    before = {k: v.to_dict() for k, v in file_memories(kw_mem).items()}
    versions = kw_mem.stats()["versions"]

    def must_not_read(*args):
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(ingestor, "_ingest", must_not_read)  # size and mtime match: no read, no hash
    report = ingestor.scan(notes)
    assert report.unchanged == 2 and not report.changed and report.chunks_added == 0
    assert {k: v.to_dict() for k, v in file_memories(kw_mem).items()} == before
    assert kw_mem.stats()["versions"] == versions


def test_touched_file_with_same_content_keeps_everything(kw_mem, notes):
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    before = {k: (v.id, v.version) for k, v in file_memories(kw_mem).items()}
    os.utime(notes / "trip.md")  # new mtime, same bytes: read and hashed, nothing else
    report = ingestor.scan(notes)
    assert report.unchanged == 2 and not report.changed
    assert {k: (v.id, v.version) for k, v in file_memories(kw_mem).items()} == before


def test_editing_one_section_only_replaces_that_chunk(kw_mem, notes):
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    before = file_memories(kw_mem)
    edited = TRIP.replace("Took the train to Porto along the coast.",
                          "Took the slow train to Porto along the coast.\nIt was late.\nThen a tram.")
    write(notes / "trip.md", edited)
    report = ingestor.scan(notes)
    assert report.updated == [str(notes / "trip.md")]
    assert (report.chunks_added, report.chunks_archived, report.chunks_kept) == (1, 1, 3)
    after = file_memories(kw_mem)
    for key in ("Trip", "Trip > Day 1", "Trip > Day 3"):
        assert after[key].id == before[key].id and after[key].version == 1
    assert after["Trip > Day 2"].id != before["Trip > Day 2"].id
    assert "slow train" in after["Trip > Day 2"].memory
    assert kw_mem.get(before["Trip > Day 2"].id).status == "archived"
    # Day 3 moved down two lines: same memory, provenance follows it.
    day3 = after["Trip > Day 3"].sources[0]
    assert day3.start_line == before["Trip > Day 3"].sources[0].start_line + 2
    assert lines_of(notes / "trip.md", day3.start_line, day3.end_line) == after["Trip > Day 3"].memory


def test_renamed_file_keeps_its_memories_and_points_at_the_new_path(kw_mem, notes):
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    before = {k: v.id for k, v in file_memories(kw_mem).items()}
    (notes / "archive").mkdir()
    os.rename(notes / "trip.md", notes / "archive" / "portugal.md")
    os.rename(notes / "lists" / "groceries.txt", notes / "lists" / "shopping.txt")
    report = ingestor.scan(notes)
    assert sorted(report.renamed) == sorted([(str(notes / "trip.md"), str(notes / "archive" / "portugal.md")),
                                            (str(notes / "lists" / "groceries.txt"),
                                             str(notes / "lists" / "shopping.txt"))])
    assert not report.archived and report.chunks_added == 0 and report.chunks_archived == 0
    after = file_memories(kw_mem)
    assert sorted(v.id for v in after.values()) == sorted(before.values())
    day2 = after["Trip > Day 2"]
    assert day2.sources[0].doc_path == str(notes / "archive" / "portugal.md") == day2.info["path"]
    assert kw_mem.history(day2.id)[-1].reason.startswith("file moved from")
    assert "shopping" in after and after["shopping"].id == before["groceries"]  # the title follows a .txt's name
    assert {f.path for f in ingestor.files(notes)} == {str(notes / "archive" / "portugal.md"),
                                                       str(notes / "lists" / "shopping.txt")}


def test_deleted_file_archives_its_memories(kw_mem, notes):
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    ids = [v.id for k, v in file_memories(kw_mem).items() if k.startswith("Trip")]
    (notes / "trip.md").unlink()
    report = ingestor.scan(notes)
    assert report.archived == [str(notes / "trip.md")] and report.chunks_archived == 4
    assert {kw_mem.get(i).status for i in ids} == {"archived"}
    assert kw_mem.search("Porto") == []
    assert [f.path for f in ingestor.files(notes)] == [str(notes / "lists" / "groceries.txt")]


def test_text_captured_by_hand_survives_the_file_it_also_came_from(kw_mem, notes):
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    chunk = file_memories(kw_mem)["groceries"]
    captured = kw_mem.add(chunk.memory)
    assert captured.id == chunk.id and not captured.created  # dedup merged the provenance
    (notes / "lists" / "groceries.txt").unlink()
    ingestor.scan(notes)
    item = kw_mem.get(chunk.id)
    assert item.status == "activated" and [s.type for s in item.sources] == ["capture"]


def test_unusable_files_are_skipped_with_reasons_and_the_rest_is_ingested(kw_mem, notes):
    write(notes / "binary.md", b"PNG\x00\x01\x02 not text")
    write(notes / "empty.md", b"")
    write(notes / "huge.txt", "big words " * 400)
    write(notes / "latin1.txt", "caf\xe9".encode("latin-1"))
    write(notes / "bom.md", "\ufeff# Recipe\n\nsourdough starter feeding\n".encode("utf-8"))
    write(notes / "picture.png", b"\x89PNG\x00")  # not a note file: not looked at at all
    write(notes / ".hidden.md", "hidden note")
    write(notes / ".obsidian" / "workspace.md", "editor state")
    write(notes / "node_modules" / "pkg" / "README.md", "dependency readme")
    ingestor = Ingestor(kw_mem, max_bytes=3000)
    report = ingestor.scan(notes)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"binary.md", "empty.md", "huge.txt", "latin1.txt"}
    assert "binary" in reasons["binary.md"] and "empty" in reasons["empty.md"]
    assert "too large" in reasons["huge.txt"] and "UTF-8" in reasons["latin1.txt"]
    assert len(report.added) == 3  # trip, groceries and the UTF-8 file with a byte-order mark
    assert kw_mem.search("sourdough")[0].item.memory.startswith("# Recipe")
    assert kw_mem.search("dependency readme") == [] and kw_mem.search("editor state") == []
    recorded = {Path(f.path).name: (f.status, f.skip_reason) for f in ingestor.files(notes)}
    assert recorded["huge.txt"] == ("skipped", reasons["huge.txt"])
    # Skips are remembered: an unchanged skipped file is reported again without being read.
    again = ingestor.scan(notes)
    assert {Path(s.path).name for s in again.skipped} == set(reasons) and not again.changed
    # Fixed on disk, it is picked up.
    write(notes / "latin1.txt", "café au lait")
    assert ingestor.scan(notes).added == [str(notes / "latin1.txt")]


def test_unreadable_file_is_skipped_but_keeps_its_memories_and_is_retried(kw_mem, notes, monkeypatch):
    import memdesk.engine.ingestion.folders

    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    grocery = file_memories(kw_mem)["groceries"].id
    write(notes / "lists" / "groceries.txt", "oat milk\nrye bread\n\nfor the party: limes\n")
    target = str(notes / "lists" / "groceries.txt")

    def locked_open(path, *args, **kwargs):
        if os.fspath(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(memdesk.engine.ingestion.folders, "open", locked_open, raising=False)
    report = ingestor.scan(notes)
    assert [(s.path, s.reason) for s in report.skipped] == [(target, "cannot read: Permission denied")]
    assert kw_mem.get(grocery).status == "activated"  # a read error is not a deletion
    monkeypatch.undo()
    report = ingestor.scan(notes)
    assert report.updated == [target] and kw_mem.search("limes")


def test_symlink_loops_and_unreadable_folders_do_not_stop_a_scan(kw_mem, notes, monkeypatch):
    os.symlink(notes, notes / "lists" / "loop")
    os.symlink(notes / "trip.md", notes / "link.md")
    locked = notes / "locked"
    write(locked / "secret.md", "# Locked\n\nbehind a permission error\n")
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    assert kw_mem.search("permission error")
    os.chmod(locked, 0)
    try:
        report = ingestor.scan(notes)
        if os.geteuid() != 0:  # root reads through chmod 000
            assert any(s.path == str(locked) and "not readable" in s.reason for s in report.skipped)
    finally:
        os.chmod(locked, 0o755)
    assert any(s.path == str(notes / "link.md") and "symbolic link" in s.reason for s in report.skipped)
    assert report.unchanged == (3 if os.geteuid() == 0 else 2)  # root still reads the locked folder
    assert not report.archived  # what we cannot see now is not gone
    real_scandir = os.scandir

    def denied(path):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    write(notes / "new.md", "a note written while a folder was locked", age=60)
    report = ingestor.scan(notes)
    assert report.added == [str(notes / "new.md")] and not report.archived
    assert any(s.path == str(locked) and "not readable" in s.reason for s in report.skipped)
    assert kw_mem.get(kw_mem.search("permission error")[0].item.id).status == "activated"


def test_changes_made_while_closed_are_picked_up_on_reopen(data_dir, notes):
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        Ingestor(mem).scan(notes)
        ids = {k: v.id for k, v in file_memories(mem).items()}
    write(notes / "trip.md", TRIP.replace("at sunset", "at sunrise"))
    (notes / "lists" / "groceries.txt").unlink()
    write(notes / "ideas.md", "# Ideas\n\nA tiny greenhouse on the balcony.\n")
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        report = Ingestor(mem).scan(notes)
        assert report.updated == [str(notes / "trip.md")] and report.added == [str(notes / "ideas.md")]
        assert report.archived == [str(notes / "lists" / "groceries.txt")]
        after = file_memories(mem)
        assert "sunrise" in after["Trip > Day 3"].memory and after["Trip"].id == ids["Trip"]
        assert mem.get(ids["groceries"]).status == "archived" and mem.search("greenhouse")


KILL_SCRIPT = """
import os, sys
from memdesk.engine.vault import ingest_state
from memdesk.engine.api import Memory
from memdesk.engine.ingestion.folders import Ingestor
from tests.conftest import FAST_KDF

real, calls = ingest_state.save_chunks, []

def save_then_die(conn, path, rows):
    calls.append(path)
    if len(calls) == 3:
        os._exit(17)  # killed inside the third file's transaction: its memories are not committed
    real(conn, path, rows)

ingest_state.save_chunks = save_then_die
with Memory.open(sys.argv[1], embedder=False, kdf=FAST_KDF) as mem:
    Ingestor(mem).scan(sys.argv[2])
"""


def test_a_run_killed_midway_is_completed_by_the_next_scan(data_dir, tmp_path):
    folder = tmp_path / "many"
    for i in range(6):
        write(folder / f"note{i}.md", f"# Note {i}\n\nunique marker{i} text\n\n## Part\n\nmore about marker{i}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(data_dir), str(folder)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 17, done.stderr
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        ingestor = Ingestor(mem)
        assert len(ingestor.files(folder)) == 2  # two files committed, the third rolled back
        assert mem.stats()["memories"] == 4
        report = ingestor.scan(folder)
        assert len(report.added) == 4 and report.unchanged == 2
        assert mem.stats()["memories"] == 12  # every chunk exactly once
        for i in range(6):
            assert len(mem.search(f"marker{i}")) == 2


def test_missing_folder_is_a_clear_error(kw_mem, tmp_path):
    with pytest.raises(InvalidInputError, match="No folder"):
        Ingestor(kw_mem).scan(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="no such folder"):
        FolderWatcher(Ingestor(kw_mem), [tmp_path / "nope"]).start()


def test_added_hooks_fire_for_ingested_chunks_and_changed_hooks_for_archived_ones(kw_mem, notes):
    added, changed = [], []
    kw_mem.on_added.append(lambda items: added.extend(items))
    kw_mem.on_changed.append(lambda ids: changed.extend(ids))
    ingestor = Ingestor(kw_mem)
    ingestor.scan(notes)
    assert len(added) == 5 and {i.memory_type for i in added} == {MemoryType.RAW_FILE.value}
    (notes / "trip.md").unlink()
    ingestor.scan(notes)
    assert len(changed) == 4


def test_chunks_get_vectors_and_are_found_by_meaning(mem, notes):
    Ingestor(mem).scan(notes)
    assert mem.wait_indexed(timeout=120)
    assert mem.stats()["pending_embeddings"] == 0
    hits = mem.search("which city did we reach by rail?", k=3)
    assert any(h.item.key == "Trip > Day 2" for h in hits)


def test_cli_ingest_prints_a_report(notes, data_dir, capsys):
    write(notes / "empty.md", b"")
    assert cli_main(["ingest", str(notes), "--json", "--no-embed", "--data-dir", str(data_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["added"]) == 2 and data["chunks_added"] == 5
    assert data["skipped"] == [{"path": str(notes / "empty.md"), "reason": "empty file"}]
    assert cli_main(["ingest", str(notes), "--no-embed", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "0 new, 0 changed, 2 unchanged" in out and "empty file" in out
    assert cli_main(["ingest", str(notes / "missing"), "--data-dir", str(data_dir)]) == 2


# ------------------------------------------------------------------ the watcher
@pytest.fixture
def watched(kw_mem, notes):
    events: dict = {"reports": [], "threads": set(), "progress": [], "cv": threading.Condition()}

    def on_report(report):
        with events["cv"]:
            events["reports"].append(report)
            events["threads"].add(threading.current_thread().name)
            events["cv"].notify_all()

    def on_progress(done, total, path):
        with events["cv"]:
            events["progress"].append((done, total, path))
            events["threads"].add(threading.current_thread().name)
            events["cv"].notify_all()

    watcher = FolderWatcher(Ingestor(kw_mem), [notes], on_report=on_report, on_progress=on_progress, debounce=0.2)
    watcher.start()
    assert watcher.wait_idle(WAIT)  # the start-up scan
    yield watcher, kw_mem, notes, events
    watcher.stop()


def test_watcher_ingests_on_its_own_thread(watched):
    watcher, mem, notes, events = watched
    assert mem.search("Portugal")  # the start-up scan read what was there
    write(notes / "inbox" / "call.md", "# Call\n\nPhone the plumber about the leaking boiler.\n")
    hit = poll(events, lambda: mem.search("plumber boiler"), what="the new note")
    assert hit[0].item.sources[0].doc_path == str(notes / "inbox" / "call.md")
    assert events["threads"] == {"memdesk-ingest"}  # never the caller's thread
    assert events["progress"] and all(total >= done for done, total, _ in events["progress"])


def test_watcher_coalesces_rapid_writes_and_follows_moves_and_deletes(watched):
    watcher, mem, notes, events = watched
    added: list = []
    mem.on_added.append(lambda items: added.append([i.memory for i in items]))
    path = notes / "draft.md"
    for i in range(5):  # an editor saving several times in a row
        write(path, f"# Draft\n\nversion {i} of the kite festival plan\n")
    poll(events, lambda: mem.search("version 4 kite"), what="the last version")
    assert watcher.wait_idle(WAIT)
    assert len(added) == 1 and "version 4" in added[0][0]
    first_id = mem.search("kite festival")[0].item.id
    os.rename(path, notes / "lists" / "kites.md")
    poll(events, lambda: mem.get(first_id).sources[0].doc_path == str(notes / "lists" / "kites.md"), what="the move")
    assert mem.get(first_id).status == "activated" and len(added) == 1
    (notes / "lists" / "kites.md").unlink()
    poll(events, lambda: mem.get(first_id).status == "archived", what="the delete")


def test_watcher_pause_holds_ingestion_and_resume_catches_up(watched):
    watcher, mem, notes, events = watched
    watcher.pause()
    assert watcher.is_paused
    write(notes / "paused.md", "# Paused\n\nthe quokka photo from the island\n")
    assert watcher.wait_until_seen(notes / "paused.md", WAIT)  # the change arrived, and is held
    assert mem.search("quokka") == []
    watcher.resume()
    assert not watcher.is_paused
    poll(events, lambda: mem.search("quokka"), what="catching up after resume")
    assert watcher.wait_idle(WAIT)
