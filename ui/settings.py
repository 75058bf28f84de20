"""The Settings window: model, watched folders, privacy & key, scheduler, memories.

The dialog edits a copy of `AppSettings` and emits `settingsChanged(AppSettings)` on OK or
Apply; Cancel discards. It never saves, loads a model or touches the vault: the app owns
persistence (app/settings_store.py), passes what it knows in `SettingsInfo`, checks model
paths through the `validate_model` callable it hands in (ui/ may not import engine.llm;
it gets a path, or "" for the embedded default, and returns None or what to fix),
and runs exports/imports on its runner when `exportRequested`/`importRequested` arrive,
reporting back through `show_exchange_result`.
"Start MemDesk at login" (Scheduler page, ui/settings_login.py) is the one exception to
OK/Apply: the app writes the OS's login entry as soon as it is ticked.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QPixmap
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.errors import MemDeskError
from memdesk.engine.ingestion.watch import FolderState
from memdesk.ui.messages import for_gui
from memdesk.ui.settings_backup import BackupBox
from memdesk.ui.settings_endpoint import EndpointFields
from memdesk.ui.settings_folders import decorate as decorate_folder
from memdesk.ui.settings_layout import FormGrid, hour_combo, hrow, muted, named_page
from memdesk.ui.settings_login import LoginStartBox
from memdesk.ui.settings_model import (
    BACKEND_CHOICES,
    CONTEXT_CHOICES,
    DEFAULT_MODEL_NAME,
    AppSettings,
    SettingsInfo,
    data_dir_problem,
    folder_problem,
    nightly_problem,
    normalise_folder,
)
from memdesk.ui.settings_models import ModelsPage

ModelValidator = Callable[[str], "str | None"]

__all__ = ["AppSettings", "SettingsDialog", "SettingsInfo", "ModelValidator"]


class SettingsDialog(QDialog):
    settingsChanged = Signal(object)  # AppSettings
    exportRequested = Signal(str)  # a path to write a (plaintext) export to
    importRequested = Signal(str)  # a `memdesk export` file to read
    welcomeRequested = Signal()  # open the first-run window again

    def __init__(self, settings: AppSettings, info: SettingsInfo, validate_model: ModelValidator,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("MemDesk Settings")
        self._saved = settings.copy()
        self._info = info
        self._validate_model = validate_model
        self.validator_calls = 0
        self.model_error: str | None = None
        self._visited: set[str] = set()
        self._folder_states: dict[str, FolderState] = {}  # what the watcher reports (set_folder_states)
        self._calls_before_exercise: int | None = None
        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(250)  # validate once typing pauses, not per keystroke
        self._validate_timer.timeout.connect(self.validate_now)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settingsTabs")
        self.model_page = self._model_page()
        self.models = ModelsPage()  # filled by the app (app/gui_models.py)
        self.folders_page = self._folders_page()
        self.privacy_page = self._privacy_page()
        self.scheduler_page = self._scheduler_page()
        self.memories_page = self._memories_page()
        self.tabs.addTab(self.model_page, "Model")
        self.tabs.addTab(self.models, "Models")
        self.tabs.addTab(self.folders_page, "Watched folders")
        self.tabs.addTab(self.privacy_page, "Privacy && key")
        self.tabs.addTab(self.scheduler_page, "Scheduler")
        self.tabs.addTab(self.memories_page, "Memories")
        self.tabs.currentChanged.connect(lambda i: self._visited.add(self.tabs.widget(i).objectName()))
        self._visited.add(self.tabs.currentWidget().objectName())

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Apply
                                        | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.setObjectName("settingsButtons")
        self.buttons.clicked.connect(self._on_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.buttons)

        self._load(settings)
        self.validate_now()
        self._refresh_dirty()
        em = self.fontMetrics().averageCharWidth()
        line = self.fontMetrics().height()
        # Tall enough for the Models page's list, its details and the download row without squeezing.
        self.resize(max(self.sizeHint().width(), em * 126), max(self.sizeHint().height(), line * 42))

    # ------------------------------------------------------------------ pages
    def _model_page(self) -> QWidget:
        page = named_page("modelPage")
        self.model_path = self._line_edit("modelPath", "Embedded default",
                                          "A .gguf file (llama.cpp) or an MLX model folder; empty for the default")
        self.model_path.textChanged.connect(lambda _text: self._validate_timer.start())
        self.backend = QComboBox()
        self.backend.setObjectName("modelBackend")
        self.backend.addItems(BACKEND_CHOICES)
        self.backend.setToolTip("auto: a file runs on llama.cpp, a folder on MLX")
        self.context_profile = QComboBox()
        self.context_profile.setObjectName("contextProfile")
        for value, label in (("auto", "Automatic (by model size)"), ("compact", "Compact (small models)"),
                             ("full", "Full (large models)")):
            self.context_profile.addItem(label, value)
        self.context_profile.setToolTip(
            "Compact gives a small model a few relevant notes right above your message; Full gives a large model "
            "everything that fits, with pinned memories in a prefix that is prepared in the background.")
        self.model_icon = QLabel()
        self.model_icon.setObjectName("modelValidationIcon")
        self.model_validation = self._wrapping_label("modelValidation", selectable=True)
        in_use = self._wrapping_label("modelInUse", selectable=True)
        in_use.setText(self._info.model_in_use or "No model loaded yet.")
        self.endpoint = EndpointFields(page)
        muted(self.endpoint.note)
        form = FormGrid(page)
        form.add("Model runs:", self.endpoint.source)
        first_file_row = form.rows
        form.add("Model file or folder:", hrow(
            self.model_path,
            self._button("Browse file…", "browseModelFile", "Choose a .gguf model file",
                         QStyle.StandardPixmap.SP_FileIcon, self._browse_model_file),
            self._button("Browse folder…", "browseModelFolder", "Choose an MLX model folder",
                         QStyle.StandardPixmap.SP_DirIcon, self._browse_model_folder)))
        form.add("", hrow(self.model_icon, self.model_validation, stretch=1))
        form.add("Backend:", self.backend)
        first_server_row = form.rows
        form.add("Server address:", self.endpoint.url)
        form.add("Model on the server:", hrow(self.endpoint.model, self.endpoint.list_button, stretch=0))
        form.add("", self.endpoint.status)
        form.add("", self.endpoint.note)
        self.endpoint.place(form.grid, range(first_file_row, first_server_row), range(first_server_row, form.rows))
        form.add("Memory layout:", self.context_profile)
        form.add("In use now:", in_use)
        form.add("", self._note("Changes take effect when the model is next loaded. Small GGUF models "
                                "(under 4 GB) keep answers quick on a laptop. Settings ▸ Models downloads one."))
        welcome = QPushButton("Open the welcome window again…")
        welcome.setObjectName("openWelcome")
        welcome.setAutoDefault(False)
        welcome.clicked.connect(lambda _checked=False: self.welcomeRequested.emit())
        welcome_row = hrow(welcome, stretch=None)
        welcome_row.addStretch(1)
        form.add("", welcome_row)
        form.end()
        return page

    def _folders_page(self) -> QWidget:
        page = named_page("foldersPage")
        self.ingest_status = self._wrapping_label("ingestStatus")
        self.folders = QListWidget()
        self.folders.setObjectName("watchedFolders")
        self.folders.setAlternatingRowColors(True)
        self.folders.itemSelectionChanged.connect(self._update_folder_buttons)
        self.folders_empty = self._note("No watched folders yet — click Add… to choose one.")
        self.folders_empty.setObjectName("foldersEmpty")
        self.remove_folder_button = self._button("Remove", "removeFolder",
                                                 "Stop watching the selected folder (its memories stay)",
                                                 QStyle.StandardPixmap.SP_TrashIcon, self.remove_selected_folders)
        self.remove_folder_button.setShortcut("Del")
        buttons = QVBoxLayout()
        buttons.addWidget(self._button("Add…", "addFolder", "Watch another folder",
                                       QStyle.StandardPixmap.SP_DirOpenIcon, self._browse_folder))
        buttons.addWidget(self.remove_folder_button)
        buttons.addStretch(1)
        row = hrow(self.folders)
        row.addLayout(buttons)
        self.folder_message = self._wrapping_label("folderMessage")
        layout = QVBoxLayout(page)
        layout.addWidget(self._note("MemDesk reads the documents in these folders and remembers them, "
                                    "updating as files change. Nothing leaves this computer."))
        layout.addWidget(self.ingest_status)
        layout.addLayout(row, 1)
        layout.addWidget(self.folders_empty)
        layout.addWidget(self.folder_message)
        return page

    def _privacy_page(self) -> QWidget:
        page = named_page("privacyPage")
        key = self._wrapping_label("keyStorage", selectable=True)
        key.setText(self._info.key_storage or "Unknown")
        if self._info.key_storage.lower().startswith("passphrase"):
            key_note = ("The vault key is derived from your passphrase each time MemDesk starts and is never "
                        "written to disk. If you forget the passphrase, the memories cannot be recovered.")
        else:
            key_note = ("A random key is kept in your OS keyring. Back up the keyring together with the data "
                        "folder: the vault cannot be opened without it.")
        current = self._wrapping_label("dataDirInUse", selectable=True)
        current.setText(self._info.data_dir)
        self.data_dir = self._line_edit("dataDir", "Same as now",
                                        "Where MemDesk keeps its encrypted vault from the next start on")
        self.data_dir_message = self._wrapping_label("dataDirMessage")
        form = FormGrid(page)
        form.add("Key storage:", key)
        form.add("", self._note(key_note))
        form.add("Data folder in use:", hrow(current, self._button(
            "Open folder", "openDataDir", "Show the data folder in your file manager",
            QStyle.StandardPixmap.SP_DirOpenIcon, self._open_data_dir)))
        form.add("Data folder:", hrow(self.data_dir, self._button(
            "Browse…", "browseDataDir", "Choose another data folder", QStyle.StandardPixmap.SP_DirIcon,
            self._browse_data_dir)))
        form.add("", self._note("A new data folder takes effect the next time MemDesk starts. The vault is "
                                "not moved: copy the current folder's contents there first to keep your "
                                "memories."))
        form.add(self.data_dir_message)
        form.add("", self._note("Everything stays on this computer: the vault is encrypted and MemDesk "
                                "sends nothing over the network."))
        self.backup = BackupBox(page)
        form.add("Backups:", self.backup)
        form.add("", self._note("A backup holds the whole profile (memories, history, chats, learned "
                                "preferences), encrypted under a passphrase you choose, and restores on any "
                                "computer. Settings are not in it."))
        form.end()
        return page

    def _scheduler_page(self) -> QWidget:
        page = named_page("schedulerPage")
        self.scheduler_enabled = QCheckBox("Prepare the next reply in the background")
        self.scheduler_enabled.setObjectName("schedulerEnabled")
        self.scheduler_enabled.setToolTip("Turns off only the preparation of the next reply; reading facts out of "
                                          "your chats and nightly learning go on either way")
        self.nightly_start = hour_combo("nightlyStart")
        self.nightly_end = hour_combo("nightlyEnd")
        window = hrow(self.nightly_start, QLabel("to"), self.nightly_end, stretch=None)
        window.addStretch(1)
        self.scheduler_message = self._wrapping_label("schedulerMessage")
        self.login_start = LoginStartBox(page)  # the app wires it (app/gui_autostart.py); applies at once
        form = FormGrid(page)
        form.add(self.login_start.checkbox)
        form.add("", self.login_start.note)
        form.add("", self.login_start.error)
        form.add(self.scheduler_enabled)
        form.add("", self._note("Between chats MemDesk fetches the memories your next question will "
                                "likely need and precomputes the model's state, so answers start sooner. "
                                "Unticked, only this stops: replies start a little later, while reading "
                                "facts out of your chats and learning your preferences at night go on."))
        form.add("Nightly window:", window)
        form.add("", self._note("Heavier work, such as learning your stable preferences, runs only in "
                                "this window. It may cross midnight (e.g. 23:00 to 05:00)."))
        form.add(self.scheduler_message)
        form.end()
        return page

    def _memories_page(self) -> QWidget:
        page = named_page("memoriesPage")
        buttons = hrow(
            self._button("Export…", "exportMemories", "Write all memories to a JSON Lines file",
                         QStyle.StandardPixmap.SP_DialogSaveButton, lambda: self.request_export()),
            self._button("Import…", "importMemories", "Read memories from a MemDesk export file",
                         QStyle.StandardPixmap.SP_DialogOpenButton, lambda: self.request_import()), stretch=None)
        buttons.addStretch(1)
        warning = self._wrapping_label("exportWarning")
        warning.setText("An export file is NOT encrypted: it holds your memories in plain text. "
                        "Keep it somewhere safe and delete it when you are done.")
        warning_icon = QLabel()
        warning_icon.setPixmap(self._pixmap(QStyle.StandardPixmap.SP_MessageBoxWarning))
        self.exchange_status = self._wrapping_label("exchangeStatus", selectable=True)
        layout = QVBoxLayout(page)
        layout.addWidget(self._note("An export holds every memory with its history and provenance, in a "
                                    "format other MemOS tools can read. Importing skips memories you already "
                                    "have."))
        layout.addLayout(buttons)
        layout.addLayout(hrow(warning_icon, warning, stretch=1))
        layout.addWidget(self.exchange_status)
        layout.addStretch(1)
        return page

    # ---------------------------------------------------------------- public
    def values(self) -> AppSettings:
        """The settings as currently edited (not yet applied)."""
        folders = [self.folders.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.folders.count())]
        source, url, served = self.endpoint.values()
        return AppSettings(
            model_path=self.model_path.text().strip(), backend=self.backend.currentText(),
            model_source=source, endpoint_url=url, endpoint_model=served,
            context_profile=self.context_profile.currentData() or "auto", watched_folders=folders,
            scheduler_enabled=self.scheduler_enabled.isChecked(),
            nightly_start_hour=self.nightly_start.currentIndex(), nightly_end_hour=self.nightly_end.currentIndex(),
            data_dir=self.data_dir.text().strip(), welcome_done=self._saved.welcome_done)

    @Slot()
    def validate_now(self) -> str | None:
        """Check the model path now (the empty field checks the embedded default); show and return the error."""
        self._validate_timer.stop()
        # "" asks the validator about the embedded default (when the app did not name its path).
        path = self.model_path.text().strip() or self._info.default_model
        self.validator_calls += 1
        try:
            error = self._validate_model(path)
        except MemDeskError as exc:  # a validator may raise instead of returning the message
            error = str(exc)
        self.model_error = error
        if error:
            text, pixmap = for_gui(error), QStyle.StandardPixmap.SP_MessageBoxWarning
        elif self.model_path.text().strip():
            text, pixmap = "This model looks good.", QStyle.StandardPixmap.SP_DialogApplyButton
        else:
            text = f"Using the embedded default model: {self._info.default_model or DEFAULT_MODEL_NAME}"
            pixmap = QStyle.StandardPixmap.SP_MessageBoxInformation
        self.model_validation.setText(text)
        self.model_icon.setPixmap(self._pixmap(pixmap))
        return error

    def add_folder(self, path: str) -> bool:
        """Watch `path`; refused (with a message) when it is not an existing folder or already listed."""
        path = normalise_folder(path)
        problem = folder_problem(path, self.values().watched_folders)
        if problem:
            self._folder_message(problem)
            return False
        self._add_folder_item(path)
        self._folder_message("")
        self.folders.setCurrentRow(self.folders.count() - 1)
        self._refresh_dirty()
        return True

    @Slot()
    def remove_selected_folders(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self._folders_changed()
        self._refresh_dirty()

    def request_export(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export memories", "memdesk-export.jsonl",
                                                  "JSON Lines (*.jsonl);;All files (*)")
        if path:
            self.exchange_status.setText(f"Exporting to {path}…")
            self.exportRequested.emit(path)

    def request_import(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import memories", "",
                                                  "JSON Lines (*.jsonl);;All files (*)")
        if path:
            self.exchange_status.setText(f"Importing {path}…")
            self.importRequested.emit(path)

    @Slot(str)
    def show_exchange_result(self, message: str) -> None:
        """The app reports how an export/import went (or its error message)."""
        self.exchange_status.setText(for_gui(message))

    def model_applied(self, settings: AppSettings) -> None:
        """The app switched the model from outside the Model page (Settings ▸ Models ▸ Use): show
        it there, as already applied, without touching other unapplied edits."""
        self.model_path.setText(settings.model_path)
        self.backend.setCurrentText(settings.backend)
        self.endpoint.load(settings.model_source, settings.endpoint_url, settings.endpoint_model)
        for name in ("model_path", "backend", "model_source", "endpoint_url", "endpoint_model", "welcome_done"):
            setattr(self._saved, name, getattr(settings, name))
        self.validate_now()
        self._refresh_dirty()

    def set_info(self, info: SettingsInfo) -> None:
        """Refresh what the app reports while the dialog is open (e.g. ingestion progress)."""
        self._info = info
        self.ingest_status.setText(info.ingest_status or "Ingestion status is not known yet.")

    def set_folder_states(self, states: list[FolderState]) -> None:
        """What the watcher does with each folder now (the app relays every change)."""
        self._folder_states = {state.folder: state for state in states}
        for row in range(self.folders.count()):
            item = self.folders.item(row)
            path = item.data(Qt.ItemDataRole.UserRole)
            decorate_folder(item, path, self._folder_states.get(path), self.style())

    def folder_state_text(self, path: str) -> str:
        """The state a folder's row shows ("" when the watcher has not reported it)."""
        state = self._folder_states.get(path)
        return state.describe() if state is not None else ""

    def apply(self) -> bool:
        """Emit settingsChanged with the edited values; False (and the reason shown) when one is invalid."""
        problem = self._first_problem()
        if problem is not None:
            page, label, message = problem
            self._say(label, message)
            self.tabs.setCurrentWidget(page)
            return False
        new = self.values()
        self._saved = new.copy()
        self._refresh_dirty()
        self.settingsChanged.emit(new)
        return True

    # --------------------------------------------------------------- private
    def _load(self, settings: AppSettings) -> None:
        self.model_path.setText(settings.model_path)
        if self.backend.findText(settings.backend) < 0:  # e.g. "fake" from a test profile: keep it
            self.backend.addItem(settings.backend)
        self.backend.setCurrentText(settings.backend)
        self.endpoint.load(settings.model_source, settings.endpoint_url, settings.endpoint_model)
        self.context_profile.setCurrentIndex(max(0, CONTEXT_CHOICES.index(settings.context_profile)
                                                 if settings.context_profile in CONTEXT_CHOICES else 0))
        self.folders.clear()
        for folder in settings.watched_folders:
            self._add_folder_item(folder)
        self.scheduler_enabled.setChecked(settings.scheduler_enabled)
        self.nightly_start.setCurrentIndex(settings.nightly_start_hour % 24)
        self.nightly_end.setCurrentIndex(settings.nightly_end_hour % 24)
        self.data_dir.setText(settings.data_dir)
        self.set_info(self._info)
        for label in (self.folder_message, self.data_dir_message, self.scheduler_message):
            self._say(label, "")
        for signal in (self.model_path.textChanged, self.backend.currentTextChanged, self.data_dir.textChanged,
                       self.scheduler_enabled.toggled, self.nightly_start.currentIndexChanged,
                       self.nightly_end.currentIndexChanged, self.context_profile.currentIndexChanged,
                       self.endpoint.source.currentIndexChanged, self.endpoint.url.textChanged,
                       self.endpoint.model.currentTextChanged):
            signal.connect(self._refresh_dirty)
        self._folders_changed()

    def _first_problem(self) -> tuple[QWidget, QLabel, str] | None:
        values = self.values()
        if values.model_source == "file" and self.validate_now():
            return self.model_page, self.model_validation, self.model_error or ""
        if self.endpoint.problem():
            return self.model_page, self.endpoint.status, self.endpoint.status.text()
        for page, label, message in ((self.privacy_page, self.data_dir_message, data_dir_problem(values.data_dir)),
                                     (self.scheduler_page, self.scheduler_message, nightly_problem(values))):
            self._say(label, message or "")
            if message:
                return page, label, message
        return None

    def _on_button(self, button: QAbstractButton) -> None:
        role = self.buttons.standardButton(button)
        if role == QDialogButtonBox.StandardButton.Ok:
            if self.apply():
                self.accept()
        elif role == QDialogButtonBox.StandardButton.Apply:
            self.apply()
        else:
            self.reject()

    def _refresh_dirty(self, *_: object) -> None:
        apply = self.buttons.button(QDialogButtonBox.StandardButton.Apply)
        apply.setEnabled(self.values() != self._saved)

    def _add_folder_item(self, path: str) -> None:
        item = QListWidgetItem(path)
        item.setData(Qt.ItemDataRole.UserRole, path)
        decorate_folder(item, path, self._folder_states.get(path), self.style())
        self.folders.addItem(item)
        self._folders_changed()

    def _folders_changed(self) -> None:
        self.folders_empty.setVisible(self.folders.count() == 0)
        self._update_folder_buttons()

    def _update_folder_buttons(self) -> None:
        self.remove_folder_button.setEnabled(bool(self.folders.selectedItems()))

    def _folder_message(self, message: str) -> None:
        self._say(self.folder_message, message)

    @staticmethod
    def _say(label: QLabel, message: str) -> None:
        """Problem labels take no room until there is something to say."""
        label.setText(message)
        label.setVisible(bool(message))

    def _browse_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", self._start_dir(),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.model_path.setText(path)
            self.validate_now()

    def _browse_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose an MLX model folder", self._start_dir())
        if path:
            self.model_path.setText(path)
            self.validate_now()

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Watch a folder", os.path.expanduser("~"))
        if path:
            self.add_folder(path)

    def _browse_data_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a data folder", self._info.data_dir)
        if path:
            self.data_dir.setText(path)

    def _open_data_dir(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self._info.data_dir))

    def _start_dir(self) -> str:
        current = self.model_path.text().strip()
        return os.path.dirname(current) if current else os.path.expanduser("~")

    def _line_edit(self, name: str, placeholder: str, tip: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.setToolTip(tip)
        edit.setClearButtonEnabled(True)
        return edit

    def _pixmap(self, pixmap: QStyle.StandardPixmap) -> QPixmap:
        size = self.fontMetrics().height()  # icons follow the user's font size
        return self.style().standardIcon(pixmap).pixmap(size, size)

    def _button(self, text: str, name: str, tip: str, pixmap: QStyle.StandardPixmap,
                slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(self.style().standardIcon(pixmap), text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.setAutoDefault(False)  # Enter in a field means OK, not Browse
        button.clicked.connect(lambda _checked=False: slot())
        return button

    def _wrapping_label(self, name: str, selectable: bool = False) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        if selectable:
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def _note(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        muted(label)
        return label

    # ------------------------------------------------------------ smoke test
    def exercise(self) -> None:
        """Open every page and validate the model field (checked by check_exercised)."""
        for index in range(self.tabs.count()):
            self.tabs.setCurrentIndex(index)
        self.tabs.setCurrentIndex(0)
        self._calls_before_exercise = self.validator_calls
        self.validate_now()

    def check_exercised(self) -> None:
        if self._calls_before_exercise is None:
            raise AssertionError("SettingsDialog.exercise() was not called")
        pages = {self.tabs.widget(i).objectName() for i in range(self.tabs.count())}
        if pages - self._visited:
            raise AssertionError(f"settings pages never shown: {sorted(pages - self._visited)}")
        if self.validator_calls <= self._calls_before_exercise:
            raise AssertionError("the model validator did not run")
        if not self.model_validation.text():
            raise AssertionError("the model page shows no validation result")
