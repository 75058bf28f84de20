"""Undo/revert and conflict resolution: the engine side of the memory browser."""
from __future__ import annotations

from datetime import UTC

import pytest

from memdesk.engine.cube import Filters, Relation, Status
from memdesk.engine.curation import Resolution, conflicts, resolve, revert, undo_last
from memdesk.engine.errors import InvalidInputError, NotFoundError


def test_undo_restores_the_last_state_as_a_new_version(kw_mem):
    item = kw_mem.add("The user's dentist is Dr. Silva.", tags=["health"])
    kw_mem.update(item.id, memory="The user's dentist is Dr. Costa.", tags=["health", "people"], pinned=True)
    undone = undo_last(kw_mem, item.id)
    assert undone.memory == "The user's dentist is Dr. Silva." and undone.tags == ["health"] and not undone.pinned
    assert undone.version == 3  # nothing lost: the undone edit is in history
    assert [v.item.memory for v in kw_mem.history(item.id)][-1] == "The user's dentist is Dr. Costa."
    redone = undo_last(kw_mem, item.id)  # an undo is itself undoable
    assert redone.memory == "The user's dentist is Dr. Costa."


def test_undo_of_a_delete_brings_the_memory_back_and_errors_are_clear(kw_mem):
    item = kw_mem.add("The user parks on level 2.")
    with pytest.raises(InvalidInputError, match="nothing to undo"):
        undo_last(kw_mem, item.id)
    kw_mem.delete(item.id)
    assert kw_mem.count() == 0
    assert undo_last(kw_mem, item.id).status == Status.ACTIVATED.value
    assert kw_mem.count() == 1
    with pytest.raises(NotFoundError, match="no version 9"):
        revert(kw_mem, item.id, 9)


def test_count_follows_the_filters(kw_mem):
    kw_mem.add("a pinned note", pinned=True)
    kw_mem.add("a plain note", tags=["x"])
    assert kw_mem.count() == 2
    assert kw_mem.count(Filters(pinned=True)) == 1
    assert kw_mem.count(Filters(tags=("x",))) == 1


def conflicting_pair(mem):
    old = mem.add("The user's sister lives in Lisbon.", key="sister / location")
    new = mem.add("The user's sister lives in Porto.", key="sister / location")
    mem.link(new.id, old.id, Relation.CONFLICT)  # as MemReader does
    return old.id, new.id


@pytest.mark.parametrize("resolution", list(Resolution))
def test_each_resolution_settles_the_conflict(kw_mem, resolution):
    old, new = conflicting_pair(kw_mem)
    [pair] = conflicts(kw_mem)
    assert (pair.first.id, pair.second.id) == (old, new)  # older first
    kept = resolve(kw_mem, old, new, resolution,
                   merged_text=("The user's sister moved from Lisbon to Porto."
                                if resolution is Resolution.MERGE else None))
    assert conflicts(kw_mem) == []
    live = {m.id for m in kw_mem.list()}
    assert live == {m.id for m in kept}
    if resolution is Resolution.KEEP_BOTH:
        assert live == {old, new}
    elif resolution is Resolution.MERGE:
        assert live == {old} and "moved from Lisbon" in kw_mem.get(old).memory
        assert any(e.relation == "MERGED_TO" and e.src == new for e in kw_mem.edges(old))
    else:
        assert live == ({old} if resolution is Resolution.KEEP_FIRST else {new})
    with pytest.raises(NotFoundError, match="not in conflict"):
        resolve(kw_mem, old, new, Resolution.KEEP_BOTH)


def test_a_merge_without_text_is_refused_and_loses_nothing(kw_mem):
    old, new = conflicting_pair(kw_mem)
    with pytest.raises(InvalidInputError, match="merged text"):
        resolve(kw_mem, old, new, Resolution.MERGE, merged_text="  ")
    assert len(conflicts(kw_mem)) == 1


@pytest.mark.parametrize("order", ["updated", "created", "usage", "priority", "event_time"])
def test_keyset_pages_walk_every_memory_once_in_order(kw_mem, order):
    from datetime import datetime, timedelta

    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(57):
        kw_mem.add(f"note number {i}", pinned=i % 7 == 0, priority=i % 3,
                   event_time=start + timedelta(days=i % 5))  # many equal keys: the rowid tie-break matters
    expected = [m.id for m in kw_mem.list(order=order, limit=1000)]
    pages, after = [], None
    while True:
        page = kw_mem.list(order=order, limit=10, after=after)
        if not page:
            break
        pages += [m.id for m in page]
        after = page[-1].id
    assert pages == expected and len(set(pages)) == 57
    assert [m.id for m in kw_mem.list(order=order, limit=10, offset=20)] == expected[20:30]


def test_listing_walks_the_order_index_not_a_sort(kw_mem):
    from memdesk.engine.cube import Filters as F
    from memdesk.engine.vault import items as vault
    from memdesk.engine.vault.search_rows import sql_filters

    where, args = sql_filters(F(), None, None, listing=True)
    for order, keys in vault.LIST_ORDERS.items():
        sql = ("EXPLAIN QUERY PLAN " + vault.SELECT + " WHERE 1 " + " ".join(where) + " ORDER BY "
               + ", ".join(f"{k} DESC" for k in (*keys, "m.rowid")) + " LIMIT 200")
        with kw_mem.db.read() as conn:
            plan = " ".join(str(r[-1]) for r in conn.execute(sql, args))
        assert "TEMP B-TREE" not in plan, (order, plan)
