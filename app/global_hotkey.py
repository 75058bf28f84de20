"""Quick capture from anywhere: Ctrl+Shift+Space while another application has the focus.

Qt has no global shortcuts, so each window system is asked directly, through ctypes:
- X11: XGrabKey on the root window, on a connection of our own read by a thread (Qt's own
  connection stays Qt's). Grabbed with and without Caps Lock and Num Lock, which X counts as
  modifiers. Another program holding the same keys makes the grab fail with BadAccess: then
  MemDesk says so and keeps the in-window shortcut.
- Windows: RegisterHotKey on a thread with its own message loop.
- macOS: Carbon's RegisterEventHotKey, still the way to a desktop-wide key that needs no
  Accessibility permission. Carbon hands hot keys to the main thread's event loop, which Qt's
  Cocoa loop runs, so there is no thread of ours.
- Wayland: no API a plain app may use; people bind `memdesk capture` in their desktop's
  shortcut settings (README).
`pressed` is called on the listening thread (the GUI thread on macOS); the app forwards it to
the GUI thread, which from the GUI thread itself is a direct call.
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


def four_char_code(text: str) -> int:
    """Carbon's OSType/FourCharCode: four ASCII characters read as one big-endian number."""
    code = text.encode("ascii")
    if len(code) != 4:
        raise ValueError(f"a FourCharCode has four characters, not {text!r}")
    return int.from_bytes(code, "big")


class EventTypeSpec(ctypes.Structure):
    _fields_ = [("eventClass", ctypes.c_uint32), ("eventKind", ctypes.c_uint32)]


class EventHotKeyID(ctypes.Structure):
    _fields_ = [("signature", ctypes.c_uint32), ("id", ctypes.c_uint32)]


class MacHotkey:
    """Ctrl+Shift+Space through Carbon's RegisterEventHotKey, delivered on the GUI thread."""

    CARBON = "/System/Library/Frameworks/Carbon.framework/Carbon"
    _VK_SPACE = 49  # kVK_Space: a key position, the same on every layout
    # Qt reads "Ctrl" as Command on macOS, but Carbon is given keys, not Qt's names: the physical
    # Control key is the one the text "Ctrl+Shift+Space" names to the person.
    _CONTROL_KEY, _SHIFT_KEY = 0x1000, 0x0200
    _EVENT_HOTKEY_PRESSED = 5
    _HOTKEY_EXISTS = -9878  # eventHotKeyExistsErr
    _SIGNATURE = "MmDk"  # tells MemDesk's hot keys from others' in Carbon's table

    def __init__(self, pressed: Callable[[], None]):
        self.pressed = pressed
        self._carbon = None
        self._handler = None  # the ctypes callback must outlive the registration
        self._handler_ref = ctypes.c_void_p()
        self._hotkey_ref = ctypes.c_void_p()

    def _load(self):
        carbon = ctypes.CDLL(self.CARBON)
        carbon.GetApplicationEventTarget.restype = ctypes.c_void_p
        carbon.GetApplicationEventTarget.argtypes = []
        carbon.InstallEventHandler.restype = ctypes.c_int32
        carbon.InstallEventHandler.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                               ctypes.POINTER(EventTypeSpec), ctypes.c_void_p,
                                               ctypes.POINTER(ctypes.c_void_p)]
        carbon.RemoveEventHandler.restype = ctypes.c_int32
        carbon.RemoveEventHandler.argtypes = [ctypes.c_void_p]
        carbon.RegisterEventHotKey.restype = ctypes.c_int32
        carbon.RegisterEventHotKey.argtypes = [ctypes.c_uint32, ctypes.c_uint32, EventHotKeyID, ctypes.c_void_p,
                                               ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p)]
        carbon.UnregisterEventHotKey.restype = ctypes.c_int32
        carbon.UnregisterEventHotKey.argtypes = [ctypes.c_void_p]
        return carbon

    def start(self) -> str:
        """Register the keys; "" on success, else why not (said to the person)."""
        if sys.platform != "darwin":
            return "Carbon hot keys exist only on macOS"
        try:
            carbon = self._load()
        except (OSError, AttributeError) as exc:  # no Carbon, or one without these symbols
            return f"the Carbon framework could not be used ({exc})"
        handler_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

        def on_hotkey(_call_ref, _event, _user_data) -> int:
            try:
                self.pressed()
            except Exception:  # noqa: BLE001 - an exception cannot travel back through Carbon
                log.exception("the quick-capture shortcut's handler failed")
            return 0  # noErr

        self._handler = handler_type(on_hotkey)
        self._carbon = carbon
        target = carbon.GetApplicationEventTarget()
        if not target:
            return "macOS gave no application event target"
        spec = EventTypeSpec(four_char_code("keyb"), self._EVENT_HOTKEY_PRESSED)
        status = carbon.InstallEventHandler(target, self._handler, 1, ctypes.byref(spec), None,
                                            ctypes.byref(self._handler_ref))
        if status:
            self.stop()
            return f"macOS refused the shortcut's event handler (error {status})"
        status = carbon.RegisterEventHotKey(self._VK_SPACE, self._CONTROL_KEY | self._SHIFT_KEY,
                                            EventHotKeyID(four_char_code(self._SIGNATURE), 1), target, 0,
                                            ctypes.byref(self._hotkey_ref))
        if status:
            self.stop()
            return ("another program already uses Ctrl+Shift+Space" if status == self._HOTKEY_EXISTS
                    else f"macOS refused the shortcut (error {status})")
        return ""

    def stop(self) -> None:
        if self._hotkey_ref.value:
            self._carbon.UnregisterEventHotKey(self._hotkey_ref.value)
            self._hotkey_ref = ctypes.c_void_p()
        if self._handler_ref.value:
            self._carbon.RemoveEventHandler(self._handler_ref.value)
            self._handler_ref = ctypes.c_void_p()


def start(pressed: Callable[[], None], platform_name: str) -> tuple[object | None, str]:
    """The listening hotkey and "", or None and why there is none. `platform_name` is Qt's
    (QGuiApplication.platformName()): "xcb", "wayland", "windows", "cocoa", "offscreen"..."""
    if platform_name == "xcb":
        hotkey: X11Hotkey | WindowsHotkey | MacHotkey = X11Hotkey(pressed)
    elif platform_name == "windows" and sys.platform == "win32":
        hotkey = WindowsHotkey(pressed)
    elif platform_name == "cocoa" and sys.platform == "darwin":
        hotkey = MacHotkey(pressed)
    elif platform_name.startswith("wayland"):
        return None, "Wayland lets no app take a shortcut for the whole desktop"
    else:
        return None, f"no global shortcuts on the {platform_name} platform"
    try:
        why = hotkey.start()
    except (OSError, AttributeError) as exc:  # a library without the expected symbols
        log.warning("global shortcut unavailable: %s", exc)
        return None, f"the window system's shortcut API could not be used ({exc})"
    return (None, why) if why else (hotkey, "")
