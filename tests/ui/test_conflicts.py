"""The conflicts view: pairs side by side, resolved through the engine, then reloaded."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from memdesk.engine.cube import Relation, Status  # noqa: E402
from memdesk.engine.curation import Resolution, conflicts  # noqa: E402
from memdesk.ui.conflicts import EMPTY_TEXT, ConflictsView  # noqa: E402


def _conflicting_pair(mem, old_text="Ana lives in Lisbon", new_text="Ana lives in Porto"):
    old = mem.add(old_text, key="Ana's home", pinned=True).id
    new = mem.add(new_text, key="Ana's home").id
    mem.link(new, old, Relation.CONFLICT)
    return old, new


def _view(qtbot, kw_mem, runner):
    view = ConflictsView(kw_mem, runner)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    with qtbot.waitSignal(view.loaded, timeout=10000):
        view.refresh()
    return view


def test_a_pair_is_shown_side_by_side_and_keep_first_archives_the_newer(qtbot, kw_mem, runner, settle):
    old, new = _conflicting_pair(kw_mem)
    view = _view(qtbot, kw_mem, runner)
    assert view.count == 1 and len(view.rows) == 1
    row = view.rows[0]
    assert (row.first_card.item.id, row.second_card.item.id) == (old, new)
    assert row.first_card.text.text() == "Ana lives in Lisbon"
    assert row.first_card.findChild(QLabel, "pinnedBadge") is not None  # the older one was pinned
    assert row.second_card.findChild(QLabel, "pinnedBadge") is None
    assert view.stack.currentWidget() is view.scroll

    with qtbot.waitSignal(view.openMemoryRequested, timeout=3000) as opened:
        qtbot.mouseClick(row.second_card.text, Qt.MouseButton.LeftButton)
    assert opened.args == [new]

    with qtbot.waitSignal(view.count_changed, timeout=10000) as counted, \
            qtbot.waitSignal(view.memoriesChanged, timeout=10000) as changed:
        qtbot.mouseClick(row.buttons[Resolution.KEEP_FIRST], Qt.MouseButton.LeftButton)
        assert not row.buttons[Resolution.KEEP_SECOND].isEnabled()  # busy while the write runs
    settle()
    assert counted.args == [0] and sorted(changed.args[0]) == sorted([old, new])
    assert conflicts(kw_mem) == []
    assert kw_mem.get(new).status == Status.ARCHIVED.value
    assert kw_mem.get(old).status == Status.ACTIVATED.value
    assert view.rows == [] and view.stack.currentWidget() is view.empty
    assert view.empty.text() == EMPTY_TEXT and "Kept the older" in view.message.text()


def test_keep_both_keeps_both_live_and_links_them(qtbot, kw_mem, runner, settle):
    old, new = _conflicting_pair(kw_mem)
    view = _view(qtbot, kw_mem, runner)
    with qtbot.waitSignal(view.count_changed, timeout=10000) as counted:
        view.rows[0].buttons[Resolution.KEEP_BOTH].click()
    settle()
    assert counted.args == [0] and conflicts(kw_mem) == []
    assert {kw_mem.get(i).status for i in (old, new)} == {Status.ACTIVATED.value}
    assert any(e.relation == Relation.RELATE.value for e in kw_mem.edges(old))


def test_merge_through_the_dialog_writes_the_edited_text(qtbot, kw_mem, runner, settle):
    old, new = _conflicting_pair(kw_mem)
    _conflicting_pair(kw_mem, "I drink my coffee black", "I take milk in my coffee")
    view = _view(qtbot, kw_mem, runner)
    assert view.count == 2 and len(view.rows) == 2
    row = next(r for r in view.rows if r.conflict.first.id == old)
    row.buttons[Resolution.MERGE].click()
    dialog = view.merge_dialog
    assert dialog is not None and dialog.isVisible()
    assert "Ana lives in Lisbon" in dialog.text() and "Ana lives in Porto" in dialog.text()
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    dialog.set_text("   ")
    assert not ok.isEnabled()  # an empty merge is refused before it reaches the engine
    dialog.set_text("Ana moved from Lisbon to Porto in 2024")
    with qtbot.waitSignal(view.count_changed, timeout=10000) as counted:
        ok.click()
    settle()
    assert counted.args == [1] and len(view.rows) == 1
    assert kw_mem.get(old).memory == "Ana moved from Lisbon to Porto in 2024"
    assert kw_mem.get(new).status == Status.ARCHIVED.value
    assert [c.first.memory for c in conflicts(kw_mem)] == ["I drink my coffee black"]


def test_a_failed_resolution_is_shown_and_the_list_reloads(qtbot, kw_mem, runner, settle):
    old, new = _conflicting_pair(kw_mem)
    view = _view(qtbot, kw_mem, runner)
    stale = view.rows[0].conflict
    kw_mem.update(old, memory="Ana lives in Lisbon, still")  # unrelated edit; the pair still conflicts
    from memdesk.engine.curation import resolve
    resolve(kw_mem, old, new, Resolution.KEEP_BOTH)  # resolved elsewhere (another window)
    view.resolve(stale, Resolution.KEEP_SECOND)
    settle()
    assert "not in conflict" in view.message.text() and view.message.property("error")
    assert view.count == 0 and kw_mem.get(old).status == Status.ACTIVATED.value


def test_exercise_and_check(qtbot, kw_mem, runner, settle):
    _conflicting_pair(kw_mem)
    view = ConflictsView(kw_mem, runner)
    qtbot.addWidget(view)
    view.exercise()
    settle()
    view.check_exercised()
    assert conflicts(kw_mem) != []  # the smoke path writes nothing

    empty = ConflictsView(kw_mem, runner)
    qtbot.addWidget(empty)
    empty.conflicts = []
    with pytest.raises(AssertionError):
        empty.check_exercised()  # never exercised
