"""What the desktop app leaves for later so that its window comes up sooner (bench.bundle's start).

Everything before the first window is on the clock: each module imported there is read (in an
AppImage, through FUSE and decompression) and run before the person sees anything. These
assert that the heavy parts wait for their first use.
"""
from __future__ import annotations

import json
import subprocess
import sys

# Loaded by the model thread, the first search or the first window that needs them.
LATER = ("numpy", "sqlite_vec", "llama_cpp", "tokenizers", "memdesk.engine.reader.memreader",
         "memdesk.engine.llm.endpoint", "memdesk.ui.browser", "memdesk.ui.conflicts", "memdesk.ui.timeline")


def test_the_gui_imports_nothing_heavy_before_its_window():
    code = ("import json, sys, memdesk.app.gui_launch; "
            f"print(json.dumps([m for m in {list(LATER)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_other_windows_are_built_when_first_opened(qtbot, kw_mem, tmp_path):
    from memdesk.app import gui, settings_store
    from memdesk.engine.llm.fake import FakeModel

    app = gui.DesktopApp(gui.make_qt_app([]), kw_mem, kw_mem.paths, settings_store.SettingsStore(tmp_path / "s"))
    qtbot.addWidget(app.window)
    app.start(model=FakeModel())
    try:
        assert app.views() == ()
        memory_id = kw_mem.add("My sister Ana lives in Porto.").id
        app.window.openTimelineRequested.emit()
        assert app.views() == (app.timeline,) and app.timeline.isVisible()
        assert app.timeline.windowTitle() == "Timeline — MemDesk"
        # A window built late is wired like one built at start: the timeline opens a memory in the browser.
        app.timeline.openMemoryRequested.emit(memory_id)
        assert app.browser.isVisible()
        detail = app.browser.detail
        qtbot.waitUntil(lambda: detail.item is not None and detail.item.id == memory_id, timeout=10000)
        assert set(app.views()) == {app.timeline, app.browser}
    finally:
        for widget in app.views():
            qtbot.addWidget(widget)
        app.shutdown()


def test_the_vault_finds_sqlite_vec_without_importing_it(tmp_path):
    code = ("import json, sys; from memdesk.engine.api import Memory; "
            f"m = Memory.open({str(tmp_path)!r}, passphrase=lambda confirm: 'x', embedder=False); m.add('A note.'); "
            "print(json.dumps([m.count(), 'sqlite_vec' in sys.modules, 'numpy' in sys.modules])); m.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, False, False]


def test_the_model_loads_once_the_window_is_on_screen(qtbot):
    from PySide6.QtWidgets import QWidget

    from memdesk.app.gui import after_exposed

    window = QWidget()
    qtbot.addWidget(window)
    calls: list[bool] = []
    window.show()
    after_exposed(window, lambda: calls.append(window.windowHandle().isExposed()), at_most_ms=60000)
    assert calls == []  # not before the event loop has shown the window
    qtbot.waitUntil(lambda: calls == [True], timeout=10000)
    qtbot.wait(50)
    assert calls == [True]  # once


def test_a_window_never_exposed_still_gets_its_model(qtbot):
    from PySide6.QtWidgets import QWidget

    from memdesk.app.gui import after_exposed

    window = QWidget()  # never shown
    qtbot.addWidget(window)
    window.winId()  # a native window, which no one will expose
    calls: list[int] = []
    after_exposed(window, lambda: calls.append(1), at_most_ms=100)
    qtbot.waitUntil(lambda: calls == [1], timeout=5000)
