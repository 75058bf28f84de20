"""Settings ▸ Models: the catalog with what fits this computer, downloads with progress, the
models the person already has, and the one in use.

The page never touches the network or the disk itself: it shows `ModelRow`s the app gives it
(app/model_downloads.py) and asks for actions through signals — download, cancel, use, remove,
add a file or a folder. "Use" takes effect at once (like Apply on the Model page), because a
model that has just finished downloading is what the person came here for.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

EMBEDDED = "embedded"


@dataclass(frozen=True)
class ModelRow:
    name: str
    title: str
    size_bytes: int
    fit: str  # "fits well" | "slow" | "will not fit" | "" (unknown)
    reason: str
    good_for: str
    licence: str
    ram_gb: float
    context_length: int
    status: str  # "Downloaded", "Downloading…", "Paused at 40%", "Added", "Missing", ""
    path: str  # what the settings' model path becomes on "Use" ("" for the built-in model)
    in_use: bool
    source: str  # "embedded" | "catalog" | "added"
    recommended: bool
    fmt: str = "gguf"

    @property
    def usable(self) -> bool:
        return self.source == EMBEDDED or bool(self.path)

    def with_use(self, in_use: bool) -> ModelRow:
        return replace(self, in_use=in_use)


EMBEDDED_ROW = ModelRow(
    name=EMBEDDED, title="Built-in SmolLM2 135M", size_bytes=0, fit="fits well",
    reason="comes with MemDesk and runs anywhere, offline", licence="Apache-2.0", ram_gb=0.3, context_length=8192,
    good_for="Trying MemDesk and looking things up in your memories; too small for real conversations.",
    status="Built in", path="", in_use=False, source=EMBEDDED, recommended=False)


def _size(nbytes: float) -> str:
    if nbytes >= 1e9:
        return f"{nbytes / 1e9:.1f} GB"
    return f"{nbytes / 1e6:.0f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.0f} kB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def describe_progress(progress) -> str:
    """"1.2 GB of 4.1 GB · 35 MB/s · 1 min 20 s left" from a DownloadProgress."""
    if progress.phase == "checking":
        return f"checking what an earlier download left ({_size(progress.done_bytes)})…"
    if progress.phase == "verifying":
        return "verifying the file (sha256)…"
    if progress.phase == "done":
        return f"done, {_size(progress.total_bytes)}"
    parts = [f"{_size(progress.done_bytes)} of {_size(progress.total_bytes)}"]
    if progress.rate_bps > 0:
        parts.append(f"{_size(progress.rate_bps)}/s")
    if progress.eta_s is not None:
        parts.append(f"{_duration(progress.eta_s)} left")
    return " · ".join(parts)


class ModelsPage(QWidget):
    downloadRequested = Signal(str)  # catalog name
    cancelRequested = Signal()
    useRequested = Signal(str, str)  # name, path ("" = the built-in model)
    removeRequested = Signal(str)  # name
    addRequested = Signal(str)  # a .gguf file, an MLX folder or a folder of .gguf files
    addKnownRequested = Signal()  # LM Studio and GPT4All folders
    folderRequested = Signal(str)  # downloads go to this folder from now on
    COLUMNS = ("Model", "Size", "On this computer", "Status")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelsPage")
        self.rows: list[ModelRow] = []
        self.downloading: str | None = None
        self.hardware = QLabel()
        self.hardware.setObjectName("modelsHardware")
        self.hardware.setWordWrap(True)
        self.table = QTreeWidget()
        self.table.setObjectName("modelsTable")
        self.table.setHeaderLabels(list(self.COLUMNS))
        self.table.setRootIsDecorated(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for column in range(len(self.COLUMNS) - 1):
            self.table.header().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.header().setStretchLastSection(True)
        self.table.setMinimumHeight(self.fontMetrics().height() * 10)
        self.table.currentItemChanged.connect(lambda *_: self._selection_changed())
        self.table.itemDoubleClicked.connect(lambda *_: self._use())
        self.details = QLabel()
        self.details.setObjectName("modelDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMinimumHeight(self.fontMetrics().height() * 4)  # the longest details, wrapped
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.download_button = self._button("Download", "downloadModel", self._download)
        self.cancel_button = self._button("Cancel download", "cancelDownload", self.cancelRequested.emit)
        self.use_button = self._button("Use this model", "useModel", self._use)
        self.remove_button = self._button("Remove…", "removeModel", self._remove)
        self.add_file_button = self._button("Add a model file…", "addModelFile", self._add_file)
        self.add_known_button = self._button("Find LM Studio / GPT4All models", "addKnownModels",
                                             self.addKnownRequested.emit)
        self.folder = QLabel()
        self.folder.setObjectName("modelsFolder")
        self.folder.setWordWrap(True)
        self.folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_button = self._button("Change…", "changeModelsFolder", self._choose_folder)
        self.progress = QProgressBar()
        self.progress.setObjectName("downloadProgress")
        self.progress.setRange(0, 1000)
        self.progress_text = QLabel()
        self.progress_text.setObjectName("downloadProgressText")
        self.progress_text.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("modelsMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        actions = QHBoxLayout()
        for button in (self.download_button, self.cancel_button, self.use_button, self.remove_button):
            actions.addWidget(button)
        actions.addStretch(1)
        own = QHBoxLayout()
        own.addWidget(self.add_file_button)
        own.addWidget(self.add_known_button)
        own.addStretch(1)
        where = QHBoxLayout()
        where.addWidget(self.folder, 1)
        where.addWidget(self.folder_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hardware)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(actions)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_text)
        layout.addLayout(own)
        layout.addLayout(where)
        layout.addWidget(self.message)
        self._show_progress(False)
        self._selection_changed()

    # ---------------------------------------------------------------- what the app says
    def set_rows(self, rows: list[ModelRow], hardware_text: str, downloading: str | None, folder: str = "") -> None:
        selected = self.selected()
        self.folder.setText(f"Downloads go to {folder}" if folder else "")
        self.folder_button.setEnabled(downloading is None)
        self.rows, self.downloading = list(rows), downloading
        self.hardware.setText(hardware_text)
        self.table.clear()
        for row in rows:
            title = row.title + ("  ★ recommended" if row.recommended else "") + ("  (in use)" if row.in_use else "")
            item = QTreeWidgetItem([title, _size(row.size_bytes) if row.size_bytes else "—", row.fit or "—",
                                    row.status])
            item.setData(0, Qt.ItemDataRole.UserRole, row.name)
            item.setToolTip(0, row.good_for)
            item.setToolTip(2, row.reason)
            self.table.addTopLevelItem(item)
            if selected is not None and row.name == selected.name:
                self.table.setCurrentItem(item)
        if self.table.currentItem() is None and rows:
            wanted = next((i for i, r in enumerate(rows) if r.recommended), 0)
            self.table.setCurrentItem(self.table.topLevelItem(wanted))
        self._show_progress(downloading is not None)
        self._selection_changed()

    def show_progress(self, progress) -> None:
        self._show_progress(True)
        self.progress.setValue(int(progress.fraction * 1000))
        self.progress_text.setText(f"{progress.label}: {describe_progress(progress)}")

    def say(self, message: str) -> None:
        self.message.setText(message)

    def selected(self) -> ModelRow | None:
        item = self.table.currentItem()
        if item is None:
            return None
        name = item.data(0, Qt.ItemDataRole.UserRole)
        return next((row for row in self.rows if row.name == name), None)

    def select(self, name: str) -> bool:
        for index in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(index)
            if item.data(0, Qt.ItemDataRole.UserRole) == name:
                self.table.setCurrentItem(item)
                return True
        return False

    # ---------------------------------------------------------------- private
    def _show_progress(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.progress_text.setVisible(running)
        self.cancel_button.setVisible(running)
        if not running:
            self.progress.setValue(0)
            self.progress_text.setText("")

    def _selection_changed(self) -> None:
        row = self.selected()
        if row is None:
            self.details.setText("Choose a model to see what it is good for.")
            for button in (self.download_button, self.use_button, self.remove_button):
                button.setEnabled(False)
            return
        facts = [row.good_for]
        if row.source == "catalog":
            facts.append(f"Needs about {row.ram_gb:.1f} GB of memory; reads up to {row.context_length:,} tokens; "
                         f"licence {row.licence}.")
        if row.reason:
            facts.append(f"On this computer: {row.fit or 'unknown'}: {row.reason}.")
        self.details.setText("\n".join(facts))
        can_download = (row.source == "catalog" and not row.path and self.downloading is None
                        and row.fit != "will not fit")
        self.download_button.setEnabled(can_download)
        self.download_button.setText("Resume download" if row.status.startswith("Paused") else "Download")
        self.use_button.setEnabled(row.usable and not row.in_use)
        self.remove_button.setEnabled(row.source == "added" or (row.source == "catalog" and (
            bool(row.path) or row.status.startswith("Paused")) and self.downloading != row.name))

    def _download(self) -> None:
        row = self.selected()
        if row is not None:
            self.message.setText("")
            self.downloadRequested.emit(row.name)

    def _use(self) -> None:
        row = self.selected()
        if row is not None and row.usable and not row.in_use:
            self.useRequested.emit(row.name, row.path)

    def _remove(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        row = self.selected()
        if row is None:
            return
        text = (f"Forget {row.title}? Its files stay where they are." if row.source == "added" else
                f"Delete {row.title} ({_size(row.size_bytes)}) from this computer? You can download it again.")
        if QMessageBox.question(self, "Remove model", text) == QMessageBox.StandardButton.Yes:
            self.removeRequested.emit(row.name)

    def _add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", os.path.expanduser("~"),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.addRequested.emit(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Where should downloaded models go?", os.path.expanduser("~"))
        if path:
            self.folderRequested.emit(path)

    def _button(self, text: str, name: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAutoDefault(False)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    # ------------------------------------------------------------ smoke test
    def exercise(self) -> None:
        """Walk every row (the details and buttons follow the selection)."""
        self._walked = 0
        for index in range(self.table.topLevelItemCount()):
            self.table.setCurrentItem(self.table.topLevelItem(index))
            self._walked += 1

    def check_exercised(self) -> None:
        if not self.rows:
            raise AssertionError("the Models page lists no model")
        if not any(row.source == "catalog" for row in self.rows):
            raise AssertionError("the Models page shows no catalog model")
        if getattr(self, "_walked", 0) != len(self.rows):
            raise AssertionError("ModelsPage.exercise() did not walk every row")
        if not self.hardware.text().startswith("This computer:"):
            raise AssertionError("the Models page does not say what this computer can run")
