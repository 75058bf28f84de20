"""The macOS quick-capture shortcut (Carbon's RegisterEventHotKey), checked on any system: the
layouts Carbon reads, what is asked of it (a stand-in records the calls), and that a Mac without
a usable Carbon gets a reason, not an exception."""
from __future__ import annotations

import ctypes
import sys

import pytest

from memdesk.app import global_hotkey
from memdesk.app.global_hotkey import (
    EventHotKeyID,
    EventTypeSpec,
    MacHotkey,
    four_char_code,
    start,
)


class FakeFunction:
    """A Carbon function as ctypes shows it: argtypes and restype to set, a call to record."""

    def __init__(self, carbon: FakeCarbon, name: str):
        self.carbon, self.name = carbon, name
        self.argtypes, self.restype = None, None

    def __call__(self, *args):
        self.carbon.calls.append((self.name, args))
        return getattr(self.carbon, "do_" + self.name)(*args)


class FakeCarbon:
    TARGET, HANDLER_REF, HOTKEY_REF = 0xA000, 0xB000, 0xC000

    def __init__(self, install_status: int = 0, register_status: int = 0):
        self.install_status, self.register_status = install_status, register_status
        self.calls: list[tuple[str, tuple]] = []
        for name in ("GetApplicationEventTarget", "InstallEventHandler", "RemoveEventHandler",
                     "RegisterEventHotKey", "UnregisterEventHotKey"):
            setattr(self, name, FakeFunction(self, name))

    def do_GetApplicationEventTarget(self):
        return self.TARGET

    def do_InstallEventHandler(self, target, handler, count, specs, user_data, out_ref):
        if not self.install_status:
            out_ref._obj.value = self.HANDLER_REF  # what Carbon writes through EventHandlerRef*
        return self.install_status

    def do_RegisterEventHotKey(self, code, modifiers, hotkey_id, target, options, out_ref):
        if not self.register_status:
            out_ref._obj.value = self.HOTKEY_REF
        return self.register_status

    def do_RemoveEventHandler(self, ref):
        return 0

    def do_UnregisterEventHotKey(self, ref):
        return 0

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def on_mac(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")


def serve_carbon(monkeypatch, carbon) -> None:
    """ctypes.CDLL answers the Carbon path with `carbon` (an object, or an exception to raise)."""
    real = ctypes.CDLL

    def cdll(path, *args, **kwargs):
        if path != MacHotkey.CARBON:
            return real(path, *args, **kwargs)
        if isinstance(carbon, BaseException):
            raise carbon
        return carbon

    monkeypatch.setattr(ctypes, "CDLL", cdll)


def test_four_char_codes_are_big_endian():
    assert four_char_code("keyb") == 0x6B657962
    assert four_char_code("MmDk") == int.from_bytes(b"MmDk", "big")
    with pytest.raises(ValueError):
        four_char_code("key")


def test_struct_layouts_match_carbon():
    assert ctypes.sizeof(EventTypeSpec) == 8
    assert ctypes.sizeof(EventHotKeyID) == 8
    assert [name for name, _ in EventHotKeyID._fields_] == ["signature", "id"]


def test_cocoa_on_a_mac_gets_the_carbon_hotkey(on_mac, monkeypatch):
    monkeypatch.setattr(MacHotkey, "start", lambda self: "")
    hotkey, why = start(lambda: None, "cocoa")
    assert why == "" and isinstance(hotkey, MacHotkey)


def test_a_mac_without_carbon_gets_a_reason_not_an_exception(on_mac, monkeypatch):
    serve_carbon(monkeypatch, OSError("dlopen(Carbon): image not found"))
    why = MacHotkey(lambda: None).start()
    assert "Carbon" in why and "image not found" in why
    assert start(lambda: None, "cocoa")[0] is None


def test_a_carbon_without_the_functions_gets_a_reason(on_mac, monkeypatch):
    serve_carbon(monkeypatch, object())  # no attributes at all
    assert "Carbon" in MacHotkey(lambda: None).start()


def test_nothing_of_carbon_is_loaded_elsewhere(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    serve_carbon(monkeypatch, AssertionError("Carbon loaded off macOS"))
    assert MacHotkey(lambda: None).start() != ""
    assert start(lambda: None, "cocoa") == (None, "no global shortcuts on the cocoa platform")


def test_registration_asks_carbon_for_ctrl_shift_space_and_stop_gives_it_back(on_mac, monkeypatch):
    carbon = FakeCarbon()
    serve_carbon(monkeypatch, carbon)
    presses = []
    hotkey = MacHotkey(lambda: presses.append(1))
    assert hotkey.start() == ""
    assert carbon.names() == ["GetApplicationEventTarget", "InstallEventHandler", "RegisterEventHotKey"]

    target, handler, count, specs, _user_data, _ = carbon.calls[1][1]
    assert target == FakeCarbon.TARGET and count == 1
    assert handler is hotkey._handler  # kept on the instance, so it outlives the call
    spec = specs._obj
    assert (spec.eventClass, spec.eventKind) == (0x6B657962, 5)

    code, modifiers, hotkey_id, target, options, _ = carbon.calls[2][1]
    assert (code, modifiers, target, options) == (49, 0x1200, FakeCarbon.TARGET, 0)
    assert isinstance(hotkey_id, EventHotKeyID)  # by value, as Carbon's signature has it
    assert (hotkey_id.signature, hotkey_id.id) == (four_char_code("MmDk"), 1)
    assert carbon.RegisterEventHotKey.argtypes[2] is EventHotKeyID
    assert carbon.RegisterEventHotKey.restype is ctypes.c_int32

    assert hotkey._handler(None, None, None) == 0  # noErr
    assert presses == [1]

    hotkey.stop()
    assert carbon.calls[3:] == [("UnregisterEventHotKey", (FakeCarbon.HOTKEY_REF,)),
                                ("RemoveEventHandler", (FakeCarbon.HANDLER_REF,))]
    hotkey.stop()  # twice is harmless
    assert len(carbon.calls) == 5


def test_keys_another_program_holds_are_reported_and_the_handler_removed(on_mac, monkeypatch):
    carbon = FakeCarbon(register_status=-9878)  # eventHotKeyExistsErr
    serve_carbon(monkeypatch, carbon)
    assert MacHotkey(lambda: None).start() == "another program already uses Ctrl+Shift+Space"
    assert carbon.names()[-1] == "RemoveEventHandler" and "UnregisterEventHotKey" not in carbon.names()


def test_other_refusals_say_the_error(on_mac, monkeypatch):
    serve_carbon(monkeypatch, FakeCarbon(register_status=-9879))
    assert MacHotkey(lambda: None).start() == "macOS refused the shortcut (error -9879)"
    carbon = FakeCarbon(install_status=-50)
    serve_carbon(monkeypatch, carbon)
    assert "error -50" in MacHotkey(lambda: None).start()
    assert "RegisterEventHotKey" not in carbon.names()


def test_a_failing_handler_is_logged_and_still_answers_noerr(on_mac, monkeypatch, caplog):
    serve_carbon(monkeypatch, FakeCarbon())

    def broken():
        raise RuntimeError("boom")

    hotkey = MacHotkey(broken)
    assert hotkey.start() == ""
    with caplog.at_level("ERROR", logger=global_hotkey.__name__):
        assert hotkey._handler(None, None, None) == 0
    assert "handler failed" in caplog.text
    hotkey.stop()
