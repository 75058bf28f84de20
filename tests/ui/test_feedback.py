"""Feedback on replies in the chat window: thumbs up/down toggles and "Edit reply…", stored in the vault."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402

from memdesk.app.chat_controller import ChatController  # noqa: E402
from memdesk.engine.chat.turn import ChatConfig  # noqa: E402
from memdesk.engine.llm.fake import FakeModel  # noqa: E402
from memdesk.engine.scheduler.memscheduler import MemScheduler  # noqa: E402
from memdesk.engine.scheduler.queue import JobQueue  # noqa: E402
from memdesk.engine.vault.feedback import Feedback  # noqa: E402
from memdesk.engine.vault.sessions import Sessions  # noqa: E402
from memdesk.ui.chat_window import MainWindow  # noqa: E402
from memdesk.ui.transcript import EDITED_NOTE, EditReplyDialog  # noqa: E402

PREFERRED = "Lisbon. (It has been the capital since 1255.)"


@pytest.fixture
def chat(qtbot, window, kw_mem, runner, settle):
    """The window driven by the chat controller on a scripted model."""
    controller = ChatController(kw_mem, runner, window, MemScheduler(JobQueue(kw_mem.db)),
                                config=ChatConfig(extract=False))
    with qtbot.waitSignal(controller.modelReady, timeout=30000):
        controller.use_model(FakeModel(default_reply="The capital of Portugal is Lisbon."))
    yield controller
    controller.close()
    settle()


def send(qtbot, window: MainWindow, controller: ChatController, text: str) -> str:
    window.input.setPlainText(text)
    with qtbot.waitSignal(controller.replyFinished, timeout=30000) as done:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    return done.args[0]


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def save_edit(qtbot, window: MainWindow, bubble, text: str) -> EditReplyDialog:
    click(qtbot, bubble.feedback.edit)
    dialog = window.transcript.edit_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.editor.setPlainText(text)
    click(qtbot, dialog.save_button)
    return dialog


def test_a_finished_reply_asks_for_ratings_and_shows_what_was_stored(qtbot, window):
    window.set_model_status("ready", "Model: fake (fake)")
    window.input.setPlainText("Capital of Portugal?")
    window.send_current()
    window.append_reply_text("Madrid.")
    live = window.transcript.live
    assert live.feedback is None  # no buttons while the reply is written (it has no id yet)
    window.finish_reply([], {}, "reply-1")
    user, reply = window.transcript.bubbles()
    assert user.feedback is None and reply.feedback is not None and reply.message_id == "reply-1"
    bar = reply.feedback
    assert bar.up.toolTip() and bar.down.toolTip() and bar.edit.toolTip() and not bar.note.isVisible()

    with qtbot.waitSignal(window.rateRequested, timeout=2000) as asked:
        click(qtbot, bar.up)
    assert asked.args == ["reply-1", 1]
    assert not bar.up.isChecked()  # shown only once the app says it is stored
    window.show_feedback("reply-1", 1, None)
    assert bar.up.isChecked() and not bar.down.isChecked()
    with qtbot.waitSignal(window.rateRequested, timeout=2000) as asked:
        click(qtbot, bar.up)  # clicking the checked one again undoes it
    assert asked.args == ["reply-1", 0]

    with qtbot.waitSignal(window.editReplyRequested, timeout=2000) as edited:
        dialog = save_edit(qtbot, window, reply, "  Lisbon.  ")
    assert edited.args == ["reply-1", "Lisbon."]
    qtbot.waitUntil(lambda: window.transcript.edit_dialog is None, timeout=2000)
    assert not dialog.isVisible()
    # An empty preferred reply cannot be saved; Cancel sends nothing.
    click(qtbot, bar.edit)
    dialog = window.transcript.edit_dialog
    assert dialog.editor.toPlainText() == "Madrid."
    dialog.editor.setPlainText("   ")
    assert not dialog.save_button.isEnabled()
    with qtbot.assertNotEmitted(window.editReplyRequested):
        dialog.reject()


def test_ratings_and_edits_are_stored_and_come_back_with_the_chat(qtbot, window, chat, kw_mem, settle):
    session = send(qtbot, window, chat, "What is the capital of Portugal?")
    settle()
    reply = window.transcript.bubbles()[-1]
    stored = Sessions(kw_mem.db).messages(session)
    assert reply.message_id == stored[-1].id and stored[-1].role == "assistant"
    feedback = Feedback(kw_mem.db)

    click(qtbot, reply.feedback.up)
    qtbot.waitUntil(lambda: reply.feedback.up.isChecked(), timeout=5000)
    assert feedback.get(reply.message_id).rating == 1
    click(qtbot, reply.feedback.down)
    qtbot.waitUntil(lambda: reply.feedback.down.isChecked(), timeout=5000)
    assert not reply.feedback.up.isChecked() and feedback.get(reply.message_id).rating == -1

    save_edit(qtbot, window, reply, PREFERRED)
    qtbot.waitUntil(lambda: reply.feedback.note.isVisible(), timeout=5000)
    assert reply.feedback.note.text() == EDITED_NOTE and PREFERRED in reply.feedback.note.toolTip()
    row = feedback.get(reply.message_id)
    assert (row.rating, row.edited_text, row.session_id) == (-1, PREFERRED, session)
    assert reply.text == "The capital of Portugal is Lisbon."  # the chat keeps what the model said
    # Editing again starts from the person's version.
    click(qtbot, reply.feedback.edit)
    assert window.transcript.edit_dialog.editor.toPlainText() == PREFERRED
    window.transcript.edit_dialog.reject()

    # Opened again later, the chat shows the stored state.
    window.new_session()
    settle()
    assert window.transcript.bubbles() == []
    window.select_session(session)
    qtbot.waitUntil(lambda: len(window.transcript.bubbles()) == 2, timeout=5000)
    again = window.transcript.bubbles()[-1]
    assert again.message_id == reply.message_id and again.feedback.down.isChecked()
    assert again.feedback.note.isVisible() and window.transcript.bubbles()[0].feedback is None


def test_feedback_on_a_deleted_chat_says_why(qtbot, window, chat, kw_mem, settle):
    session = send(qtbot, window, chat, "Hello?")
    settle()
    reply = window.transcript.bubbles()[-1]
    Sessions(kw_mem.db).delete(session)  # e.g. deleted from another window meanwhile
    click(qtbot, reply.feedback.up)
    qtbot.waitUntil(lambda: "No chat message" in window.statusBar().currentMessage(), timeout=5000)
    assert not reply.feedback.up.isChecked() and Feedback(kw_mem.db).get(reply.message_id) is None
