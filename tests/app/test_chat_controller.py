"""ChatController: the main window driven by a real model (and by FakeModel for stop and errors)."""
from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from memdesk.app.chat_controller import EXERCISE_TEXT, ChatController, describe_scheduler  # noqa: E402
from memdesk.engine.chat.turn import ChatConfig  # noqa: E402
from memdesk.engine.llm.fake import FakeModel  # noqa: E402
from memdesk.engine.scheduler.memscheduler import MemScheduler  # noqa: E402
from memdesk.engine.scheduler.queue import JobQueue  # noqa: E402
from memdesk.engine.vault.sessions import Sessions  # noqa: E402
from memdesk.ui.chat_window import MainWindow  # noqa: E402


def make(qtbot, mem, runner, scheduler=None, **kwargs) -> tuple[MainWindow, ChatController]:
    window = MainWindow(mem, runner)
    qtbot.addWidget(window)
    window.show()
    controller = ChatController(mem, runner, window, scheduler or MemScheduler(JobQueue(mem.db)), **kwargs)
    return window, controller


def start(qtbot, controller: ChatController, model) -> None:
    with qtbot.waitSignal(controller.modelReady, timeout=30000):
        controller.use_model(model)


def finish(qtbot, controller: ChatController, settle) -> None:
    """Release the model's wiring and let every callback land before the window goes."""
    controller.close()
    settle()


def send(qtbot, window: MainWindow, controller: ChatController, text: str, timeout: int = 120000):
    window.input.setPlainText(text)
    with qtbot.waitSignal(controller.replyFinished, timeout=timeout) as done:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    return done.args[0]


@pytest.mark.slow
def test_a_real_turn_streams_uses_the_memory_and_becomes_a_listed_session(qtbot, mem, runner, settle,
                                                                          llama_model, monkeypatch):
    ana = mem.add("The user's sister Ana lives in Porto.").id
    mem.wait_indexed()
    llama_model.reset()
    scheduler = MemScheduler(JobQueue(mem.db))
    window, controller = make(qtbot, mem, runner, scheduler,
                              config=ChatConfig(max_reply_tokens=24, extract=False, profile="full"))
    pieces: list[str] = []
    grew: list[int] = []  # the live bubble's rendered length each time a piece arrived
    show = window.append_reply_text

    def spy(piece: str) -> None:
        pieces.append(piece)
        grew.append(len(window.transcript.live.text) if window.transcript.live else -1)
        show(piece)

    monkeypatch.setattr(window, "append_reply_text", spy)
    start(qtbot, controller, llama_model)
    assert window.model_state == "ready" and llama_model.info.name in window.status_line.model.text()

    session = send(qtbot, window, controller, "Where does my sister live?")
    settle()
    assert len(pieces) > 1, "the reply arrived in one piece, not streamed"
    assert max(grew) > 0, "the bubble did not grow while the reply streamed"
    reply = window.transcript.bubbles()[-1]
    assert reply.role == "assistant" and reply.text == "".join(pieces).strip()
    stored = Sessions(mem.db).messages(session)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[1].content == reply.text
    assert ana in [chip.memory_id for chip in reply.memory_chips()]
    assert "Ana lives in Porto" in next(c for c in reply.memory_chips() if c.memory_id == ana).full_text
    assert window.current_session_id() == session
    assert session in window.sessions.session_ids() and window.sessions.current_id() == session
    assert window.sessions.titles()[0] == "Where does my sister live?"

    # The Preparer is wired: the reply queued this chat's next prefix, and the status line says so.
    qtbot.waitUntil(lambda: "queued" in window.status_line.scheduler.text(), timeout=30000)
    assert scheduler.run_pending() >= 1
    send(qtbot, window, controller, "What is her name?")
    settle()
    assert "memory prefix restored" in window.transcript.bubbles()[-1].info.text()
    assert len(Sessions(mem.db).messages(session)) == 4  # the same chat went on
    finish(qtbot, controller, settle)
    assert scheduler.status()["pending"] == {}  # close() cancelled the builds it had queued


class SlowModel(FakeModel):
    """FakeModel that, after a few words, holds the rest until `gate` opens: Stop always has
    something to interrupt, however fast or loaded the machine (no sleeps)."""

    def __init__(self, free_words: int = 5) -> None:
        super().__init__()
        self.cut_short = threading.Event()
        self.gate = threading.Event()
        self.free_words = free_words

    def stream(self, prompt, config, stats=None):
        completed = False
        try:
            for n, piece in enumerate(super().stream(prompt, config, stats)):
                if n >= self.free_words:
                    assert self.gate.wait(60), "the test never opened the gate"
                yield piece
            completed = True
        finally:
            if not completed:
                self.cut_short.set()


def test_stop_ends_the_stream_and_the_next_message_works(qtbot, kw_mem, runner, settle):
    model = SlowModel()
    model.enqueue(" ".join(f"word{i}" for i in range(200)), "Fine, thanks.")
    window, controller = make(qtbot, kw_mem, runner)
    window.stopRequested.connect(model.gate.set)  # after the controller's own stop(): it sees the flag first
    start(qtbot, controller, model)
    window.input.setPlainText("Tell me a long story.")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "word3" in window.transcript.live_text(), timeout=10000)
    assert controller.busy and window.stop_button.isVisible()
    with qtbot.waitSignal(controller.replyFinished, timeout=10000):
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    settle()
    assert model.cut_short.is_set(), "the model's stream was not closed"
    assert controller.pieces_received < 200
    stopped = window.transcript.bubbles()[-1]
    assert stopped.text.startswith("word0 word1") and "word199" not in stopped.text
    assert "stopped" in stopped.info.text()
    assert not controller.busy and not window.busy and window.send_button.isVisible()
    session = window.current_session_id()
    assert session and session in window.sessions.session_ids()
    # The model is free again: the next message in the same chat gets its reply.
    assert send(qtbot, window, controller, "How are you?", timeout=10000) == session
    settle()
    assert window.transcript.bubbles()[-1].text == "Fine, thanks."
    assert [m.role for m in Sessions(kw_mem.db).messages(session)][-2:] == ["user", "assistant"]
    finish(qtbot, controller, settle)


def test_errors_are_shown_and_the_text_is_given_back(qtbot, kw_mem, runner, settle):
    window, controller = make(qtbot, kw_mem, runner)
    controller.send("Hello?", "")  # before any model: said plainly, nothing sent
    assert "loading" in window.transcript.bubbles()[-1].text
    start(qtbot, controller, FakeModel(n_ctx=64))
    too_long = " ".join(["word"] * 80)
    window.input.setPlainText(too_long)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not controller.busy, timeout=10000)
    settle()
    error = window.transcript.bubbles()[-1]
    assert error.role == "error" and "too long" in error.text and "Settings" in error.text
    assert window.input.toPlainText() == too_long  # nothing lost: edit it and send again
    assert window.send_button.isEnabled() and not window.busy
    controller.send("   ", "")  # InvalidInputError from the engine, with what to do
    qtbot.waitUntil(lambda: "empty" in window.transcript.bubbles()[-1].text, timeout=10000)
    finish(qtbot, controller, settle)


def test_load_model_reports_a_missing_file_with_the_fix_then_loads_another(qtbot, kw_mem, runner, settle, tmp_path):
    window, controller = make(qtbot, kw_mem, runner, model_path=tmp_path / "missing.gguf")
    with qtbot.waitSignal(controller.modelFailed, timeout=10000):
        controller.load_model()
    assert "missing.gguf" in controller.error and "Settings" in controller.error
    assert window.model_state == "error" and "missing.gguf" in window.banner_text.text()
    assert "missing.gguf" in window.status_line.model.toolTip()
    window.input.setPlainText("typed while the model is missing")
    assert not window.send_button.isEnabled()
    with qtbot.waitSignal(controller.modelReady, timeout=10000):
        controller.set_model(None, "fake")
    assert controller.ready and not controller.error and controller.model_name() == "fake"
    assert window.model_state == "ready" and not window.banner.isVisible() and window.send_button.isEnabled()
    # Two requests in a row: the later model wins, the earlier one's triggers are taken off again.
    first, second = FakeModel(), FakeModel()
    controller.use_model(first)
    controller.use_model(second)
    settle()
    assert controller.model is second and len(kw_mem.on_added) == 1 and len(kw_mem.on_changed) == 1
    finish(qtbot, controller, settle)
    assert controller.model is None and kw_mem.on_added == [] and kw_mem.on_changed == []


def test_opening_a_session_queues_its_prefix_and_the_status_line_follows(qtbot, kw_mem, runner, settle):
    old = Sessions(kw_mem.db).create("Earlier chat")
    scheduler = MemScheduler(JobQueue(kw_mem.db))
    window, controller = make(qtbot, kw_mem, runner, scheduler)
    start(qtbot, controller, FakeModel())
    settle()
    window.select_session(old.id)
    assert scheduler.status()["pending"] == {"prefix_build": 1}
    qtbot.waitUntil(lambda: "1 queued" in window.status_line.scheduler.text(), timeout=30000)
    scheduler.run_pending()
    qtbot.waitUntil(lambda: window.status_line.scheduler.text().endswith("idle"), timeout=30000)
    finish(qtbot, controller, settle)


def test_describe_scheduler():
    assert describe_scheduler({"pending": {}, "running": None, "jobs": {}}) == "idle"
    assert describe_scheduler({"pending": {"prefix_build": 1, "extract": 2}, "running": "prefix_build",
                               "jobs": {"extract": {"pending": 2, "running": 1}}}) == \
        "preparing next turn · reading new memories · 3 queued"


def test_exercise_loads_the_model_then_sends_and_checks(qtbot, kw_mem, runner, settle):
    window, controller = make(qtbot, kw_mem, runner, backend="fake")
    with pytest.raises(AssertionError, match="did not send"):
        controller.check_exercised()
    controller.exercise()  # the model is not loaded yet: it loads, then the message goes
    qtbot.waitUntil(lambda: controller.ready and not controller.busy and runner.pending == 0, timeout=20000)
    settle()
    controller.check_exercised()
    assert window.transcript.bubbles()[-2].text == EXERCISE_TEXT
    # A wrong visible result is reported.
    window.transcript.bubbles()[-1].set_text("")
    with pytest.raises(AssertionError, match="does not show the reply"):
        controller.check_exercised()
    finish(qtbot, controller, settle)


def test_a_background_failure_is_shown_with_its_details_until_dismissed(qtbot, kw_mem, runner, settle):
    scheduler = MemScheduler(JobQueue(kw_mem.db, health=kw_mem.health), health=kw_mem.health)
    window, controller = make(qtbot, kw_mem, runner, scheduler)
    window.status_line.log_file = "/data/profiles/default/logs/memdesk.log"
    kw_mem.health.failed("indexer", "indexing new memories", RuntimeError("the backend fell over"))
    line = window.status_line
    qtbot.waitUntil(lambda: line.failure.isVisible(), timeout=30000)
    assert line.failure.text() == "Background work failed: indexing new memories"
    assert "the backend fell over" in line.failure.toolTip()
    qtbot.mouseClick(line.failure, Qt.MouseButton.LeftButton)
    box = window.findChild(QMessageBox, "failureDetails")
    assert box is not None and box.isVisible()
    assert "RuntimeError: the backend fell over" in box.text() and "memdesk.log" in box.text()
    box.close()  # seen: hidden until something new fails
    qtbot.waitUntil(lambda: not line.failure.isVisible(), timeout=5000)
    controller._poll_scheduler()  # a fresh poll of the same failures keeps it hidden
    qtbot.waitUntil(lambda: not controller._polling, timeout=30000)
    assert not line.failure.isVisible()
    kw_mem.health.failed("watcher", "reading your watched folders", ValueError("unexpected"))
    qtbot.waitUntil(lambda: line.failure.isVisible(), timeout=30000)
    assert "watched folders" in line.failure.text()
    finish(qtbot, controller, settle)
