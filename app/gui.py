"""`memdesk gui`: the desktop app's composition root.

Opens the vault (asking for the passphrase when no OS keyring holds the key), then builds
the windows, the chat controller, the scheduler's QThread and the folder watcher, and
wires them with signals. Threads (ARCHITECTURE.md): the GUI thread only shows things;
the database, the model and disk scans run on TaskRunner lanes, the scheduler on its
QThread and the watcher on its own thread, and results come back through signals.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon
from PySide6.QtWidgets import QApplication, QWidget

from memdesk.app import first_run, global_hotkey, settings_store
from memdesk.app.change_bridge import ChangeBridge
from memdesk.app.chat_controller import ChatController, wire_endpoint_fields
from memdesk.app.embedding_status import EmbeddingProgress
from memdesk.app.folder_watching import FolderWatching
from memdesk.app.gui_autostart import LoginStart, login_args
from memdesk.app.gui_backup import Backups, PendingRestore
from memdesk.app.gui_models import ModelChoices
from memdesk.app.gui_training import TrainingInstaller
from memdesk.app.model_downloads import ModelDownloads
from memdesk.app.scheduler_thread import SchedulerThread
from memdesk.engine.api import Memory
from memdesk.engine.chat.turn import ChatConfig
from memdesk.engine.errors import MemDeskError, WrongKeyError
from memdesk.engine.scheduler.memscheduler import MemScheduler, NightlyWindow
from memdesk.engine.scheduler.queue import JobQueue
from memdesk.engine.vault.changes import Changes
from memdesk.engine.vault.keys import PASSPHRASE_ENV, KeyManager, env_passphrase_provider
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.ui.capture import QuickCapture, install_capture_shortcut
from memdesk.ui.chat_window import MainWindow
from memdesk.ui.settings import AppSettings, SettingsDialog, SettingsInfo
from memdesk.ui.settings_folders import summary as folder_summary
from memdesk.ui.splash import Splash
from memdesk.ui.tasks import TaskRunner
from memdesk.ui.tray import NO_TRAY_MESSAGE, Tray
from memdesk.ui.unlock import UnlockDialog
from memdesk.ui.window_sizes import ensure_readable

if TYPE_CHECKING:
    from memdesk.ui.browser import BrowserWindow
    from memdesk.ui.conflicts import ConflictsView
    from memdesk.ui.timeline import TimelineView

log = logging.getLogger("memdesk.gui")
ICON = Path(__file__).resolve().parent.parent / "resources" / "icons" / "memdesk.svg"


def wait_for(fn, *args):
    """Run `fn` on a worker thread while the GUI keeps painting (a QEventLoop, not a busy-wait).

    Nothing of the call may outlive it. An error kept in a local would put this frame in a
    reference cycle (error -> traceback -> frame -> error), with the caller's frame and its
    unlock dialog in it, for the cyclic collector to free later on whatever thread it runs:
    at start-up the indexer (docs/design-notes.md, "Lock order")."""
    runner = TaskRunner()
    loop = QEventLoop()
    box: dict = {}
    runner.write(lambda: fn(*args), on_done=_finish(box, "value", loop), on_error=_finish(box, "error", loop))
    loop.exec()
    runner.shutdown()
    # Deleted here, on the GUI thread; and not left in this frame, which an error's traceback
    # (held by a log record, say) keeps alive.
    shiboken6.delete(runner)
    shiboken6.delete(loop)
    del runner, loop
    error = box.pop("error", None)
    if error is not None:
        try:
            raise error
        finally:
            error = None
    return box.pop("value")


def _finish(box: dict, key: str, loop: QEventLoop):
    """A callback that keeps the result and ends the loop; its closure is this frame, not wait_for's."""
    return lambda value: (box.update({key: value}), loop.quit())


def ask_passphrase(mode: str, paths: ProfilePaths, error: str) -> str | None:
    """The unlock dialog; None when the person cancels. The dialog is destroyed here, on the GUI thread."""
    dialog = UnlockDialog(mode, str(paths.vault), error)
    try:
        dialog.setWindowIcon(QIcon(str(ICON)))
        accepted = dialog.exec() == UnlockDialog.DialogCode.Accepted
        return dialog.value() if accepted else None
    finally:
        shiboken6.delete(dialog)


def _open(paths: ProfilePaths, passphrase, embedder) -> Memory:
    return Memory.open(paths.data_dir, profile=paths.name, passphrase=passphrase, embedder=embedder)


def open_vault(paths: ProfilePaths, splash: Splash | None = None, *, embedder=True,
               known: str | None = None) -> Memory | None:
    """Unlock dialog loop; None when the person cancels. With no dialog needed (the key is in
    the OS keyring, or MEMDESK_PASSPHRASE is set) the vault opens directly; a MEMDESK_PASSPHRASE
    that does not open it is said so in the dialog, which then asks. `known`: a passphrase
    tried first (the one just chosen for a restored vault), so it is not asked twice."""
    keys = KeyManager(paths.key_sidecar)
    mode = keys.passphrase_request()
    error = ""
    while True:
        provider = env_passphrase_provider
        if known is not None:
            provider = lambda confirm, secret=known: secret  # noqa: E731
            known = None
        elif mode is not None:
            secret = ask_passphrase(mode, paths, error)
            if secret is None:
                return None
            provider = lambda confirm, secret=secret: secret  # noqa: E731
        if splash is not None:
            splash.showMessage("Opening your memories…")
        try:
            return wait_for(_open, paths, provider, embedder)
        except WrongKeyError as exc:
            if mode is None:
                if keys.info().mode != "passphrase":
                    raise  # a keyring key that does not fit: no passphrase to ask for
                mode = "unlock"
                error = f"{PASSPHRASE_ENV} does not open this vault. Enter its passphrase."
            else:
                error = str(exc)


def after_exposed(widget: QWidget, then: Callable[[], None], at_most_ms: int = 500) -> None:
    """Call `then` once `widget`'s window has been exposed and painted (after `at_most_ms` if it
    never is: a window system that does not say, or a window shown minimised)."""
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            then()

    class Exposed(QObject):
        def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Expose and watched.isExposed():
                watched.removeEventFilter(self)
                QTimer.singleShot(0, once)  # after the paint the expose starts
            return False

    handle = widget.windowHandle()
    if handle is None:
        QTimer.singleShot(0, once)
        return
    handle.installEventFilter(Exposed(handle))
    QTimer.singleShot(at_most_ms, once)


class AdapterBridge(QObject):
    """The nightly adapter job reports from the scheduler's thread; these carry it to the GUI thread."""
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)


class DesktopApp(QObject):
    hotkeyPressed = Signal()  # Ctrl+Shift+Space anywhere on the desktop (app/global_hotkey.py), from its thread

    def __init__(self, qt_app: QApplication, mem: Memory, paths: ProfilePaths,
                 store: settings_store.SettingsStore | None = None, *, explicit_data_dir: str | None = None):
        super().__init__()
        self.qt_app = qt_app
        self.mem = mem
        self.paths = paths
        # Settings live in the default data folder's profile, even when the vault is elsewhere.
        self.store = store or settings_store.SettingsStore(paths)
        loaded = self.store.load()
        self.settings = loaded.settings
        warning = " ".join(loaded.messages)
        self.key_storage = settings_store.describe_key_storage(paths)
        self.runner = TaskRunner(self)
        self.jobs = JobQueue(mem.db, health=mem.health)  # reads nothing: the lease is taken on the scheduler's thread
        self.scheduler = MemScheduler(self.jobs, health=mem.health)
        self.scheduler.window = NightlyWindow(self.settings.nightly_start_hour, self.settings.nightly_end_hour)
        self.scheduler.set_preparation(self.settings.scheduler_enabled)
        self.scheduler_thread = SchedulerThread(self.scheduler)

        self.window = MainWindow(mem, self.runner)
        self.capture = QuickCapture(mem, self.runner)
        self.tray = Tray()
        self.chat = ChatController(mem, self.runner, self.window, self.scheduler,
                                   model_path=self.settings.model_path or None, backend=self.settings.backend,
                                   config=ChatConfig(profile=self.settings.context_profile),
                                   endpoint=settings_store.endpoint_of(self.settings))
        for widget in (self.window, self.capture):
            widget.setWindowIcon(QIcon(str(ICON)))
        self.folders = FolderWatching(mem, self)
        self.backups = Backups(mem, self.runner, self.restore_ready)
        self.login_start = LoginStart(login_args(paths.name, explicit_data_dir))  # opens this profile at login
        self.training_installer = TrainingInstaller()  # Settings ▸ Learned preferences ▸ Install
        self.hotkey = None  # set by start() where the window system allows a desktop-wide shortcut
        self.pending_restore: PendingRestore | None = None  # cmd_gui restores it once the vault is closed
        self.embedding = EmbeddingProgress(mem, self.runner, self.window.status_line, self)
        self.settings_view: SettingsDialog | None = None  # the Settings dialog, while one is open
        self.adapter_bridge = AdapterBridge()
        # Every engine write, whoever made it, reaches the views through this one signal.
        self.change_bridge = ChangeBridge(mem, self)
        self.adapters_view = None  # Settings ▸ Learned preferences, while its dialog is open
        self.downloads = ModelDownloads(paths.data_dir, self)  # model downloads, shared by Settings and first run
        self.model_choices = ModelChoices(self)
        self.first_run_view = None  # the first-run window, while it is open
        self._wire()
        if warning:
            self.window.statusBar().showMessage(warning, 15000)

    # ------------------------------------------------------------ wiring
    def _wire(self) -> None:
        w = self.window
        w.openMemoryRequested.connect(self.open_memory)
        w.searchRequested.connect(self.search_memories)
        w.openBrowserRequested.connect(lambda: self._show(self.browser))
        w.openConflictsRequested.connect(lambda: self._show(self.conflicts))
        w.openTimelineRequested.connect(lambda: self._show(self.timeline))
        w.openSettingsRequested.connect(self.open_settings)
        w.captureRequested.connect(self.capture.open_capture)
        w.quitRequested.connect(self.quit)
        w.aboutRequested.connect(self.show_about)
        self.capture.captured.connect(self.capture_saved)
        install_capture_shortcut(w, self.capture)
        self.change_bridge.changed.connect(self.memories_changed)
        self.change_bridge.changed.connect(self.embedding.changed)
        self.capture.failed.connect(lambda message: w.statusBar().showMessage(message, 10000))
        self.runner.failed.connect(w.show_error)
        self.tray.openRequested.connect(lambda: self._show(w))
        self.tray.captureRequested.connect(self.capture.open_capture)
        self.tray.pauseToggled.connect(self.pause_ingestion)
        self.tray.quitRequested.connect(self.quit)
        self.folders.progress.connect(
            lambda done, total, path: w.set_ingest_status(f"Indexing notes {done}/{total}" if done < total else ""))
        self.folders.report.connect(self.ingest_finished)
        self.folders.error.connect(w.show_error)
        self.folders.states.connect(self.folder_states_changed)
        self.adapter_bridge.progress.connect(
            lambda fraction, message: w.set_scheduler_status(f"Learning your preferences: {fraction:.0%} {message}"))
        self.adapter_bridge.finished.connect(self.adapter_finished)
        self.adapter_bridge.failed.connect(w.show_error)
        self.qt_app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------ the other windows
    # Built the first time they are opened, not at start: their modules, numpy among them, and
    # their construction were a fifth of the time to the first window (bench.bundle).
    @cached_property
    def browser(self) -> BrowserWindow:
        from memdesk.ui.browser import BrowserWindow

        browser = self._built(BrowserWindow(self.mem, self.runner))
        browser.openSessionRequested.connect(self.open_session)
        browser.openFileRequested.connect(self.open_file)
        return browser

    @cached_property
    def conflicts(self) -> ConflictsView:
        from memdesk.ui.conflicts import ConflictsView

        conflicts = self._built(ConflictsView(self.mem, self.runner), "Conflicts — MemDesk")
        conflicts.openMemoryRequested.connect(self.open_memory)
        return conflicts

    @cached_property
    def timeline(self) -> TimelineView:
        from memdesk.ui.timeline import TimelineView

        timeline = self._built(TimelineView(self.mem, self.runner), "Timeline — MemDesk")
        timeline.openMemoryRequested.connect(self.open_memory)
        timeline.rangeSelected.connect(self.filter_by_time)
        return timeline

    def _built(self, widget, title: str = ""):
        widget.setWindowIcon(QIcon(str(ICON)))
        if title:
            widget.setWindowTitle(title)
        return widget

    def views(self) -> tuple[QWidget, ...]:
        """The other windows built so far (one not yet built reads everything when it is)."""
        return tuple(self.__dict__[name] for name in ("browser", "conflicts", "timeline") if name in self.__dict__)

    # ------------------------------------------------------------ lifecycle
    def start(self, model=None) -> None:
        if Tray.available():
            self.tray.show()
            self.qt_app.setQuitOnLastWindowClosed(False)  # the tray keeps MemDesk running
        else:
            self.window.statusBar().showMessage(NO_TRAY_MESSAGE, 15000)
        self.window.show()
        self.hotkey, why = global_hotkey.start(self.hotkeyPressed.emit, self.qt_app.platformName())
        if self.hotkey is None:
            log.info("quick capture from other apps is off: %s (the in-window shortcut works)", why)
        self.hotkeyPressed.connect(self.capture.open_capture)
        if model is not None:
            self.chat.use_model(model)
        else:
            # Once the window is on screen: the model file and llama.cpp's libraries would otherwise
            # be read while the window's are (in an AppImage, through the same FUSE daemon).
            after_exposed(self.window, self.chat.load_model)
        self.scheduler.add_nightly("adapter", self.train_adapter)
        self.scheduler.add_nightly("compact", self.compact_vault)
        # Always: extraction and the nightly job run on it. The setting only turns preparation off.
        self.scheduler_thread.start()
        self.start_watching()
        self.embedding.check()  # memories left without a vector last time

    def activate(self) -> None:
        """Another launch of MemDesk for this profile asked for the window (app/single_instance.py)."""
        self._show(self.window)

    def start_watching(self) -> None:
        """Watch the folders in the settings; missing ones as soon as they exist."""
        self.folders.start(list(self.settings.watched_folders))

    def pause_ingestion(self, paused: bool) -> None:
        self.folders.pause(paused)
        self.window.set_ingest_status("Ingestion paused" if paused else "")

    def folder_states_changed(self, states: list) -> None:
        """The watcher's view of each folder changed: an open Settings dialog shows it at once."""
        dialog = self.settings_view
        if dialog is not None and shiboken6.isValid(dialog):
            dialog.set_folder_states(states)
            dialog.set_info(self.settings_info())

    def ingest_finished(self, report) -> None:
        self.window.set_ingest_status("")
        skipped = getattr(report, "skipped", None) or []
        if skipped:
            self.window.statusBar().showMessage(f"{len(skipped)} file(s) skipped; see Settings → Watched folders.",
                                                10000)

    # ------------------------------------------------------------ parametric memory
    def train_adapter(self, should_stop) -> None:
        """The nightly task (scheduler thread, model lock held): distil preferences into an adapter."""
        from memdesk.engine.errors import Preempted
        from memdesk.engine.parametric.nightly import AdapterJob

        if self.chat.endpoint is not None:  # no weights here to train on, nothing to load an adapter into
            from memdesk.engine.parametric.nightly import NightlyReport

            self.adapter_bridge.finished.emit(NightlyReport("skipped", self.chat.in_process_only_note))
            return
        job = AdapterJob(self.mem, self.chat.model_path, backend=self.settings.backend)
        try:
            report = job.run(self.chat.model, should_stop=should_stop,
                             progress=lambda fraction, message: self.adapter_bridge.progress.emit(fraction, message))
        except MemDeskError as exc:
            self.adapter_bridge.failed.emit(f"Learning preferences failed: {exc}")
            raise
        if report.status == "interrupted" and should_stop():
            raise Preempted("a user turn")  # the scheduler queues it again; training resumes from its checkpoint
        self.adapter_bridge.finished.emit(report)

    def compact_vault(self, should_stop) -> None:
        """The nightly window, after the adapter job: give free pages back to the disk (evicted
        activation states, forgotten chats), when there is enough to be worth it."""
        from memdesk.engine.vault.maintenance import idle_compact

        report = idle_compact(self.mem)
        if report is not None:
            log.info("compacted the vault: %d -> %d bytes", report.bytes_before, report.bytes_after)

    def train_adapter_now(self) -> None:
        self.scheduler.submit("adapter", self.train_adapter, key="nightly:adapter")
        self.window.set_scheduler_status("Learning your preferences: queued")

    def adapter_finished(self, report) -> None:
        messages = {"activated": "A new preferences adapter passed its checks and is now active.",
                    "candidate": "A new preferences adapter is ready to switch on in Settings ▸ Learned preferences.",
                    "rejected": f"The new adapter was not switched on: {report.reason}.",
                    "skipped": f"No new adapter: {report.reason}."}
        self.window.statusBar().showMessage(messages.get(report.status, report.status), 15000)
        self.window.set_scheduler_status("")
        if report.status == "activated":
            self.chat.load_model()  # reload with the adapter

    def shutdown(self) -> None:
        """Stop every thread that uses the vault, then close it. Pending extraction jobs stay
        queued in the vault for the next start."""
        self.downloads.shutdown()  # a download in progress keeps its part file and resumes next time
        if self.hotkey is not None:
            self.hotkey.stop()
        self.training_installer.stop()
        self.change_bridge.close()
        self.folders.stop()
        if not self.scheduler_thread.stop():
            log.warning("the scheduler's task did not stop within 30 s; waiting for it before closing the vault")
            self.scheduler_thread.wait()
        self.chat.close()
        if not self.runner.shutdown():
            # Closing the vault under a task would fail it half-way (a reply not stored, an
            # import cut short): wait for it, saying why the quit takes longer.
            log.warning("background tasks still running after 30 s; waiting for them before closing the vault")
            self.runner.shutdown(timeout_ms=-1)
        self.mem.close()

    def quit(self) -> None:
        self.qt_app.quit()

    def restore_ready(self, pending: PendingRestore) -> None:
        """The backup's passphrase is right and the person confirmed: close, restore, open again."""
        self.pending_restore = pending
        self.quit()

    def dispose(self) -> None:
        """After shutdown, before the app is built again on another vault (a restored backup)."""
        self.tray.hide()
        for widget in (self.first_run_view, self.settings_view, self.window, *self.views(), self.capture):
            if widget is not None and shiboken6.isValid(widget):
                widget.hide()
                widget.deleteLater()

    # ------------------------------------------------------------ navigation
    def _show(self, widget: QWidget) -> None:
        hidden = not widget.isVisible()
        if hidden:
            ensure_readable(widget)
        widget.show()
        widget.raise_()
        widget.activateWindow()
        if hidden and widget in self.views():
            widget.refresh()  # hidden views skip change reports; this one catches up now

    def show_about(self) -> None:
        from memdesk.app.about import about_info
        from memdesk.ui.about import AboutDialog

        dialog = AboutDialog(about_info(str(self.paths.data_dir), self.chat.model_name()), self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def capture_saved(self, _memory_id: str) -> None:
        """A short confirmation: in the window when it is open, else from the tray icon."""
        if self.window.isVisible():
            self.window.statusBar().showMessage("Saved to your memories.", 4000)
        else:
            self.tray.notify("MemDesk", "Saved to your memories.")

    def open_memory(self, memory_id: str) -> None:
        self._show(self.browser)
        self.browser.show_memory(memory_id)

    def search_memories(self, text: str = "") -> None:
        self._show(self.browser)
        self.browser.focus_search(text)

    def filter_by_time(self, since, until) -> None:
        self._show(self.browser)
        self.browser.set_time_range(since, until)

    def open_session(self, session_id: str, message_id: str = "") -> None:
        self._show(self.window)
        self.window.select_session(session_id)

    def open_file(self, path: str, line: int = 0) -> None:
        if not Path(path).exists():
            self.window.statusBar().showMessage(f"{path} no longer exists; its memories were archived.", 10000)
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def memories_changed(self, changes: Changes) -> None:
        """Something was written, by anyone (a view, a chat turn, extraction, the nightly job,
        ingestion, an import): every open view refreshes. A hidden one does when next shown."""
        if changes.memories or changes.relations:
            for view in self.views():
                if view.isVisible():
                    view.refresh()
        if changes.adapters and self.adapters_view is not None and shiboken6.isValid(self.adapters_view):
            self.adapters_view.refresh()

    # ------------------------------------------------------------ settings
    def settings_info(self) -> SettingsInfo:
        ingest = folder_summary(self.folders.current)
        return SettingsInfo(key_storage=self.key_storage, data_dir=str(self.paths.data_dir), ingest_status=ingest,
                            model_in_use=self.chat.model_name(), default_model=_default_model())

    def settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, self.settings_info(), settings_store.validate_model_path, self.window)
        dialog.setWindowIcon(QIcon(str(ICON)))
        dialog.set_folder_states(self.folders.current)
        self.settings_view = dialog
        self.backups.wire(dialog.backup)
        self.login_start.wire(dialog.login_start)
        dialog.settingsChanged.connect(self.apply_settings)
        dialog.exportRequested.connect(lambda path: self.export_memories(path, dialog))
        dialog.importRequested.connect(lambda path: self.import_memories(path, dialog))
        wire_endpoint_fields(dialog.endpoint, self.runner)
        self.model_choices.wire(dialog.models)
        dialog.welcomeRequested.connect(lambda: first_run.open_window(self))
        model = self.chat.model
        if model is not None and self.chat.endpoint is None:  # the Model page says why adapters are off
            from memdesk.app import training_install
            from memdesk.engine.parametric.nightly import missing_training_packages
            from memdesk.ui.adapters import AdaptersView

            trainer = "mlx" if self.chat.model_path is not None and self.chat.model_path.is_dir() else "torch"
            missing = tuple(missing_training_packages(trainer))
            install = training_install.plan(trainer) if missing else None
            note = install if isinstance(install, str) else (
                f"“Install training component” adds it to this installation ({install.size_note})." if install
                else "")
            adapters = AdaptersView(self.mem, self.runner, model.info.fingerprint, model.info.name, dialog,
                                    missing=missing, install_note=note,
                                    installable=isinstance(install, training_install.InstallPlan))
            adapters.activeChanged.connect(self.chat.load_model)
            adapters.trainRequested.connect(self.train_adapter_now)
            if isinstance(install, training_install.InstallPlan):
                adapters.installRequested.connect(lambda: self.training_installer.start(install))
                self.training_installer.step.connect(adapters.install_step)
                self.training_installer.finished.connect(adapters.install_finished)
            dialog.tabs.addTab(adapters, "Learned preferences")
            dialog.adapters = adapters
            self.adapters_view = adapters
        return dialog

    def open_settings(self) -> None:
        self.settings_dialog().open()  # window-modal, without a nested event loop

    def apply_settings(self, new: AppSettings) -> None:
        # Once welcomed, always: a Settings dialog opened before the first-run window ended does not undo it.
        new.welcome_done = new.welcome_done or self.settings.welcome_done
        try:
            self.store.save(new)
        except MemDeskError as exc:
            self.window.show_error(str(exc))
            return
        old, self.settings = self.settings, new
        if new.context_profile != old.context_profile:
            self.chat.config = replace(self.chat.config, profile=new.context_profile)
        if (new.model_path, new.backend, new.context_profile, settings_store.endpoint_of(new)) != (
                old.model_path, old.backend, old.context_profile, settings_store.endpoint_of(old)):
            self.chat.set_model(new.model_path or None, new.backend, endpoint=settings_store.endpoint_of(new))
        if new.watched_folders != old.watched_folders:
            self.start_watching()
        self.scheduler.window = NightlyWindow(new.nightly_start_hour, new.nightly_end_hour)
        self.scheduler.set_preparation(new.scheduler_enabled)
        if not self.scheduler_thread.isRunning():
            self.scheduler_thread.start()

    def export_memories(self, path: str, dialog: SettingsDialog | None = None) -> None:
        def done(message: str) -> None:
            self.window.statusBar().showMessage(message, 10000)
            if dialog is not None:
                dialog.show_exchange_result(message)

        self.runner.write(lambda: self.mem.export(path),
                          on_done=lambda n: done(f"Exported {n} memories to {path}. The file is NOT encrypted: "
                                                 "keep it somewhere safe, or delete it when done."),
                          on_error=lambda e: done(str(e)))

    def import_memories(self, path: str, dialog: SettingsDialog | None = None) -> None:
        def done(message: str) -> None:
            self.window.statusBar().showMessage(message, 10000)
            if dialog is not None:
                dialog.show_exchange_result(message)

        self.runner.write(lambda: self.mem.import_(path),
                          on_done=lambda r: done(f"Imported {r.added} memories from {path} "
                                                 f"({r.skipped} already here)."),
                          on_error=lambda e: done(str(e)))


def _default_model() -> str:
    from memdesk.engine.llm.registry import default_model_path

    try:
        return str(default_model_path())
    except MemDeskError:
        return ""


def make_qt_app(argv: list[str]) -> QApplication:
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("MemDesk")
    app.setOrganizationName("MemDesk")
    # Matches the installed memdesk.desktop, so docks and Wayland show MemDesk's name and icon.
    app.setDesktopFileName("memdesk")
    app.setStyle("Fusion")
    app.setWindowIcon(QIcon(str(ICON)))
    return app
