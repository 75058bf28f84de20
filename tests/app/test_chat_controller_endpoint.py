"""The desktop app with a model a local server runs: the controller's status and turns, Stop while
the server is silent, and Settings ▸ Model choosing the server (real servers on loopback)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from memdesk.app.chat_controller import ChatController, wire_endpoint_fields  # noqa: E402
from memdesk.engine.chat.turn import ChatConfig  # noqa: E402
from memdesk.engine.llm.endpoint import IN_PROCESS_ONLY, EndpointConfig  # noqa: E402
from memdesk.engine.scheduler.memscheduler import MemScheduler  # noqa: E402
from memdesk.engine.scheduler.queue import JobQueue  # noqa: E402
from memdesk.engine.vault.sessions import Sessions  # noqa: E402
from memdesk.ui.chat_window import MainWindow  # noqa: E402
from memdesk.ui.settings import AppSettings, SettingsDialog, SettingsInfo  # noqa: E402
from tests.llm_server import StallingServer, free_port  # noqa: E402

pytestmark = pytest.mark.slow
QUICK = ChatConfig(max_reply_tokens=24, extract=False)


def make(qtbot, mem, runner, endpoint: EndpointConfig, config: ChatConfig = QUICK):
    window = MainWindow(mem, runner)
    qtbot.addWidget(window)
    window.show()
    controller = ChatController(mem, runner, window, MemScheduler(JobQueue(mem.db)), config=config, n_ctx=2048,
                                endpoint=endpoint)
    return window, controller


def send(qtbot, window, controller, text: str, timeout: int = 120000) -> str:
    window.input.setPlainText(text)
    with qtbot.waitSignal(controller.replyFinished, timeout=timeout) as done:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    return done.args[0]


def test_a_turn_through_a_server_with_its_status_and_what_is_off(qtbot, mem, runner, settle, llama_server):
    window, controller = make(qtbot, mem, runner, EndpointConfig(llama_server.url))
    with qtbot.waitSignal(controller.modelReady, timeout=60000):
        controller.load_model()
    assert window.model_state == "ready" and controller.adapter is None
    status = window.status_line.model.text()
    assert status.startswith("Model: SmolLM2-135M-Instruct.Q4_1 (endpoint) at " + llama_server.url)
    assert IN_PROCESS_ONLY in status and controller.in_process_only_note == IN_PROCESS_ONLY

    session = send(qtbot, window, controller, "Name three colours.")
    settle()
    reply = window.transcript.bubbles()[-1]
    assert reply.role == "assistant" and reply.text.strip()
    stored = Sessions(mem.db).messages(session)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[1].content == reply.text
    assert "memory prefix" not in reply.info.text()  # no activation memory with a server
    controller.close()
    settle()


def test_a_server_that_is_not_running_is_the_model_status(qtbot, mem, runner, settle):
    port = free_port()
    window, controller = make(qtbot, mem, runner, EndpointConfig(f"http://127.0.0.1:{port}"))
    with qtbot.waitSignal(controller.modelFailed, timeout=30000) as failed:
        controller.load_model()
    assert failed.args[0] == (f"Nothing answers at http://127.0.0.1:{port} — is the model server running? "
                              "Start it, or choose another model in Settings.")
    assert window.model_state == "error" and "Nothing answers" in window.status_line.model.text()
    controller.close()
    settle()


def test_stop_while_the_server_is_silent_ends_the_reply_at_once(qtbot, mem, runner, settle):
    with StallingServer(("Hello", " there")) as server:
        window, controller = make(qtbot, mem, runner, EndpointConfig(server.url))
        with qtbot.waitSignal(controller.modelReady, timeout=30000):
            controller.load_model()
        window.input.setPlainText("Tell me a story.")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: "there" in window.transcript.live_text(), timeout=30000)
        assert server.silent.wait(timeout=10)
        # Without the interrupt the read would wait a minute for the next piece (Timeouts.between_pieces_s).
        with qtbot.waitSignal(controller.replyFinished, timeout=10000) as done:
            qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
        settle()
        stopped = window.transcript.bubbles()[-1]
        assert stopped.text == "Hello there" and "stopped" in stopped.info.text()
        assert Sessions(mem.db).messages(done.args[0])[-1].content == "Hello there"
        server.release.set()
        assert server.closed_by_client.wait(timeout=10), "the connection to the server was not closed"
        controller.close()
        settle()


@pytest.fixture
def dialog(qtbot, runner, tmp_path):
    info = SettingsInfo(key_storage="passphrase", data_dir=str(tmp_path / "data"), ingest_status="",
                        model_in_use="", default_model="/models/smollm2.gguf")
    made = SettingsDialog(AppSettings(), info, lambda path: None)
    qtbot.addWidget(made)
    wire_endpoint_fields(made.endpoint, runner)
    return made


def test_settings_choose_a_server_list_its_models_and_apply(qtbot, dialog, settle, llama_server):
    fields = dialog.endpoint
    assert fields.current_source() == "file" and fields.url.isHidden() and not dialog.model_path.isHidden()
    fields.source.setCurrentIndex(fields.source.findData("endpoint"))
    # The file rows give way to the server's, with the reason activation and adapters are off.
    assert dialog.model_path.isHidden() and dialog.backend.isHidden()
    assert not fields.url.isHidden() and not fields.list_button.isHidden() and not fields.note.isHidden()
    assert "KV prefixes" in fields.note.text() and "learned preferences" in fields.note.text()

    fields.url.setText(f"127.0.0.1:{free_port()}")
    qtbot.mouseClick(fields.list_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not fields.listing, timeout=30000)
    assert fields.status.text().startswith("Nothing answers at")

    fields.url.setText(llama_server.url)
    qtbot.mouseClick(fields.list_button, Qt.MouseButton.LeftButton)
    assert not fields.list_button.isEnabled()  # asked off the GUI thread; the button waits for the answer
    qtbot.waitUntil(lambda: not fields.listing, timeout=30000)
    listed = [fields.model.itemText(i) for i in range(fields.model.count())]
    assert len(listed) == 1 and listed[0].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert fields.status.text() == "The server offers 1 model." and fields.list_button.isEnabled()

    with qtbot.waitSignal(dialog.settingsChanged, timeout=5000) as changed:
        assert dialog.apply()
    new: AppSettings = changed.args[0]
    assert (new.model_source, new.endpoint_url, new.endpoint_model) == ("endpoint", llama_server.url, listed[0])
    settle()


def test_settings_refuse_a_server_off_this_computer(qtbot, dialog, settle):
    fields = dialog.endpoint
    fields.source.setCurrentIndex(fields.source.findData("endpoint"))
    fields.url.setText("http://192.168.1.20:11434")
    assert not dialog.apply()
    assert "not this computer" in fields.status.text() and not fields.status.isHidden()
    # Back to the model file: the server's rows go, and the file setting applies again.
    fields.source.setCurrentIndex(fields.source.findData("file"))
    assert fields.url.isHidden() and fields.status.isHidden() and not dialog.model_path.isHidden()
    assert dialog.apply() and dialog.values().model_source == "file"
    settle()


def test_the_desktop_app_switches_to_a_server_and_turns_adapters_off(qtbot, desktop, llama_server):
    from dataclasses import replace

    chosen = replace(desktop.settings, model_source="endpoint", endpoint_url=llama_server.url)
    with qtbot.waitSignal(desktop.chat.modelReady, timeout=60000):
        desktop.apply_settings(chosen)
    assert desktop.store.load().settings == chosen
    assert desktop.chat.model.info.backend == "endpoint" and IN_PROCESS_ONLY in desktop.window.status_line.model.text()
    dialog = desktop.settings_dialog()
    qtbot.addWidget(dialog)
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert "Learned preferences" not in tabs, "adapters offered for a model a server runs"
    assert dialog.endpoint.current_source() == "endpoint" and dialog.endpoint.url.text() == llama_server.url
    # The nightly job has nothing to train on or load into: it says so instead of training.
    with qtbot.waitSignal(desktop.adapter_bridge.finished, timeout=10000) as finished:
        desktop.train_adapter(lambda: False)
    assert finished.args[0].status == "skipped" and finished.args[0].reason == IN_PROCESS_ONLY
