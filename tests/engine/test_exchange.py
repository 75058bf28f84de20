"""Export and import as JSON Lines: lossless, idempotent, all-or-nothing."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memdesk.engine.api import Memory
from memdesk.engine.cube import ChatMessage, MemoryType, Relation, Source
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.vault import items as vault
from tests.conftest import FAST_KDF

UTC = UTC


def open_kw(folder: Path) -> Memory:
    return Memory.open(folder, embedder=False, kdf=FAST_KDF)


def fill(mem: Memory) -> list[str]:
    """A bit of everything an export must carry."""
    ids = [mem.add("I moved to Porto in March 2021", key="home", tags=["home", "porto"],
                   memory_type=MemoryType.USER, priority=2, pinned=True, info={"from": "test", "n": [1, 2]},
                   event_time=datetime(2021, 3, 5, tzinfo=UTC)).id]
    ids.append(mem.add("Coupon expires soon", expires=datetime.now(UTC) + timedelta(days=3),
                       source=Source.FILE, scope="shopping", confidence=0.4).id)
    edited = mem.add("The gate code is 1234").id
    mem.update(edited, memory="The gate code is 5678", reason="corrected")
    mem.update(edited, tags=["codes"])
    ids.append(edited)
    archived = mem.add("Old phone number 555-0100").id
    mem.archive(archived)
    ids.append(archived)
    deleted = mem.add("Ex-colleague's birthday is in June").id
    mem.delete(deleted)
    ids.append(deleted)
    chat = mem.add_messages([
        ChatMessage("Ana", "Shall we book the cabin?", datetime(2024, 6, 1, 9, tzinfo=UTC), "m1", "s9"),
        ChatMessage("Bob", "Yes — the one by the lake, ünïcödé too", datetime(2024, 6, 1, 9, 2, tzinfo=UTC),
                    "m2", "s9"),
    ])
    ids.extend(r.id for r in chat)
    mem.link(ids[0], edited, Relation.RELATE, weight=0.5)
    return ids


def snapshot(mem: Memory) -> dict:
    with mem.db.read() as conn:
        rowids = vault.all_rowids(conn)
        items = vault.fetch_many(conn, rowids)
        out = {}
        for rowid in rowids:
            item = items[rowid]
            history = [(v.version, v.changed_at, v.reason, v.item.to_dict()) for v in vault.history(conn, rowid)]
            out[item.id] = (item.to_dict(), history)
        edges = sorted((e.src, e.dst, e.relation, e.weight, e.created_at) for e in vault.all_edges(conn))
    return {"items": out, "edges": edges}


def test_export_import_round_trip_is_lossless(kw_mem, tmp_path):
    ids = fill(kw_mem)
    out = tmp_path / "export.jsonl"
    assert kw_mem.export(out) == len(ids)
    original = snapshot(kw_mem)
    assert len(original["edges"]) == 2
    assert any(h for _, h in original["items"].values())

    with open_kw(tmp_path / "other") as fresh:
        report = fresh.import_(out)
        assert report.added == len(ids) and report.skipped == 0 and report.edges == 2
        assert sorted(report.ids) == sorted(ids)
        copy = snapshot(fresh)
    assert copy["items"].keys() == original["items"].keys()
    for memory_id, (item, history) in original["items"].items():
        assert copy["items"][memory_id][0] == item, memory_id
        assert copy["items"][memory_id][1] == history, memory_id
    assert copy["edges"] == original["edges"]
    # The edited item carries both earlier versions.
    edited = original["items"][ids[2]]
    assert [h[0] for h in edited[1]] == [1, 2] and edited[1][0][3]["memory"] == "The gate code is 1234"


def test_reimport_is_idempotent(kw_mem, tmp_path):
    ids = fill(kw_mem)
    out = tmp_path / "export.jsonl"
    kw_mem.export(out)
    before = snapshot(kw_mem)
    report = kw_mem.import_(out)
    assert (report.added, report.skipped, report.edges) == (0, len(ids), 0)
    assert snapshot(kw_mem) == before

    with open_kw(tmp_path / "other") as fresh:
        fresh.import_(out)
        again = fresh.import_(out)
        assert (again.added, again.skipped) == (0, len(ids))
        assert fresh.stats()["memories"] == len(ids)


def test_export_only_live(kw_mem, tmp_path):
    fill(kw_mem)
    out = tmp_path / "live.jsonl"
    count = kw_mem.export(out, include_inactive=False)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    statuses = {rec["item"]["status"] for rec in lines if rec.get("type") == "memory"}
    assert statuses == {"activated"} and count == sum(1 for rec in lines if rec.get("type") == "memory")
    assert lines[0]["format"] == "memdesk.memories"


@pytest.fixture
def exported(kw_mem, tmp_path):
    fill(kw_mem)
    out = tmp_path / "export.jsonl"
    kw_mem.export(out)
    lines = out.read_bytes().split(b"\n")
    assert len([ln for ln in lines if ln.strip()]) > 5
    return lines


@pytest.fixture
def target(tmp_path):
    with open_kw(tmp_path / "target") as mem:
        mem.add("already in the target vault")
        yield mem


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.mark.parametrize("bad_line", [3, 5])
def test_malformed_json_line_imports_nothing(exported, target, tmp_path, bad_line):
    lines = list(exported)
    lines[bad_line - 1] = b'{"type": "memory", "item": {"memory": "half a rec'
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidInputError) as info:
        target.import_(path)
    assert f"line {bad_line}" in str(info.value)
    assert f"line {bad_line + 1}" not in str(info.value)
    assert target.stats()["memories"] == 1


def test_invalid_utf8_line_imports_nothing(exported, target, tmp_path):
    lines = list(exported)
    lines[3] = b'{"type": "memory", "item": {"memory": "caf\xe9 \xff\xfe"}}'
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidInputError) as info:
        target.import_(path)
    assert "line 4" in str(info.value) and "UTF-8" in str(info.value)
    assert target.stats()["memories"] == 1


def test_invalid_record_imports_nothing(exported, target, tmp_path):
    lines = list(exported)
    lines[4] = json.dumps({"type": "memory", "item": {"memory": "   "}}).encode()
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidInputError, match="line 5"):
        target.import_(path)
    lines[4] = json.dumps({"type": "mystery"}).encode()
    with pytest.raises(InvalidInputError, match="line 5"):
        target.import_(_write(tmp_path / "bad.jsonl", lines))
    assert target.stats()["memories"] == 1


def test_file_without_header(exported, target, tmp_path):
    path = _write(tmp_path / "noheader.jsonl", list(exported[1:]))
    with pytest.raises(InvalidInputError, match="header"):
        target.import_(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n\n")
    with pytest.raises(InvalidInputError, match="header"):
        target.import_(empty)
    with pytest.raises(InvalidInputError):
        target.import_(tmp_path / "does-not-exist.jsonl")
    assert target.stats()["memories"] == 1


def test_newer_schema_is_refused(exported, target, tmp_path):
    lines = list(exported)
    header = json.loads(lines[0])
    header["schema_version"] = 99
    lines[0] = json.dumps(header).encode()
    with pytest.raises(InvalidInputError, match="upgrade"):
        target.import_(_write(tmp_path / "future.jsonl", lines))
    assert target.stats()["memories"] == 1


def test_failure_while_writing_rolls_back_the_whole_import(exported, target, tmp_path, monkeypatch):
    path = _write(tmp_path / "good.jsonl", list(exported))
    calls = {"n": 0}
    real = vault.insert_version

    def flaky(conn, rowid, version):
        calls["n"] += 1
        if calls["n"] == 2:
            raise InvalidInputError("simulated failure halfway through the import")
        return real(conn, rowid, version)

    monkeypatch.setattr(vault, "insert_version", flaky)
    with pytest.raises(InvalidInputError, match="halfway"):
        target.import_(path)
    assert calls["n"] == 2
    stats = target.stats()
    assert stats["memories"] == 1 and stats["versions"] == 0 and stats["edges"] == 0


def test_export_refuses_the_data_folder(kw_mem, data_dir):
    kw_mem.add("secret enough")
    for inside in (kw_mem.paths.root / "export.jsonl", data_dir / "export.jsonl",
                   data_dir / "profiles" / "export.jsonl"):
        with pytest.raises(InvalidInputError):
            kw_mem.export(inside)
        assert not inside.exists()
        assert not inside.with_name(inside.name + ".partial").exists()
