"""The main chat window on its own (no model): input keys, streamed replies, chips, sessions."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLineEdit  # noqa: E402

from memdesk.engine.vault.sessions import Sessions  # noqa: E402
from memdesk.ui.chat_window import MainWindow  # noqa: E402
from memdesk.ui.transcript import RENDER_INTERVAL_MS, THINKING  # noqa: E402

ANA = ("m-ana", "The user's sister Ana lives in Porto and works as a nurse at the São João hospital.")


def ready(win: MainWindow) -> None:
    win.set_model_status("ready", "Model: fake (fake)")


def test_enter_sends_and_shift_enter_starts_a_new_line(qtbot, window):
    ready(window)
    qtbot.keyClicks(window.input, "first line")
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.input, "second line")
    assert window.input.toPlainText() == "first line\nsecond line"
    with qtbot.waitSignal(window.sendRequested, timeout=2000) as sent:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert sent.args == ["first line\nsecond line", ""]
    assert window.input.toPlainText() == ""
    assert window.busy and window.stop_button.isVisible() and not window.send_button.isVisible()
    # The message is shown at once, and the reply's bubble waits with a placeholder.
    bubbles = window.transcript.bubbles()
    assert [b.role for b in bubbles] == ["user", "assistant"]
    assert bubbles[0].text == "first line\nsecond line" and bubbles[1].text == THINKING


def test_no_send_while_the_model_is_not_ready_and_the_text_stays(qtbot, window):
    window.set_model_status("loading", "Model: loading…")
    qtbot.keyClicks(window.input, "hello there")
    assert not window.send_button.isEnabled()
    with qtbot.assertNotEmitted(window.sendRequested):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert window.input.toPlainText() == "hello there"
    window.set_model_status("error", "The model /x/missing.gguf does not exist. Choose a GGUF file in Settings.")
    assert window.banner.isVisible() and "missing.gguf" in window.banner_text.text()
    assert "missing.gguf" in window.status_line.model.toolTip()
    ready(window)
    assert window.send_button.isEnabled() and not window.banner.isVisible()
    window.set_ingest_status("Indexing notes 120/1000")
    assert window.status_line.ingest.isVisible() and window.ingest_status_text() == "Indexing notes 120/1000"
    window.set_ingest_status("")
    assert not window.status_line.ingest.isVisible()
    window.set_scheduler_status("preparing next turn · 2 queued")
    assert window.status_line.scheduler.text() == "Background: preparing next turn · 2 queued"
    # Whitespace alone is never sent.
    window.input.setPlainText("   \n ")
    assert not window.send_button.isEnabled()


def test_a_streamed_reply_grows_then_shows_the_memories_used(qtbot, window):
    ready(window)
    window.input.setPlainText("Where does my sister live?")
    window.send_current()
    window.begin_reply("session-1")
    assert window.current_session_id() == "session-1"  # the new chat became the reply's session
    live = window.transcript.live
    for piece in ("Your sister", " **Ana**", " lives in", " Porto."):
        window.append_reply_text(piece)
    qtbot.waitUntil(lambda: live.text == "Your sister **Ana** lives in Porto.", timeout=RENDER_INTERVAL_MS * 20)
    assert "<b>" in live.body.text() or "Ana" in live.body.text()
    with qtbot.assertNotEmitted(window.openMemoryRequested):
        window.finish_reply([ANA], {"activation": "hit", "completion_tokens": 7, "tokens_per_s": 41.5,
                                    "ttft_ms": 120.0})
    assert not window.busy and window.transcript.live is None and window.send_button.isVisible()
    chips = live.memory_chips()
    assert len(chips) == 1 and chips[0].memory_id == "m-ana"
    assert chips[0].text() != ANA[1] and chips[0].text().endswith("…")  # elided; the tooltip has it all
    assert ANA[1] in chips[0].toolTip()
    assert live.chips_caption.text() == "Used 1 memory:"
    assert "memory prefix restored" in live.info.text() and "41.5 tokens/s" in live.info.text()
    with qtbot.waitSignal(window.openMemoryRequested, timeout=2000) as opened:
        qtbot.mouseClick(chips[0], Qt.MouseButton.LeftButton)
    assert opened.args == ["m-ana"]


def test_a_failed_send_gives_the_text_back_and_says_why(qtbot, window):
    ready(window)
    window.input.setPlainText("a question")
    window.send_current()
    window.fail_reply("The message is too long for this model's 64-token context; shorten it.")
    assert window.input.toPlainText() == "a question"
    assert not window.busy and window.send_button.isEnabled()
    roles = [b.role for b in window.transcript.bubbles()]
    assert roles == ["user", "error"]  # the empty reply bubble is gone, the reason is shown
    assert "too long" in window.transcript.bubbles()[-1].text


def test_stop_button_and_shortcuts_emit_their_signals(qtbot, window):
    ready(window)
    window.input.setPlainText("tell me a long story")
    window.send_current()
    with qtbot.waitSignal(window.stopRequested, timeout=2000):
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    assert not window.stop_button.isEnabled()  # until the controller finishes the reply
    window.finish_reply([], {"stopped": True})
    assert "stopped" in window.transcript.bubbles()[-1].info.text()
    window.activateWindow()
    window.input.setFocus()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    window.input.setPlainText("Porto trip")
    window.input.selectAll()
    with qtbot.waitSignal(window.searchRequested, timeout=2000) as search:
        qtbot.keyClick(window.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert search.args == ["Porto trip"]
    with qtbot.waitSignal(window.openBrowserRequested, timeout=2000):
        qtbot.keyClick(window.input, Qt.Key.Key_M,
                       Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    for name, signal in (("conflicts", window.openConflictsRequested), ("timeline", window.openTimelineRequested),
                         ("settings", window.openSettingsRequested), ("capture", window.captureRequested)):
        with qtbot.waitSignal(signal, timeout=2000):
            window.actions_by_name[name].trigger()


def test_sessions_list_newest_first_select_rename_and_delete(qtbot, kw_mem, runner, settle, monkeypatch):
    sessions = Sessions(kw_mem.db)
    old = sessions.create("Trip to Porto")
    sessions.append(old.id, "user", "We fly to Porto on Friday.")
    sessions.append(old.id, "assistant", "Have a **great** trip!", memory_ids=("gone",),
                    stats={"completion_tokens": 5, "ttft_ms": 80.0, "total_ms": 180.0})
    new = sessions.create("Groceries")
    sessions.append(new.id, "user", "Buy milk.")
    win = MainWindow(kw_mem, runner)
    qtbot.addWidget(win)
    win.show()
    settle()
    assert win.sessions.titles() == ["Groceries", "Trip to Porto"]
    with qtbot.waitSignal(win.sessionSelected, timeout=2000) as chosen:
        win.sessions.list.setCurrentRow(1)
    assert chosen.args == [old.id]
    settle()
    bubbles = win.transcript.bubbles()
    assert [(b.role, b.text) for b in bubbles] == [("user", "We fly to Porto on Friday."),
                                                   ("assistant", "Have a **great** trip!")]
    assert bubbles[1].memory_chips() == []  # a memory that no longer exists is not offered
    assert "tokens" in bubbles[1].info.text()
    assert win.windowTitle().startswith("Trip to Porto")

    # Rename inline: F2 opens the editor on the selected chat.
    win.sessions.rename_current()
    editor = win.sessions.list.viewport().findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "Porto, May")
    with qtbot.waitSignal(win.sessions.sessionRenamed, timeout=5000) as renamed:  # the commit is queued
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    settle()
    assert renamed.args == [old.id, "Porto, May"]
    assert sessions.get(old.id).title == "Porto, May"
    assert "Porto, May" in win.sessions.titles()

    # Delete asks first; "Cancel" keeps the chat.
    monkeypatch.setattr(win.sessions, "_confirm_delete", lambda title: False)
    win.sessions.delete_current()
    settle()
    assert len(win.sessions.titles()) == 2
    monkeypatch.setattr(win.sessions, "_confirm_delete", lambda title: title == "Porto, May")
    win.select_session(old.id)
    win.sessions.delete_current()
    settle()
    assert win.sessions.titles() == ["Groceries"]
    assert [s.id for s in sessions.list()] == [new.id]
    assert win.current_session_id() == "" and win.transcript.bubbles() == []  # back to a new chat

    # New (Ctrl+N) leaves the list without selection and shows an empty conversation.
    win.select_session(new.id)
    settle()
    assert win.current_session_id() == new.id and len(win.transcript.bubbles()) == 1
    win.actions_by_name["newChat"].trigger()
    assert win.current_session_id() == "" and win.transcript.bubbles() == []
    assert win.sessions.list.currentItem() is None


def test_an_empty_vault_says_how_to_start(window):
    assert window.sessions.stack.currentWidget() is window.sessions.empty
    assert window.transcript.empty.isVisible() and window.transcript.empty.text().startswith("New chat.")
    assert window.sessions.empty.isVisible() and "No chats yet" in window.sessions.empty.text()


def test_a_reply_from_memory_says_so_instead_of_token_figures():
    from memdesk.ui.transcript import describe_reply

    assert describe_reply({"from_memory": True}) == "from your memories, without the model"
    assert describe_reply({"completion_tokens": 31, "tokens_per_s": 19.0, "ttft_ms": 457}) == \
        "31 tokens · 19.0 tokens/s · first token 457 ms"
