"""Imports are validated field by field with the line number, and nothing is written on an error;
repeated adds merge what they say; resolving a conflict is one transaction."""
from __future__ import annotations

import json

import pytest

from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryType, Relation, Status
from memdesk.engine.curation import Resolution, conflicts, resolve
from memdesk.engine.errors import InvalidInputError
from tests.engine.test_backup import every_table
from tests.engine.test_exchange import fill


@pytest.fixture
def exported(kw_mem, tmp_path) -> list[dict]:
    fill(kw_mem)
    path = tmp_path / "export.jsonl"
    kw_mem.export(path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def first(records: list[dict], kind: str) -> int:
    return next(i for i, r in enumerate(records) if r.get("type") == kind)


def edited(records: list[dict]) -> int:
    return next(i for i, r in enumerate(records) if r.get("history"))


BIG = "x" * (50 * 1024 * 1024)


def set_item(field, value):
    return lambda records: records[first(records, "memory")]["item"].__setitem__(field, value)


BAD = {
    "null created_at": (set_item("created_at", None), "created_at"),
    "edge with null created_at": (lambda r: r[first(r, "edge")].__setitem__("created_at", None), "created_at"),
    "unknown status": (set_item("status", "gone"), "status"),
    "unknown memory_type": (set_item("memory_type", "GossipMemory"), "memory_type"),
    "long tag": (set_item("tags", ["t" * 500]), "tag"),
    "number tags": (set_item("tags", [1, 2]), "tag"),
    "long key": (set_item("key", "k" * 5000), "key"),
    "confidence as text": (set_item("confidence", "0.9"), "confidence"),
    "priority as text": (set_item("priority", "3"), "priority"),
    "huge priority": (set_item("priority", 1e23), "priority"),
    "version as text": (set_item("version", "2"), "version"),
    "pinned as text": (set_item("pinned", "yes"), "pinned"),
    "weight as text": (lambda r: r[first(r, "edge")].__setitem__("weight", "1"), "weight"),
    "unknown relation": (lambda r: r[first(r, "edge")].__setitem__("relation", "LIKES"), "relation"),
    "history entry of 100 KB": (lambda r: r[edited(r)]["history"][0]["item"].__setitem__("memory", "y" * 100_000),
                                "history[0]"),
    "history entry of 50 MB": (lambda r: r[edited(r)]["history"][0]["item"].__setitem__("memory", BIG), "MB"),
    "history with bad status": (lambda r: r[edited(r)]["history"][0]["item"].__setitem__("status", 7), "history[0]"),
    "history with null changed_at": (lambda r: r[edited(r)]["history"][0].__setitem__("changed_at", None),
                                     "changed_at"),
    "same id, other text": (lambda r: r.insert(2, {**r[first(r, "memory")], "item": {
        **r[first(r, "memory")]["item"], "memory": "something else entirely"}}), "already used on line"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_record_names_its_line_and_imports_nothing(exported, tmp_path, case):
    spoil, mentions = BAD[case]
    records = [json.loads(json.dumps(r)) for r in exported]
    spoil(records)
    bad_line = next(n for n, (a, b) in enumerate(zip(records, exported + [None]), start=1) if a != b)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with Memory.open(tmp_path / "target", embedder=False) as target:
        target.add("already here")
        before = every_table(target)
        with pytest.raises(InvalidInputError) as info:
            target.import_(path)
        assert f"line {bad_line}" in str(info.value) and mentions in str(info.value)
        assert "Nothing was imported" in str(info.value)
        assert every_table(target) == before


def test_an_id_already_in_the_vault_with_other_text_is_refused(kw_mem, exported, tmp_path):
    records = [json.loads(json.dumps(r)) for r in exported]
    index = first(records, "memory")
    records[index]["item"]["memory"] = "a different text under an existing id"
    path = tmp_path / "clash.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    before = every_table(kw_mem)
    with pytest.raises(InvalidInputError, match=f"line {index + 1}: the id .* is already in the vault"):
        kw_mem.import_(path)
    assert every_table(kw_mem) == before
    (tmp_path / "same.jsonl").write_text("\n".join(json.dumps(r) for r in exported) + "\n", encoding="utf-8")
    assert kw_mem.import_(tmp_path / "same.jsonl").added == 0  # the same file again: nothing new, no error


def test_adding_existing_text_merges_what_the_add_says(kw_mem):
    first_add = kw_mem.add("I prefer short answers", tags=["style"])
    again = kw_mem.add("I prefer short answers.", tags=["replies", "style"], memory_type=MemoryType.PREFERENCE,
                       pinned=True, priority=5, key="answer length")
    assert again.id == first_add.id and not again.created
    assert set(again.merged) == {"tags", "pinned", "priority", "key", "memory_type"} and again.kept == {}
    item = kw_mem.get(first_add.id)
    assert item.tags == ["style", "replies"] and item.pinned and item.priority == 5
    assert item.memory_type == MemoryType.PREFERENCE.value and item.key == "answer length"
    assert kw_mem.history(first_add.id)[-1].reason == "merged a repeated add"  # undoable

    third = kw_mem.add("I prefer short answers", memory_type=MemoryType.USER, key="other", priority=-2)
    assert third.merged == () and third.kept == {"memory_type": "UserMemory", "key": "other", "priority": -2}
    assert kw_mem.get(first_add.id).memory_type == MemoryType.PREFERENCE.value


def test_resolving_a_conflict_is_one_transaction(kw_mem, monkeypatch):
    old = kw_mem.add("The user's sister lives in Lisbon.", key="sister / location").id
    new = kw_mem.add("The user's sister lives in Porto.", key="sister / location").id
    kw_mem.link(new, old, Relation.CONFLICT)
    before = every_table(kw_mem)

    def broken(*args, **kwargs):
        raise OSError("the disk went away between two steps")

    monkeypatch.setattr(Memory, "supersede", broken)
    for resolution in (Resolution.KEEP_FIRST, Resolution.MERGE):
        with pytest.raises(OSError):
            resolve(kw_mem, old, new, resolution, merged_text="She moved from Lisbon to Porto.")
        assert every_table(kw_mem) == before  # the conflict, both texts and statuses, no new edge
    assert len(conflicts(kw_mem)) == 1
    with pytest.raises(InvalidInputError, match="Unknown resolution"):
        resolve(kw_mem, old, new, "keep_all")
    monkeypatch.undo()
    [kept] = resolve(kw_mem, old, new, Resolution.KEEP_SECOND)
    assert kept.id == new and kw_mem.get(old).status == Status.ARCHIVED.value
