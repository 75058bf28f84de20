"""Quick capture from anywhere: Ctrl+Shift+Space while another application has the focus.

Qt has no global shortcuts, so each window system is asked directly, through ctypes:
- X11: XGrabKey on the root window, on a connection of our own read by a thread (Qt's own
  connection stays Qt's). Grabbed with and without Caps Lock and Num Lock, which X counts as
  modifiers. Another program holding the same keys makes the grab fail with BadAccess: then
  MemDesk says so and keeps the in-window shortcut.
- Windows: RegisterHotKey on a thread with its own message loop.
- Wayland and macOS: no API a plain app may use; people bind `memdesk capture` in their
  desktop's shortcut settings (README).
`pressed` is called on the listening thread; the app forwards it to the GUI thread.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

KEYS_TEXT = "Ctrl+Shift+Space"


class X11Hotkey:
    """Ctrl+Shift+Space grabbed on the X server named by $DISPLAY."""

    _SHIFT, _LOCK, _CONTROL, _MOD2 = 1, 2, 4, 16  # Mod2 is Num Lock on every common layout
    _KEY_PRESS = 2
    _BAD_ACCESS = 10

    def __init__(self, pressed: Callable[[], None]):
        self.pressed = pressed
        self._x = None
        self._display = None
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None
        self._errors: list[int] = []
        self._handler = None  # the ctypes callback must outlive the grab

    def start(self) -> str:
        """Grab the keys; "" on success, else why not (said to the person)."""
        path = ctypes.util.find_library("X11")
        if not path or not os.environ.get("DISPLAY"):
            return "no X11 display"
        x = ctypes.CDLL(path)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XStringToKeysym.restype = ctypes.c_ulong
        x.XStringToKeysym.argtypes = [ctypes.c_char_p]
        x.XKeysymToKeycode.restype = ctypes.c_ubyte
        x.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x.XGrabKey.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int]
        x.XUngrabKey.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_ulong]
        x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x.XPending.argtypes = [ctypes.c_void_p]
        x.XNextEvent.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        x.XConnectionNumber.argtypes = [ctypes.c_void_p]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handler_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

        def on_error(_display, event) -> int:  # XErrorEvent: type, display, resourceid, serial, error_code
            self._errors.append(ctypes.cast(event, ctypes.POINTER(ctypes.c_ubyte))[8 + 8 + 8 + 8])
            return 0

        self._handler = handler_type(on_error)
        display = x.XOpenDisplay(None)
        if not display:
            return "the X display could not be opened"
        previous = x.XSetErrorHandler(self._handler)
        self._x, self._display = x, display
        self._root = x.XDefaultRootWindow(display)
        self._keycode = x.XKeysymToKeycode(display, x.XStringToKeysym(b"space"))
        for mods in self._modifier_sets():
            x.XGrabKey(display, self._keycode, mods, self._root, 1, 1, 1)  # owner_events, async pointer and keyboard
        x.XSync(display, 0)
        x.XSetErrorHandler(previous)
        if self._errors:
            taken = self._BAD_ACCESS in self._errors
            self.stop()
            return ("another program already uses Ctrl+Shift+Space" if taken
                    else f"the X server refused the shortcut (error {self._errors[0]})")
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._listen, name="memdesk-hotkey-x11", daemon=True)
        self._thread.start()
        return ""

    def _modifier_sets(self) -> list[int]:
        base = self._CONTROL | self._SHIFT
        return [base, base | self._LOCK, base | self._MOD2, base | self._LOCK | self._MOD2]

    def _listen(self) -> None:
        x, display = self._x, self._display
        fd = x.XConnectionNumber(display)
        event = ctypes.create_string_buffer(192)  # sizeof(XEvent): 24 longs
        while True:
            while x.XPending(display):
                x.XNextEvent(display, event)
                if ctypes.cast(event, ctypes.POINTER(ctypes.c_int))[0] == self._KEY_PRESS:
                    try:
                        self.pressed()
                    except Exception:  # noqa: BLE001 - a failing handler must not end the listener
                        log.exception("the quick-capture shortcut's handler failed")
            ready, _, _ = select.select([fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return

    def stop(self) -> None:
        if self._stop_w >= 0:
            os.write(self._stop_w, b"x")
            if self._thread is not None:
                self._thread.join(5)
            os.close(self._stop_w)
            os.close(self._stop_r)
            self._stop_r = self._stop_w = -1
        if self._display:
            for mods in self._modifier_sets():
                self._x.XUngrabKey(self._display, self._keycode, mods, self._root)
            self._x.XCloseDisplay(self._display)
            self._display = None


class WindowsHotkey:
    """Ctrl+Shift+Space through RegisterHotKey, on a thread with its own message queue."""

    _MOD_CONTROL, _MOD_SHIFT, _MOD_NOREPEAT = 0x2, 0x4, 0x4000
    _VK_SPACE, _WM_HOTKEY, _WM_QUIT = 0x20, 0x0312, 0x0012

    def __init__(self, pressed: Callable[[], None]):
        self.pressed = pressed
        self._thread: threading.Thread | None = None
        self._thread_id = 0

    def start(self) -> str:
        from ctypes import wintypes

        user32, kernel32 = ctypes.windll.user32, ctypes.windll.kernel32  # type: ignore[attr-defined]
        ready, outcome = threading.Event(), []

        def loop() -> None:
            self._thread_id = kernel32.GetCurrentThreadId()
            if not user32.RegisterHotKey(None, 1, self._MOD_CONTROL | self._MOD_SHIFT | self._MOD_NOREPEAT,
                                         self._VK_SPACE):
                outcome.append("another program already uses Ctrl+Shift+Space")
                ready.set()
                return
            outcome.append("")
            ready.set()
            message = wintypes.MSG()
            while user32.GetMessageW(ctypes.byref(message), None, 0, 0) > 0:
                if message.message == self._WM_HOTKEY:
                    try:
                        self.pressed()
                    except Exception:  # noqa: BLE001
                        log.exception("the quick-capture shortcut's handler failed")
            user32.UnregisterHotKey(None, 1)

        self._thread = threading.Thread(target=loop, name="memdesk-hotkey-win", daemon=True)
        self._thread.start()
        ready.wait(5)
        return outcome[0] if outcome else "the shortcut could not be registered in time"

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            ctypes.windll.user32.PostThreadMessageW(self._thread_id, self._WM_QUIT, 0, 0)  # type: ignore[attr-defined]
            self._thread.join(5)


def start(pressed: Callable[[], None], platform_name: str) -> tuple[object | None, str]:
    """The listening hotkey and "", or None and why there is none. `platform_name` is Qt's
    (QGuiApplication.platformName()): "xcb", "wayland", "windows", "cocoa", "offscreen"..."""
    if platform_name == "xcb":
        hotkey: X11Hotkey | WindowsHotkey = X11Hotkey(pressed)
    elif platform_name == "windows" and sys.platform == "win32":
        hotkey = WindowsHotkey(pressed)
    elif platform_name.startswith("wayland"):
        return None, "Wayland lets no app take a shortcut for the whole desktop"
    elif platform_name == "cocoa":
        return None, "macOS global shortcuts are not supported yet"
    else:
        return None, f"no global shortcuts on the {platform_name} platform"
    try:
        why = hotkey.start()
    except (OSError, AttributeError) as exc:  # a library without the expected symbols
        log.warning("global shortcut unavailable: %s", exc)
        return None, f"the window system's shortcut API could not be used ({exc})"
    return (None, why) if why else (hotkey, "")
