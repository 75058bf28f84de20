"""The quick-capture shortcut for the whole desktop, on a real X server (Xvfb) pressed with
xdotool as a person would; skipped where Xvfb or xdotool is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from memdesk.app.global_hotkey import X11Hotkey, start

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool")


@pytest.fixture
def display(monkeypatch):
    name = f":{150 + os.getpid() % 100}"
    server = subprocess.Popen(["Xvfb", name, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while subprocess.run(["xdotool", "getmouselocation"], env=dict(os.environ, DISPLAY=name),
                         capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.1)
    monkeypatch.setenv("DISPLAY", name)
    yield name
    server.terminate()
    server.wait(10)


def press(display: str, keys: str) -> None:
    subprocess.run(["xdotool", "key", keys], env=dict(os.environ, DISPLAY=display), check=True)


def test_the_shortcut_reaches_memdesk_whatever_has_the_focus(display):
    pressed = threading.Event()
    hotkey, why = start(pressed.set, "xcb")
    assert why == "" and isinstance(hotkey, X11Hotkey)
    try:
        press(display, "ctrl+shift+space")
        assert pressed.wait(5)
        pressed.clear()
        press(display, "ctrl+space")  # not the shortcut
        assert not pressed.wait(0.5)
    finally:
        hotkey.stop()


def test_keys_another_program_holds_are_reported_and_released_on_stop(display):
    first = X11Hotkey(lambda: None)
    assert first.start() == ""
    try:
        assert X11Hotkey(lambda: None).start() == "another program already uses Ctrl+Shift+Space"
    finally:
        first.stop()
    again = X11Hotkey(lambda: None)
    assert again.start() == ""  # stop() gave the keys back
    again.stop()


def test_platforms_without_global_shortcuts_say_why():
    assert start(lambda: None, "wayland")[0] is None and "Wayland" in start(lambda: None, "wayland")[1]
    assert start(lambda: None, "offscreen") == (None, "no global shortcuts on the offscreen platform")


def test_the_desktop_app_opens_quick_capture_from_the_desktop_wide_shortcut(display, qtbot, kw_mem, tmp_path,
                                                                           monkeypatch):
    """The real app on the X server: the capture box opens when the keys are pressed elsewhere."""
    from memdesk.app import gui, settings_store
    from memdesk.engine.llm.fake import FakeModel

    monkeypatch.setattr(gui.QApplication, "platformName", lambda self=None: "xcb")  # offscreen Qt, real X grab
    app = gui.DesktopApp(gui.make_qt_app([]), kw_mem, kw_mem.paths,
                         settings_store.SettingsStore(tmp_path / "settings"))
    for widget in (app.window, app.browser, app.conflicts, app.timeline, app.capture):
        qtbot.addWidget(widget)
    app.start(model=FakeModel())
    try:
        assert app.hotkey is not None
        assert not app.capture.isVisible()
        press(display, "ctrl+shift+space")
        qtbot.waitUntil(app.capture.isVisible, timeout=5000)
    finally:
        app.shutdown()
