"""The composed desktop app for tests/app (the Qt fixtures `runner` and `settle` are in tests/conftest.py)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def desktop(qtbot, kw_mem, tmp_path):
    """DesktopApp on a keyword-only vault and the scripted FakeModel, started and ready."""
    from memdesk.app import gui, settings_store
    from memdesk.engine.llm.fake import FakeModel

    store = settings_store.SettingsStore(tmp_path / "settings-profile")
    app = gui.DesktopApp(gui.make_qt_app([]), kw_mem, kw_mem.paths, store)
    for widget in (app.window, app.browser, app.conflicts, app.timeline, app.capture):
        qtbot.addWidget(widget)
    app.start(model=FakeModel())
    qtbot.waitUntil(lambda: app.chat.ready, timeout=30000)
    yield app
    if not app.runner.closed:
        app.shutdown()
