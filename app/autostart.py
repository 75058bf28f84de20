"""Start MemDesk at login (Settings ▸ Scheduler), the way each OS expects it.

- Linux and the BSDs: an XDG autostart entry, $XDG_CONFIG_HOME/autostart/memdesk.desktop
  (freedesktop "Desktop Application Autostart" spec).
- macOS: a LaunchAgent, ~/Library/LaunchAgents/org.memdesk.MemDesk.plist, RunAtLoad.
- Windows: the "MemDesk" value under HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run.

There is no copy of the choice in settings.json: `is_enabled` reads the OS entry itself, so
the checkbox stays honest when the person removes the entry by hand or switches it off in the
desktop's own startup manager. Every writer takes its base folder (or registry module) as an
argument so the three flavours are testable on any OS.

The entry starts `memdesk gui` however this process was started (an AppImage, a frozen build,
the console script, or `python -m`). `memdesk gui` has no hidden/tray-only start yet, so the
window opens at login as on any other start.
"""
from __future__ import annotations

import configparser
import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from memdesk.engine.errors import MemDeskError

DESKTOP_FILE = "memdesk.desktop"
AGENT_LABEL = "org.memdesk.MemDesk"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
# Task Manager's Startup tab switches a Run entry off here without removing it.
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
RUN_VALUE = "MemDesk"
ENTRY = "Desktop Entry"

# Characters that force an Exec argument into double quotes (Desktop Entry spec, "The Exec key").
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


class AutostartError(MemDeskError):
    """The login entry could not be written, removed or read; the message says what to fix."""


@dataclass(frozen=True)
class Launch:
    """How to start MemDesk again: the argument list, and a working folder when it needs one."""

    argv: tuple[str, ...]
    cwd: str | None = None  # only for `python -m`, which imports from the folder holding the package


# ------------------------------------------------------------------ what to start
def launch_command(extra: Sequence[str] = (), *, environ: Mapping[str, str] | None = None,
                   frozen: bool | None = None, executable: str | None = None,
                   which: Callable[[str], str | None] = shutil.which) -> Launch:
    """`<how MemDesk was started> gui <extra>`; the keyword arguments exist for tests."""
    env = os.environ if environ is None else environ
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    executable = executable or sys.executable
    tail = ("gui", *extra)
    # An AppImage's own sys.executable lies in a temporary mount that is gone after it exits:
    # only $APPIMAGE names a file that is still there at the next login.
    appimage = env.get("APPIMAGE", "")
    if appimage:
        return Launch((appimage, *tail))
    if frozen:
        return Launch((executable, *tail))
    if sys.platform == "win32":
        # The console script and python.exe would open a console window at every login.
        windowed = Path(executable).with_name("pythonw.exe")
        return _module_launch(str(windowed) if windowed.is_file() else executable, tail)
    script = which("memdesk")
    if script:
        return Launch((script, *tail))
    return _module_launch(executable, tail)


def _module_launch(executable: str, tail: tuple[str, ...]) -> Launch:
    # Started from the folder that holds the memdesk package: a checkout is on no path at login.
    import memdesk

    root = Path(memdesk.__file__).resolve().parent.parent
    return Launch((executable, "-m", "memdesk", *tail), cwd=str(root))


# ------------------------------------------------------------------ this OS
def enable(launch: Launch) -> None:
    if sys.platform == "darwin":
        write_launch_agent(launch, Path.home())
    elif sys.platform == "win32":
        write_run_value(launch)
    else:
        write_desktop_entry(launch, xdg_config_home())


def disable() -> None:
    if sys.platform == "darwin":
        remove_launch_agent(Path.home())
    elif sys.platform == "win32":
        remove_run_value()
    else:
        remove_desktop_entry(xdg_config_home())


def is_enabled() -> bool:
    """Whether the OS will start MemDesk at the next login. Never raises: an entry that cannot
    be read would not start anything either."""
    if sys.platform == "darwin":
        return launch_agent_enabled(Path.home())
    if sys.platform == "win32":
        return run_value_enabled()
    return desktop_entry_enabled(xdg_config_home())


def entry_location() -> str:
    """Where the entry lives, for messages."""
    if sys.platform == "darwin":
        return str(launch_agent_path(Path.home()))
    if sys.platform == "win32":
        return f"HKEY_CURRENT_USER\\{RUN_KEY}"
    return str(desktop_entry_path(xdg_config_home()))


# ------------------------------------------------------------------ XDG (Linux, BSD)
def xdg_config_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = env.get("XDG_CONFIG_HOME", "")
    # The spec says a relative value is invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".config"


def desktop_entry_path(config_home: Path) -> Path:
    return config_home / "autostart" / DESKTOP_FILE


def desktop_exec(argv: Sequence[str]) -> str:
    """An Exec value: arguments quoted as the spec's Exec rules say, then escaped as a string value."""
    quoted = []
    for arg in argv:
        if arg == "" or any(ch in _EXEC_RESERVED for ch in arg):
            arg = '"' + "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg) + '"'
        quoted.append(arg.replace("%", "%%"))  # a bare % would start a field code (%f, %u…)
    line = " ".join(quoted)
    # The string-value level comes on top: its \\ doubles every backslash the quoting added.
    return line.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def desktop_entry(launch: Launch) -> str:
    lines = [
        f"[{ENTRY}]",
        "Type=Application",
        "Version=1.5",
        "Name=MemDesk",
        "Comment=A desktop assistant that remembers: the tray icon and quick capture",
        f"Exec={desktop_exec(launch.argv)}",
        "Icon=memdesk",
        "Terminal=false",
        "X-GNOME-Autostart-enabled=true",
        "Hidden=false",
    ]
    if launch.cwd:
        lines.append(f"Path={_string_value(launch.cwd)}")
    return "\n".join(lines) + "\n"


def write_desktop_entry(launch: Launch, config_home: Path) -> Path:
    return _write_entry(desktop_entry_path(config_home), lambda: desktop_entry(launch).encode("utf-8"), launch)


def remove_desktop_entry(config_home: Path) -> None:
    _remove(desktop_entry_path(config_home))


def desktop_entry_enabled(config_home: Path) -> bool:
    path = desktop_entry_path(config_home)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    try:
        if not parser.read(path, encoding="utf-8"):
            return False
    except (OSError, UnicodeDecodeError, configparser.Error):
        return False
    if not parser.has_section(ENTRY):
        return False
    entry = parser[ENTRY]
    # Hidden=true is the spec's "deleted"; GNOME's startup tools untick with the X-GNOME key instead.
    return (entry.get("Hidden", "false").strip() != "true"
            and entry.get("X-GNOME-Autostart-enabled", "true").strip() != "false"
            and bool(entry.get("Exec", "").strip()))


def _string_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


# ------------------------------------------------------------------ macOS
def launch_agent_path(home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"


def launch_agent(launch: Launch) -> dict[str, object]:
    agent: dict[str, object] = {
        "Label": AGENT_LABEL,
        "ProgramArguments": list(launch.argv),
        "RunAtLoad": True,
        "ProcessType": "Interactive",  # a window the person uses: no background throttling
    }
    if launch.cwd:
        agent["WorkingDirectory"] = launch.cwd
    return agent


def write_launch_agent(launch: Launch, home: Path) -> Path:
    return _write_entry(launch_agent_path(home),
                        lambda: plistlib.dumps(launch_agent(launch), fmt=plistlib.FMT_XML), launch)


def _write_entry(path: Path, render: Callable[[], bytes], launch: Launch) -> Path:
    """Write a login entry whole, in its folder made if needed; errors say what to fix."""
    data = _encoded(render, launch)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, data)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    return path


def remove_launch_agent(home: Path) -> None:
    _remove(launch_agent_path(home))


def launch_agent_enabled(home: Path) -> bool:
    try:
        with open(launch_agent_path(home), "rb") as source:
            agent = plistlib.load(source)
    except (OSError, plistlib.InvalidFileException, ValueError):
        return False
    return (isinstance(agent, dict) and agent.get("RunAtLoad") is True and not agent.get("Disabled", False)
            and bool(agent.get("ProgramArguments")))


# ------------------------------------------------------------------ Windows
def _winreg(registry: ModuleType | None) -> ModuleType:
    if registry is not None:
        return registry
    import winreg

    return winreg


def write_run_value(launch: Launch, registry: ModuleType | None = None) -> None:
    reg = _winreg(registry)
    try:
        with reg.CreateKeyEx(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
            reg.SetValueEx(key, RUN_VALUE, 0, reg.REG_SZ, subprocess.list2cmdline(launch.argv))
    except OSError as exc:
        raise AutostartError(
            f"Windows did not let MemDesk add itself to the programs that start at sign-in ({_why(exc)}). "
            "Check that your account may change its own startup programs, then tick the box again.") from exc
    # Ticking the box after Task Manager switched MemDesk off means "on": drop that override.
    try:
        with reg.OpenKey(reg.HKEY_CURRENT_USER, APPROVED_KEY, 0, reg.KEY_SET_VALUE) as key:
            reg.DeleteValue(key, RUN_VALUE)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise AutostartError(
            f"MemDesk is switched off in Task Manager's Startup tab and could not switch itself back on "
            f"({_why(exc)}). Enable MemDesk there.") from exc


def remove_run_value(registry: ModuleType | None = None) -> None:
    reg = _winreg(registry)
    try:
        with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
            reg.DeleteValue(key, RUN_VALUE)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AutostartError(
            f"Windows did not let MemDesk remove itself from the programs that start at sign-in ({_why(exc)}). "
            "Switch MemDesk off in Task Manager's Startup tab instead.") from exc


def run_value_enabled(registry: ModuleType | None = None) -> bool:
    reg = _winreg(registry)
    try:
        with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY) as key:
            command, _kind = reg.QueryValueEx(key, RUN_VALUE)
    except OSError:
        return False
    if not str(command).strip():
        return False
    try:
        with reg.OpenKey(reg.HKEY_CURRENT_USER, APPROVED_KEY) as key:
            state, _kind = reg.QueryValueEx(key, RUN_VALUE)
    except OSError:
        return True  # no Task Manager override: the Run value is in force
    # The first byte is 2 (or 6) when enabled and odd (3, 7) when switched off.
    return not (isinstance(state, bytes | bytearray) and state[:1] and state[0] & 1)


# ------------------------------------------------------------------ files
def _replace(path: Path, data: bytes) -> None:
    """Whole or not at all: a login entry cut short by a full disk would start nothing, silently."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # a login entry is no secret; readable as desktops expect
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise AutostartError(
            f"MemDesk could not remove its login entry {path} ({_why(exc)}), so it would still start at "
            f"login. Make the folder {path.parent} writable, or delete that file, then untick the box "
            "again.") from exc


def _encoded(encode: Callable[[], bytes], launch: Launch) -> bytes:
    """Entries are UTF-8 text: a path whose name is not (bytes from an old disk) cannot go in one."""
    try:
        return encode()
    except (UnicodeError, ValueError) as exc:
        raise AutostartError(
            f"MemDesk cannot be started at login from where it is now ({' '.join(map(repr, launch.argv))}): "
            "a folder name there has characters a login entry cannot hold. Move MemDesk (or its data "
            "folder) to a folder whose name has only ordinary characters, then tick the box again.") from exc


def _write_error(path: Path, exc: OSError) -> AutostartError:
    return AutostartError(
        f"MemDesk could not write its login entry {path} ({_why(exc)}), so it will not start at login. "
        f"Make sure {path.parent} is a folder you may write to (and that the disk is not full), "
        "then tick the box again.")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
