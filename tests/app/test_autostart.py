"""Start MemDesk at login: the XDG entry, the macOS LaunchAgent, the Windows Run value, and the
Settings checkbox that writes the real entry (in a temporary XDG_CONFIG_HOME)."""
from __future__ import annotations

import configparser
import plistlib
import sys
from pathlib import Path
from typing import Self

import pytest

from memdesk.app import autostart
from memdesk.app.autostart import AutostartError, Launch
from memdesk.app.gui_autostart import LoginStart, login_args
from memdesk.engine.errors import MemDeskError
from memdesk.ui.settings import AppSettings, SettingsDialog, SettingsInfo

xdg_only = pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the XDG entry is this OS's only on "
                                                                          "Linux and the BSDs")


@pytest.fixture
def config_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # desktop entry keys are case-sensitive
    assert parser.read(path, encoding="utf-8") == [str(path)]
    return parser["Desktop Entry"]


def exec_argv(value: str) -> list[str]:
    """An Exec value back to arguments, the way the Desktop Entry spec reads it: string escapes
    first, then the Exec quoting (inside double quotes a backslash escapes " ` $ and itself),
    then %% -> %. Written out rather than shlex, whose double quotes know no \\$ or \\`."""
    text, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            text.append({"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[value[i + 1]])
            i += 2
        else:
            text.append(value[i])
            i += 1
    line, args, current, quoted, i = "".join(text), [], None, False, 0
    while i < len(line):
        char = line[i]
        if quoted and char == "\\":
            assert line[i + 1] in '"`$\\', f"a stray backslash in {line!r}"
            current += line[i + 1]
            i += 1
        elif char == '"':
            quoted, current = not quoted, current or ""
        elif char == " " and not quoted:
            if current is not None:
                args.append(current)
            current = None
        else:
            assert quoted or char not in "\t\n\"'\\><~|&;$*?#()`", f"{char!r} unquoted in {line!r}"
            current = (current or "") + char
        i += 1
    assert not quoted, f"an unclosed quote in {line!r}"
    if current is not None:
        args.append(current)
    return [arg.replace("%%", "%") for arg in args]


# ------------------------------------------------------------------ what the entry starts
def test_an_appimage_starts_itself_even_when_frozen():
    image = "/home/ana/Apps/Mem Desk.AppImage"
    launch = autostart.launch_command(environ={"APPIMAGE": image}, frozen=True, executable="/tmp/.mount_x/memdesk",
                                      which=lambda name: "/usr/bin/memdesk")
    assert launch == Launch((image, "gui"))


def test_a_frozen_build_starts_its_executable():
    launch = autostart.launch_command(environ={}, frozen=True, executable="/opt/MemDesk/memdesk",
                                      which=lambda name: "/usr/bin/memdesk")
    assert launch == Launch(("/opt/MemDesk/memdesk", "gui"))


@xdg_only
def test_a_plain_install_starts_the_console_script_or_the_module():
    assert autostart.launch_command(("--profile", "work"), environ={}, frozen=False,
                                    which=lambda name: "/usr/local/bin/memdesk" if name == "memdesk" else None) \
        == Launch(("/usr/local/bin/memdesk", "gui", "--profile", "work"))
    fallback = autostart.launch_command(environ={}, frozen=False, executable="/usr/bin/python3",
                                        which=lambda name: None)
    assert fallback.argv == ("/usr/bin/python3", "-m", "memdesk", "gui")
    # `-m memdesk` imports from the folder that holds the package, wherever login starts it.
    assert fallback.cwd is not None and (Path(fallback.cwd) / "memdesk" / "__init__.py").is_file()


def test_login_args_repeat_only_what_this_run_was_given(tmp_path):
    assert login_args("default") == ()
    assert login_args("work", str(tmp_path / "memdesk")) == ("--data-dir", str(tmp_path / "memdesk"),
                                                             "--profile", "work")


# ------------------------------------------------------------------ Linux / BSD
def test_the_desktop_entry_parses_and_keeps_awkward_paths_whole(tmp_path):
    odd = '/home/ana/My Apps/mem"desk $HOME `x` \\ 100%.AppImage'
    path = autostart.write_desktop_entry(Launch((odd, "gui", "--data-dir", "/srv/mem desk")), tmp_path)
    assert path == tmp_path / "autostart" / "memdesk.desktop"
    entry = read_entry(path)
    assert entry["Type"] == "Application" and entry["Name"] == "MemDesk" and entry["Icon"] == "memdesk"
    assert entry["X-GNOME-Autostart-enabled"] == "true" and entry["Hidden"] == "false"
    assert entry["Terminal"] == "false" and "Path" not in entry
    assert exec_argv(entry["Exec"]) == [odd, "gui", "--data-dir", "/srv/mem desk"]
    # A plain path stays unquoted: what a person editing the file by hand expects to see.
    assert autostart.desktop_exec(["/usr/bin/memdesk", "gui"]) == "/usr/bin/memdesk gui"


def test_the_module_fallback_names_its_working_folder(tmp_path):
    launch = Launch(("/usr/bin/python3", "-m", "memdesk", "gui"), cwd="/src/mem")
    entry = read_entry(autostart.write_desktop_entry(launch, tmp_path))
    assert exec_argv(entry["Exec"]) == ["/usr/bin/python3", "-m", "memdesk", "gui"] and entry["Path"] == "/src/mem"


@xdg_only
def test_enable_writes_and_disable_removes_the_entry(config_home):
    entry_file = config_home / "autostart" / "memdesk.desktop"
    assert not autostart.is_enabled()
    autostart.enable(Launch(("/usr/bin/memdesk", "gui")))
    assert entry_file.is_file() and autostart.is_enabled()
    assert exec_argv(read_entry(entry_file)["Exec"]) == ["/usr/bin/memdesk", "gui"]
    assert autostart.entry_location() == str(entry_file)
    autostart.disable()
    assert not entry_file.exists() and not autostart.is_enabled()
    autostart.disable()  # already off: nothing to do, no error


@xdg_only
def test_is_enabled_follows_the_entry_as_the_person_left_it(config_home):
    entry_file = config_home / "autostart" / "memdesk.desktop"
    autostart.enable(Launch(("/usr/bin/memdesk", "gui")))
    entry_file.unlink()  # removed by hand
    assert not autostart.is_enabled()
    # How desktops' startup managers switch an entry off without removing it.
    for on, off in (("Hidden=false", "Hidden=true"),
                    ("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false")):
        autostart.enable(Launch(("/usr/bin/memdesk", "gui")))
        entry_file.write_text(entry_file.read_text(encoding="utf-8").replace(on, off), encoding="utf-8")
        assert not autostart.is_enabled(), off
    entry_file.write_text("not a desktop entry\n", encoding="utf-8")
    assert not autostart.is_enabled()


def test_a_relative_xdg_config_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert autostart.xdg_config_home({"XDG_CONFIG_HOME": "relative/config"}) == tmp_path / ".config"
    assert autostart.xdg_config_home({}) == tmp_path / ".config"
    assert autostart.xdg_config_home({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg")


def test_an_unwritable_autostart_folder_says_what_to_fix(tmp_path):
    (tmp_path / "autostart").write_text("a file where the folder should be")  # fails for root too
    with pytest.raises(AutostartError) as caught:
        autostart.write_desktop_entry(Launch(("/usr/bin/memdesk", "gui")), tmp_path)
    assert isinstance(caught.value, MemDeskError)
    message = str(caught.value)
    assert str(tmp_path / "autostart") in message and "tick the box again" in message
    assert "`memdesk" not in message
    assert [p.name for p in tmp_path.iterdir()] == ["autostart"]  # no temporary file left behind


def test_a_path_no_entry_can_hold_is_refused_before_anything_is_written(tmp_path):
    launch = Launch(("/media/old\udcffdisk/memdesk", "gui"))  # undecodable bytes from an old file system
    for write in (autostart.write_desktop_entry, autostart.write_launch_agent):
        with pytest.raises(AutostartError, match="ordinary characters"):
            write(launch, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ macOS
def test_the_launch_agent_runs_at_load(tmp_path):
    launch = Launch(("/Applications/MemDesk.app/Contents/MacOS/MemDesk", "gui"))
    path = autostart.write_launch_agent(launch, tmp_path)
    assert path == tmp_path / "Library" / "LaunchAgents" / "org.memdesk.MemDesk.plist"
    with open(path, "rb") as source:
        agent = plistlib.load(source)
    assert agent["Label"] == "org.memdesk.MemDesk" and agent["RunAtLoad"] is True
    assert agent["ProgramArguments"] == list(launch.argv) and "WorkingDirectory" not in agent
    assert autostart.launch_agent_enabled(tmp_path)
    path.write_bytes(plistlib.dumps({**agent, "Disabled": True}))
    assert not autostart.launch_agent_enabled(tmp_path)
    autostart.remove_launch_agent(tmp_path)
    assert not path.exists() and not autostart.launch_agent_enabled(tmp_path)


# ------------------------------------------------------------------ Windows (a stand-in for winreg)
class FakeKey:
    def __init__(self, values: dict[str, object]):
        self.values = values

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeWinreg:
    HKEY_CURRENT_USER, KEY_SET_VALUE, REG_SZ = "HKCU", 2, 1

    def __init__(self):
        self.keys: dict[str, dict[str, object]] = {}

    def CreateKeyEx(self, root, name, reserved=0, access=0):
        return FakeKey(self.keys.setdefault(name, {}))

    def OpenKey(self, root, name, reserved=0, access=0):
        if name not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return FakeKey(self.keys[name])

    def SetValueEx(self, key, name, reserved, kind, value):
        key.values[name] = value

    def QueryValueEx(self, key, name):
        if name not in key.values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return key.values[name], self.REG_SZ

    def DeleteValue(self, key, name):
        if name not in key.values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        del key.values[name]


def test_the_run_value_quotes_its_command_and_task_manager_can_switch_it_off():
    reg = FakeWinreg()
    launch = Launch((r"C:\Program Files\MemDesk\MemDesk.exe", "gui"))
    autostart.write_run_value(launch, reg)
    assert reg.keys[autostart.RUN_KEY]["MemDesk"] == r'"C:\Program Files\MemDesk\MemDesk.exe" gui'
    assert autostart.run_value_enabled(reg)
    reg.keys[autostart.APPROVED_KEY] = {"MemDesk": bytes([3]) + bytes(11)}  # disabled in Task Manager
    assert not autostart.run_value_enabled(reg)
    autostart.write_run_value(launch, reg)  # ticking the box again means on
    assert autostart.run_value_enabled(reg)
    autostart.remove_run_value(reg)
    autostart.remove_run_value(reg)
    assert not autostart.run_value_enabled(reg)


# ------------------------------------------------------------------ the Settings checkbox
@pytest.fixture
def dialog(qtbot, tmp_path):
    info = SettingsInfo(key_storage="passphrase", data_dir=str(tmp_path / "data"), ingest_status="",
                        model_in_use="", default_model="")
    dialog = SettingsDialog(AppSettings(), info, lambda path: None)
    qtbot.addWidget(dialog)
    return dialog


@xdg_only
def test_the_checkbox_writes_and_removes_the_real_entry(dialog, qtbot, config_home):
    entry_file = config_home / "autostart" / "memdesk.desktop"
    LoginStart(login_args("work")).wire(dialog.login_start)
    box = dialog.login_start.checkbox
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.scheduler_page)
    qtbot.waitExposed(dialog)
    assert box.isVisible() and box.text() == "Start MemDesk at login" and not box.isChecked()  # off by default
    assert dialog.scheduler_page.isAncestorOf(dialog.findChild(type(box), "startAtLogin"))

    box.click()  # applies at once: no OK or Apply
    assert box.isChecked() and entry_file.is_file()
    argv = exec_argv(read_entry(entry_file)["Exec"])
    assert argv[-3:] == ["gui", "--profile", "work"]
    assert not dialog.login_start.error.isVisible()
    assert dialog.values() == AppSettings()  # nothing for OK/Apply to save

    entry_file.unlink()  # removed by hand while the dialog is open: showing the page again reads it
    dialog.tabs.setCurrentIndex(0)
    dialog.tabs.setCurrentWidget(dialog.scheduler_page)
    assert not box.isChecked()

    box.click()
    box.click()
    assert not box.isChecked() and not entry_file.exists()


@xdg_only
def test_a_failure_shows_why_and_leaves_the_box_unticked(dialog, qtbot, config_home):
    config_home.mkdir()
    (config_home / "autostart").write_text("a file where the folder should be")
    LoginStart().wire(dialog.login_start)
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.scheduler_page)
    qtbot.waitExposed(dialog)
    dialog.login_start.checkbox.click()
    error = dialog.login_start.error
    assert not dialog.login_start.checkbox.isChecked()
    assert error.isVisible() and "will not start at login" in error.text() and "tick the box again" in error.text()
    assert "`" not in error.text() and "terminal" not in error.text()  # no command to run
    dialog.tabs.setCurrentIndex(0)
    dialog.tabs.setCurrentWidget(dialog.scheduler_page)
    assert error.isVisible()  # a re-read keeps the reason on screen

