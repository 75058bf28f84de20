"""The desktop app's side of the model library: what the Models page lists, and downloads that
run in the background while the person keeps chatting.

One download at a time runs on its own thread (a model is gigabytes; the task runner's lanes
are for short work). Its progress, end and failure reach the GUI thread through Qt signals,
so the Models page, the first-run window and the status line all show the same download.
Cancelling keeps the part file: the next download of the same model resumes from it.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from memdesk.engine.errors import Cancelled, MemDeskError
from memdesk.engine.llm.download import CancelToken, DownloadOptions, DownloadProgress
from memdesk.engine.llm.hardware import Recommendation, assess, detect_hardware, preferred_format, recommend
from memdesk.engine.llm.library import InstalledModel, ModelLibrary
from memdesk.ui.settings_models import EMBEDDED_ROW, ModelRow, describe_progress

log = logging.getLogger(__name__)


class ModelDownloads(QObject):
    progress = Signal(object)  # DownloadProgress
    finished = Signal(str, object)  # catalog name, InstalledModel
    failed = Signal(str, str)  # catalog name, what went wrong and what to do
    cancelled = Signal(str)  # catalog name; the part file is kept for a resume
    changed = Signal()  # the models on this computer changed (a download ended, a removal, an addition)

    def __init__(self, data_dir: Path, parent: QObject | None = None, *, library: ModelLibrary | None = None,
                 options: DownloadOptions = DownloadOptions()):
        super().__init__(parent)
        self.library = library or ModelLibrary(data_dir)
        self.options = options
        self.active: str | None = None  # the catalog name downloading now
        self.last_progress: DownloadProgress | None = None
        self._cancel: CancelToken | None = None
        self._thread: threading.Thread | None = None
        self._recommendation: Recommendation | None = None
        self.progress.connect(self._remember)

    # ---------------------------------------------------------- what there is
    def recommendation(self, refresh: bool = False) -> Recommendation:
        """The hardware verdicts (memory, GPU, free disk) and one default; kept until `refresh`."""
        if self._recommendation is None or refresh:
            hardware = detect_hardware(self.library.folder)
            installed = {m.name for m in self.library.installed() if m.source == "catalog"}
            self._recommendation = recommend(hardware, self.library.catalog, installed)
        return self._recommendation

    def forget_recommendation(self) -> None:
        """The folder (so the free disk) or the models here changed: assess again when next asked."""
        self._recommendation = None

    def rows(self, in_use: str) -> list[ModelRow]:
        """One row per catalog model and per model the person added, and the built-in one first.
        `in_use` is the model path in the settings ("" = the built-in model)."""
        rec = self.recommendation(refresh=True)
        rows = [EMBEDDED_ROW.with_use(in_use == "")]
        for entry in self.library.catalog.entries:
            fmt = preferred_format(entry, rec.hardware)
            installed = self.library.is_installed(entry, fmt)
            verdict = assess(entry, rec.hardware, fmt=fmt, installed=installed)  # a download needs no disk
            path = str(self.library.target(entry, verdict.fmt)) if installed else ""
            partial = self.library.partial(entry, verdict.fmt)
            if installed:
                status = "Downloaded"
            elif self.active == entry.name:
                status = "Downloading…"
            elif partial is not None and verdict.download_bytes:
                status = f"Paused at {partial.done_bytes / verdict.download_bytes:.0%}"
            else:
                status = ""
            rows.append(ModelRow(
                name=entry.name, title=entry.title, size_bytes=verdict.download_bytes, fit=verdict.fit,
                reason=verdict.reason, good_for=entry.good_for, licence=entry.licence, ram_gb=entry.ram_gb,
                context_length=entry.context_length, status=status, path=path, in_use=bool(path) and path == in_use,
                source="catalog", recommended=entry.name == rec.default, fmt=verdict.fmt))
        for model in self.library.installed():
            if model.source != "added":
                continue
            rows.append(ModelRow(
                name=model.name, title=model.name, size_bytes=model.size_bytes, fit="",  # not in the catalog: unknown
                reason=f"added from {model.origin}: {model.path}" if model.present else
                f"not found at {model.path} (a drive that is not connected?)",
                good_for="A model you already had; MemDesk uses it where it is and never copies it.",
                licence="", ram_gb=0.0, context_length=0, status="Added" if model.present else "Missing",
                path=str(model.path) if model.present else "", in_use=str(model.path) == in_use, source="added",
                recommended=False, fmt=model.backend))
        return rows

    def hardware_text(self) -> str:
        rec = self.recommendation()
        default = next((e.title for e in self.library.catalog.entries if e.name == rec.default), None)
        advice = f"Recommended here: {default}, {rec.why}." if default else f"Recommended: {rec.why}."
        return f"This computer: {rec.hardware.summary()}. {advice}"

    # ---------------------------------------------------------- downloads
    def start(self, name: str) -> bool:
        """Start downloading the catalog model `name`; False (and `failed`) when one already runs."""
        if self.active is not None:
            self.failed.emit(name, f"{self.active} is downloading; wait for it or cancel it first.")
            return False
        try:
            entry = self.library.catalog.get(name)
        except MemDeskError as exc:
            self.failed.emit(name, str(exc))
            return False
        fmt = assess(entry, self.recommendation().hardware).fmt
        self.active, self.last_progress = name, None
        self._cancel = CancelToken()
        self._thread = threading.Thread(target=self._run, args=(entry, fmt, self._cancel), daemon=True,
                                        name=f"download-{name}")
        self._thread.start()
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Join the download thread (shutdown, tests); True when none runs any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def shutdown(self) -> None:
        """Quitting: stop the transfer (the part file stays for next time) and wait a moment."""
        self.cancel()
        self.wait(10)

    def _run(self, entry, fmt: str, token: CancelToken) -> None:
        # Runs on the download thread: only signals leave it.
        try:
            model: InstalledModel = self.library.download(entry, fmt, cancel=token, on_progress=self.progress.emit,
                                                          options=self.options)
        except Cancelled:
            self._ended()
            self.cancelled.emit(entry.name)
        except MemDeskError as exc:
            self._ended()
            self.failed.emit(entry.name, str(exc))
        except Exception as exc:  # noqa: BLE001 - a thread must not die silently; say what happened
            log.exception("model download failed")
            self._ended()
            self.failed.emit(entry.name, f"The download of {entry.title} failed unexpectedly ({exc}). "
                                         "Try again; what was downloaded is kept.")
        else:
            self._ended()
            self.finished.emit(entry.name, model)
        self.changed.emit()

    def _ended(self) -> None:
        self.active, self._cancel, self._recommendation = None, None, None

    def _remember(self, progress: DownloadProgress) -> None:
        self.last_progress = progress

    def status_text(self) -> str:
        """For the status line while a download runs ("" when none does)."""
        if self.active is None:
            return ""
        progress = self.last_progress
        return f"Downloading {self.active}: " + (describe_progress(progress) if progress else "starting…")

    # ---------------------------------------------------------- the person's own models
    def remove(self, name: str) -> str:
        """Delete a download or forget an added model; returns what was done, to show."""
        report = self.library.remove(name)
        self._recommendation = None
        self.changed.emit()
        if report.forgotten:
            return f"{report.name} is no longer listed; its files were left where they are."
        return f"Deleted {report.name} ({report.freed_bytes / 1e9:.1f} GB freed)."

    def add(self, path: str) -> list[InstalledModel]:
        added = self.library.add(Path(path))
        self.changed.emit()
        return added
