"""Qt's X11 plugin needs system libraries pip cannot install: MemDesk names them and the command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from memdesk.app.system_libraries import missing_message, missing_xcb_packages, uses_xcb

ROOT = Path(__file__).resolve().parents[2]


def test_which_sessions_use_xcb():
    if not sys.platform.startswith("linux"):
        return
    assert uses_xcb({"DISPLAY": ":0"})
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"})


def test_missing_libraries_are_named_with_how_to_install_them():
    missing = missing_xcb_packages(lambda name: None if name == "xcb-cursor" else f"lib{name}.so")
    assert missing == [("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor")]
    message = missing_message(missing)
    assert "libxcb-cursor0" in message and "install" in message and "memdesk chat" in message


def test_the_app_says_so_instead_of_qts_abort(tmp_path):
    """A launch where the libraries cannot be found (an empty library path, a made-up lookup) exits
    2 with the message, before Qt is touched."""
    code = ("import sys, ctypes.util; ctypes.util.find_library = lambda name: None; "
            "from memdesk.app.cli import main; sys.exit(main(['gui', '--data-dir', sys.argv[1]]))")
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": ":99", "QT_QPA_PLATFORM": "xcb", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if not sys.platform.startswith("linux"):
        return
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "libxcb-cursor0" in proc.stderr and "Could not load the Qt platform plugin" not in proc.stderr
