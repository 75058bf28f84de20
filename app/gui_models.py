"""The desktop app's model choices: the Models page wired to the downloads, "Use" that switches
the chat model at once, and the status line while a download runs in the background.

A download keeps running when Settings is closed (the status line shows it, the chat keeps
working on the current model). When the person asked for it to be used once ready (the
first-run window does), the model is switched as soon as it is verified.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QObject

from memdesk.engine.errors import MemDeskError
from memdesk.engine.llm.library import known_model_folders
from memdesk.ui.messages import for_gui
from memdesk.ui.settings_models import ModelsPage

if TYPE_CHECKING:
    from memdesk.app.gui import DesktopApp

log = logging.getLogger(__name__)


class ModelChoices(QObject):
    """Lives on the GUI thread, so the download thread's signals reach these methods queued there."""

    def __init__(self, desktop: DesktopApp):
        super().__init__(desktop)
        self.desktop = desktop
        self.downloads = desktop.downloads
        self.page: ModelsPage | None = None  # Settings ▸ Models while the dialog is open
        self.use_when_done: set[str] = set()
        d = self.downloads
        d.progress.connect(self._progress)
        d.finished.connect(self._finished)
        d.failed.connect(self._failed)
        d.cancelled.connect(self._cancelled)
        d.changed.connect(self.refresh)

    # ---------------------------------------------------------- the page
    def wire(self, page: ModelsPage) -> None:
        self.page = page
        page.downloadRequested.connect(lambda name: self.download(name))
        page.cancelRequested.connect(self.downloads.cancel)
        page.useRequested.connect(self.use)
        page.removeRequested.connect(self.remove)
        page.addRequested.connect(self.add)
        page.addKnownRequested.connect(self.add_known)
        page.folderRequested.connect(self.set_folder)
        self.refresh()
        if self.downloads.last_progress is not None and self.downloads.active is not None:
            page.show_progress(self.downloads.last_progress)

    def _page(self) -> ModelsPage | None:
        if self.page is not None and not shiboken6.isValid(self.page):
            self.page = None
        return self.page

    def refresh(self) -> None:
        page = self._page()
        if page is None:
            return
        try:
            rows = self.downloads.rows(self.desktop.settings.model_path if self.desktop.settings.model_source == "file"
                                       else "\0server")
            page.set_rows(rows, self.downloads.hardware_text(), self.downloads.active,
                          str(self.downloads.library.folder))
        except MemDeskError as exc:
            page.say(for_gui(str(exc)))

    # ---------------------------------------------------------- actions
    def download(self, name: str, use_when_done: bool = False) -> bool:
        if use_when_done:
            self.use_when_done.add(name)
        started = self.downloads.start(name)
        if started:
            self._status(f"Downloading {name}: starting…")
            self.refresh()
        return started

    def use(self, name: str, path: str) -> None:
        """Switch the chat model now ("" = the built-in one) and remember it in the settings."""
        new = self.desktop.settings.copy()
        new.model_source, new.model_path, new.backend = "file", path, "auto"
        self.desktop.apply_settings(new)
        dialog = self.desktop.settings_view
        if dialog is not None and shiboken6.isValid(dialog):
            dialog.model_applied(new)
        title = "the built-in model" if not path else name
        self._say(f"Switched to {title}; it is loading now.")
        self.refresh()

    def remove(self, name: str) -> None:
        row = next((r for r in self.downloads.rows(self.desktop.settings.model_path) if r.name == name), None)
        if row is not None and row.in_use:
            self._say(f"{row.title} is in use: choose another model first, then remove it.")
            return
        try:
            self._say(self.downloads.remove(name))
        except MemDeskError as exc:
            self._say(for_gui(str(exc)))

    def add(self, path: str) -> None:
        try:
            added = self.downloads.add(path)
        except MemDeskError as exc:
            self._say(for_gui(str(exc)))
            return
        self._say(f"Added {', '.join(m.name for m in added)}: select it and press “Use this model”." if added
                  else f"No usable model in {path}.")

    def set_folder(self, path: str) -> None:
        """Downloads go to `path` from now on; what is already downloaded stays where it is."""
        try:
            folder = self.downloads.library.set_folder(Path(path))
        except MemDeskError as exc:
            self._say(for_gui(str(exc)))
            return
        self.downloads.forget_recommendation()
        self._say(f"New downloads go to {folder}. Models downloaded to the old folder stay there, unlisted: "
                  "add them with “Add a model file…”, or move them here.")
        self.refresh()

    def add_known(self) -> None:
        found = known_model_folders()
        if not found:
            self._say("No LM Studio or GPT4All models folder was found on this computer. Use “Add a model file…” "
                      "to add a .gguf from anywhere.")
            return
        names: list[str] = []
        problems: list[str] = []
        for label, folder in found:
            try:
                names += [m.name for m in self.downloads.add(str(folder))]
            except MemDeskError as exc:
                problems.append(f"{label}: {for_gui(str(exc))}")
        said = f"Added {len(names)} model(s) from {', '.join(label for label, _ in found)}." if names else ""
        self._say(" ".join([said, *problems]).strip())

    # ---------------------------------------------------------- download events
    def _progress(self, progress) -> None:
        self._status(self.downloads.status_text())
        page = self._page()
        if page is not None:
            page.show_progress(progress)

    def _finished(self, name: str, model) -> None:
        self._status("")
        if name in self.use_when_done:
            self.use_when_done.discard(name)
            self.use(name, str(model.path))
            self.desktop.window.statusBar().showMessage(f"{name} is downloaded and verified; MemDesk uses it now.",
                                                        15000)
        else:
            self._say(f"{name} is downloaded and verified. Select it and press “Use this model”.")
            self.desktop.window.statusBar().showMessage(
                f"{name} is downloaded; choose it in Settings ▸ Models to use it.", 15000)

    def _failed(self, name: str, message: str) -> None:
        self._status("")
        self.use_when_done.discard(name)
        said = for_gui(message)
        self._say(said)
        self.desktop.window.show_error(f"The download of {name} stopped: {said} The current model keeps "
                                       "answering; Settings ▸ Models resumes the download.")

    def _cancelled(self, name: str) -> None:
        self._status("")
        self.use_when_done.discard(name)
        self._say(f"The download of {name} was cancelled. What was downloaded is kept: Download resumes it.")

    def _status(self, text: str) -> None:
        self.desktop.window.status_line.set_download_status(text)

    def _say(self, message: str) -> None:
        page = self._page()
        if page is not None:
            page.say(message)
        else:
            self.desktop.window.statusBar().showMessage(message, 15000)
