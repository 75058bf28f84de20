"""`memdesk gui --smoke` and `--screenshots DIR`: every window, on demo content, for real.

A temporary data folder (never the person's own vault) is seeded with realistic memories,
two past chats, a conflict and a folder of notes that the watcher ingests. Each window is
opened and exercised through its public methods; the run fails (exit 1, with what went
wrong) if any check fails or a step does not finish in time. With --screenshots each
window is also saved as a PNG.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QWidget

from memdesk.app import first_run, settings_store
from memdesk.app.demo_content import seed
from memdesk.app.gui import DesktopApp, make_qt_app
from memdesk.engine.api import Memory
from memdesk.engine.cube import Filters
from memdesk.engine.vault.keys import PASSPHRASE_ENV
from memdesk.engine.vault.paths import ProfilePaths

log = logging.getLogger("memdesk.smoke")
STEP_TIMEOUT_S = 180


class SmokeFailure(AssertionError):
    pass


def pump(until: Callable[[], bool], timeout_s: float = STEP_TIMEOUT_S, what: str = "") -> None:
    """Let Qt deliver events until `until()` holds (sleeping in the event loop, not spinning)."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while not until():
        if time.monotonic() > deadline:
            raise SmokeFailure(f"timed out after {timeout_s:.0f} s waiting for {what or 'background work'}")
        QTimer.singleShot(25, loop.quit)
        loop.exec()


def settle(desktop: DesktopApp, what: str) -> None:
    pump(lambda: desktop.runner.pending == 0, what=what)


def shoot(widget: QWidget, folder: Path | None, name: str) -> None:
    if folder is None:
        return
    pump(lambda: True)  # one more pass so the last results are painted
    widget.repaint()
    path = folder / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise SmokeFailure(f"could not save {path}")
    print(f"screenshot: {path}")


def run(args: argparse.Namespace) -> int:
    shots = Path(args.screenshots).resolve() if args.screenshots else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    qt_app = make_qt_app(["memdesk"])
    with tempfile.TemporaryDirectory(prefix="memdesk-smoke-") as tmp:
        root = Path(tmp)
        os.environ[PASSPHRASE_ENV] = "smoke-test passphrase"  # only this temporary vault
        paths = ProfilePaths.for_profile(root / "data", "default")
        mem = Memory.open(paths.data_dir, profile=paths.name)
        notes = root / "notes"
        notes.mkdir()
        ids = seed(mem, notes)
        settings, _ = settings_store.load(paths)
        settings.watched_folders = [str(notes)]
        settings_store.save(paths, settings)
        desktop = DesktopApp(qt_app, mem, paths)
        try:
            return _exercise(desktop, shots, ids)
        except SmokeFailure as exc:
            print(f"memdesk gui --smoke: FAILED: {exc}")
            return 1
        finally:
            desktop.shutdown()
            os.environ.pop(PASSPHRASE_ENV, None)


def _first_run(desktop: DesktopApp, shots: Path | None) -> None:
    """The first-run window: every page, then Skip (which must mark it done)."""
    if not first_run.should_show(desktop) and desktop.settings.welcome_done:
        raise SmokeFailure("first run: marked done before it was shown")
    wizard = first_run.open_window(desktop)
    wizard.exercise()
    try:
        wizard.check_exercised()
    except AssertionError as exc:
        raise SmokeFailure(f"first run: {exc}") from exc
    for index, page_id in enumerate(wizard.pageIds()):
        wizard.restart()
        for _ in range(index):
            wizard.next()
        shoot(wizard, shots, f"first-run-{index + 1}-{wizard.page(page_id).objectName()}")
    wizard.reject()
    pump(lambda: desktop.settings.welcome_done, what="the first-run window to be marked done")
    print("ok: first run")


def _exercise(desktop: DesktopApp, shots: Path | None, ids: dict) -> int:
    window = desktop.window
    window.resize(1280, 820)
    desktop.start()
    pump(lambda: desktop.chat.ready or desktop.chat.error, what="the model to load")
    if desktop.chat.error:
        raise SmokeFailure(f"model: {desktop.chat.error}")
    # The watcher ingests the demo notes in the background; a note dropped in later is found too.
    pump(lambda: desktop.mem.count() >= 25, what="the notes folder to be ingested")
    notes = Path(desktop.settings.watched_folders[0])
    (notes / "inbox.md").write_text("# Ideas\n\nA sailing week around Zanzibar next summer.\n", encoding="utf-8")
    pump(lambda: any("Zanzibar" in m.memory for m in desktop.mem.list(Filters(sources=("file",)), limit=200)),
         what="a note dropped into the watched folder to be ingested")
    print("ok: watched folder")
    steps: list[tuple[str, QWidget, object]] = [
        ("chat", window, desktop.chat),
        ("browser", desktop.browser, desktop.browser),
        ("conflicts", desktop.conflicts, desktop.conflicts),
        ("timeline", desktop.timeline, desktop.timeline),
        ("capture", desktop.capture, desktop.capture),
    ]
    for name, widget, target in steps:
        if name != "capture":
            widget.show()
        if name == "browser":
            widget.resize(1280, 780)
            # A memory with a history: the browser's exercise opens the most recently changed one.
            desktop.mem.update(ids["sister ana / job"], reason="edited",
                               memory="Sister Ana is a head nurse at Hospital de São João since October.")
        elif name in ("conflicts", "timeline"):
            widget.resize(1100, 620)
        target.exercise()
        settle(desktop, f"the {name} window")
        pump(lambda target=target: desktop.runner.pending == 0 and not getattr(target, "busy", False), what=name)
        try:
            target.check_exercised()
        except AssertionError as exc:
            raise SmokeFailure(f"{name}: {exc}") from exc
        print(f"ok: {name}")
        if name == "capture":
            desktop.capture.open_capture()
            desktop.capture.editor.setPlainText("Call Ana on Sunday about the Japan trip dates.")
        shoot(widget, shots, name)
        if name == "capture":
            desktop.capture.hide()
    settings = desktop.settings_dialog()
    settings.exercise()
    settle(desktop, "the settings dialog")
    settings.check_exercised()
    settings.show()
    shoot(settings, shots, "settings")
    models = settings.models
    models.exercise()
    try:
        models.check_exercised()
    except AssertionError as exc:
        raise SmokeFailure(f"models page: {exc}") from exc
    settings.tabs.setCurrentWidget(models)
    models.select(next((row.name for row in models.rows if row.recommended), models.rows[0].name))
    shoot(settings, shots, "settings-models")
    settings.close()
    print("ok: settings")
    _first_run(desktop, shots)
    print("memdesk gui --smoke: all windows OK")
    return 0
