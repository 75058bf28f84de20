"""Before Qt starts on X11: the system libraries its xcb plugin needs, named with the command
that installs them.

Without libxcb-cursor0 (not installed by default on several distributions) Qt 6 aborts with
"Could not load the Qt platform plugin "xcb" … Reinstalling the application may fix this
problem", which points at the wrong fix. A pip install cannot bring system libraries, so
MemDesk checks for them first and says exactly what to install.
"""
from __future__ import annotations

import ctypes.util
import os
import shutil
import sys

# library name for ctypes -> (Debian/Ubuntu package, Fedora package, Arch package)
XCB_LIBRARIES = {
    "xcb-cursor": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "xcb-icccm": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "xcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "xcb-image": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "xcb-render-util": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    "xkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
}


def uses_xcb(env: dict[str, str] | None = None) -> bool:
    """Whether Qt will pick its X11 plugin: Linux, and neither offscreen nor a Wayland session."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return not (env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland")


def missing_xcb_packages(find=ctypes.util.find_library) -> list[tuple[str, str, str]]:
    return [packages for name, packages in XCB_LIBRARIES.items() if find(name) is None]


def missing_message(missing: list[tuple[str, str, str]]) -> str:
    if shutil.which("apt-get"):
        how = "sudo apt install " + " ".join(p[0] for p in missing)
    elif shutil.which("dnf"):
        how = "sudo dnf install " + " ".join(p[1] for p in missing)
    elif shutil.which("pacman"):
        how = "sudo pacman -S " + " ".join(p[2] for p in missing)
    else:
        how = "install " + ", ".join(p[0] for p in missing) + " (Debian names) with your package manager"
    return (f"MemDesk's window needs system libraries that this computer lacks ({', '.join(p[0] for p in missing)}). "
            f"Install them with: {how}. Until then, `memdesk chat` works in the terminal.")
