"""What bench.bundle reads from a running app (app/startup_probe.py), the `--version` flag, and
the start-up splash."""
from __future__ import annotations

import json

from memdesk.app import startup_probe


def test_the_probe_marks_the_window_the_model_idle_and_one_reply(qtbot, kw_mem, tmp_path, monkeypatch):
    from memdesk.app import gui, settings_store
    from memdesk.engine.llm.fake import FakeModel

    probe = tmp_path / "probe.jsonl"
    monkeypatch.setenv(startup_probe.PROBE_ENV, str(probe))
    monkeypatch.setenv(startup_probe.CHAT_ENV, "What should I cook tonight?")
    monkeypatch.setattr(startup_probe, "IDLE_S", 0.05)
    monkeypatch.setattr(startup_probe, "SEND_AFTER_IDLE_S", 0.05)
    app = gui.DesktopApp(gui.make_qt_app([]), kw_mem, kw_mem.paths, settings_store.SettingsStore(tmp_path / "s"))
    for widget in (app.window, app.browser, app.conflicts, app.timeline, app.capture):
        qtbot.addWidget(widget)
    startup_probe.install(app)
    app.start(model=FakeModel())
    try:
        def events() -> list[str]:
            return [json.loads(line)["event"] for line in probe.read_text().splitlines()] if probe.exists() else []
        qtbot.waitUntil(lambda: "reply" in events(), timeout=30000)
        assert events()[:3] == ["window", "model", "idle"]
    finally:
        app.shutdown()


def test_without_the_variable_the_probe_does_nothing(qtbot, desktop, tmp_path, monkeypatch):
    monkeypatch.delenv(startup_probe.PROBE_ENV, raising=False)
    startup_probe.install(desktop)
    qtbot.wait(50)
    assert list(tmp_path.glob("*.jsonl")) == []


def test_version_flag(capsys):
    from importlib import metadata

    from memdesk.app.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"memdesk {metadata.version('memdesk')}"


def test_the_splash_shows_its_message(qtbot):
    from PySide6.QtGui import QPixmap

    from memdesk.app.gui import make_qt_app
    from memdesk.ui.splash import Splash

    make_qt_app([])
    splash = Splash(QPixmap(64, 64))
    qtbot.addWidget(splash)
    splash.show()
    splash.showMessage("Opening your memories…")
    assert splash.isVisible() and splash.message.text() == "Opening your memories…"
    screen = splash.screen().availableGeometry()
    assert abs(splash.frameGeometry().center().x() - screen.center().x()) <= 2  # centred, like QSplashScreen
