"""Settings ▸ Scheduler ▸ "Start MemDesk at login", wired to the OS's login entry (app/autostart.py).

The change is made on the GUI thread: it is one small file (or registry value) written whole,
no slower than saving settings.json, and the person sees the outcome on the box they clicked.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from memdesk.app import autostart
from memdesk.engine.errors import MemDeskError
from memdesk.ui.settings_login import LoginStartBox


def login_args(profile: str, explicit_data_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """What `memdesk gui` needs at login to open the profile open now.

    Only a --data-dir given on this run's command line is repeated: the usual folder (and a data
    folder chosen in Settings, which the usual folder's settings point to) is found again without
    one, and passing it would stop that pointer from being followed."""
    args: list[str] = []
    if explicit_data_dir:
        args += ["--data-dir", os.path.abspath(os.path.expanduser(os.fspath(explicit_data_dir)))]
    if profile != "default":
        args += ["--profile", profile]
    return tuple(args)


class LoginStart:
    def __init__(self, args: Sequence[str] = ()):
        self.args = tuple(args)

    def wire(self, box: LoginStartBox) -> None:
        box.changeRequested.connect(lambda on: self.change(on, box))
        box.refreshRequested.connect(lambda: box.show_state(autostart.is_enabled()))
        box.show_state(autostart.is_enabled(), "")

    def change(self, on: bool, box: LoginStartBox) -> None:
        try:
            if on:
                autostart.enable(autostart.launch_command(self.args))
            else:
                autostart.disable()
        except MemDeskError as exc:
            box.show_state(autostart.is_enabled(), str(exc))
            return
        now = autostart.is_enabled()
        if now != on:  # written, yet read back otherwise: say so rather than show a tick that lies
            box.show_state(now, f"MemDesk changed its login entry ({autostart.entry_location()}), but your "
                                "system still reports it as " + ("off" if on else "on") + ". Check MemDesk in "
                                "your desktop's list of startup applications.")
            return
        box.show_state(now, "")
