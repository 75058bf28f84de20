"""The first-run window: shown once on an empty profile, skippable, re-opened from Settings.

Four pages: what MemDesk is (and that nothing leaves this computer); how the vault's key is
kept and what losing a passphrase means; which model to chat with (keep the built-in one,
download the one recommended for this computer while chatting with the built-in one, use a
file already here, or a local server such as Ollama or LM Studio); folders of notes to watch.
The window only collects a `FirstRunChoice`; the app applies it (app/first_run.py).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

KEEP, DOWNLOAD, FILE, SERVER = "embedded", "download", "file", "endpoint"


@dataclass
class FirstRunChoice:
    model: str = KEEP  # KEEP, DOWNLOAD, FILE or SERVER
    download_name: str = ""  # the catalog model to download (DOWNLOAD)
    model_path: str = ""  # a .gguf file or MLX folder (FILE)
    endpoint_url: str = ""  # e.g. http://127.0.0.1:11434 (SERVER)
    folders: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FirstRunFacts:
    """What the window says about this computer and this profile (given by the app)."""
    data_dir: str
    key_storage: str  # "OS keyring (name)" or "passphrase"
    recommended_name: str | None  # a catalog name, None: nothing in the catalog fits
    recommended_text: str  # "Qwen2.5 3B Instruct (2.0 GB): runs on the CPU at reading speed"
    downloaded: bool = False  # the recommended model is already here


def _text(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label


class FirstRunWizard(QWizard):
    chosen = Signal(object)  # FirstRunChoice, on Finish
    skipped = Signal()  # closed or "Skip" pressed: not shown again, the defaults stay

    def __init__(self, facts: FirstRunFacts, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("firstRunWindow")
        self.setWindowTitle("Welcome to MemDesk")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setButtonText(QWizard.WizardButton.CancelButton, "Skip")
        self.setButtonText(QWizard.WizardButton.FinishButton, "Start using MemDesk")
        self.facts = facts
        # The app sets the real check (only servers on this computer); this one only wants an address.
        self.validate_url: Callable[[str], str | None] = lambda url: None if url.strip() else (
            "Type the server's address, e.g. http://127.0.0.1:11434 for Ollama.")
        self.welcome = self._welcome_page()
        self.key = self._key_page()
        self.model_page = self._model_page()
        self.folders_page = self._folders_page()
        for page in (self.welcome, self.key, self.model_page, self.folders_page):
            self.addPage(page)
        self.rejected.connect(self.skipped.emit)
        em = self.fontMetrics().averageCharWidth()
        self.resize(max(self.sizeHint().width(), em * 90), max(self.sizeHint().height(), em * 55))

    # ---------------------------------------------------------------- pages
    def _welcome_page(self) -> QWizardPage:
        page = QWizardPage()
        page.setObjectName("firstRunWelcome")
        page.setTitle("An assistant that remembers you, and keeps it to itself")
        layout = QVBoxLayout(page)
        layout.addWidget(_text(
            "MemDesk chats with you and remembers what you tell it: facts about you and the people in your "
            "life, what you prefer, your notes. Later answers use what it remembers, and you can see, edit "
            "and delete every memory (Memories window, Ctrl+K)."))
        layout.addWidget(_text(
            "<b>Nothing leaves this computer.</b> The chat model runs here, and every memory and chat is kept "
            f"in one encrypted file in <code>{self.facts.data_dir}</code>. MemDesk sends nothing anywhere; it "
            "connects to the internet only when you ask it to download a model."))
        layout.addStretch(1)
        return page

    def _key_page(self) -> QWizardPage:
        page = QWizardPage()
        page.setObjectName("firstRunKey")
        page.setTitle("How your memories are locked")
        layout = QVBoxLayout(page)
        if self.facts.key_storage.startswith("passphrase"):
            said = ("Your memories are encrypted with your passphrase. MemDesk asks for it at every "
                    "start. <b>If you lose it, nobody can open your memories</b> — not MemDesk, not us: there is "
                    "no reset. Keep it in a password manager.")
        else:
            said = (f"Your memories are encrypted with a key kept in your {self.facts.key_storage}, so MemDesk "
                    "opens without asking. That key stays on this computer: <b>a copied data folder cannot be "
                    "opened elsewhere</b>. To move to a new computer, or to be safe from a broken disk, make a "
                    "backup — it has its own passphrase.")
        layout.addWidget(_text(said))
        layout.addWidget(_text("Settings ▸ Privacy & key makes a backup, restores one, and switches between "
                               "a passphrase and the system keyring."))
        layout.addStretch(1)
        return page

    def _model_page(self) -> QWizardPage:
        page = QWizardPage()
        page.setObjectName("firstRunModel")
        page.setTitle("Which model should answer you?")
        self.choice = QButtonGroup(page)
        self.keep = QRadioButton("Keep the built-in tiny model (works now, offline; its answers are basic)")
        facts = self.facts
        if facts.recommended_name:
            verb = "Use" if facts.downloaded else "Download"
            label = f"{verb} the model recommended for this computer:"
        else:
            label = "Download a model: none in the catalog fits this computer"
        self.download = QRadioButton(label)
        self.download_detail = _text(facts.recommended_text if facts.recommended_name else "")
        self.download_detail.setObjectName("firstRunRecommended")
        self.download.setEnabled(bool(facts.recommended_name))
        self.file = QRadioButton("Use a model file I already have (.gguf, or an MLX folder)")
        self.server = QRadioButton("Use Ollama, LM Studio or another model server running on this computer")
        self.path = QLineEdit()
        self.path.setObjectName("firstRunModelPath")
        self.path.setPlaceholderText("/path/to/model.gguf")
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)
        browse.clicked.connect(lambda _checked=False: self._browse_model())
        self.url = QLineEdit()
        self.url.setObjectName("firstRunServer")
        self.url.setPlaceholderText("http://127.0.0.1:11434 (Ollama) · http://127.0.0.1:1234 (LM Studio)")
        layout = QVBoxLayout(page)
        for index, button in enumerate((self.keep, self.download, self.file, self.server)):
            self.choice.addButton(button, index)
            layout.addWidget(button)
            if button is self.download:
                layout.addLayout(self._indent(self.download_detail))
                layout.addLayout(self._indent(_text(
                    "You can chat with the built-in model while it downloads (the status line shows how far it "
                    "is); MemDesk switches to it once the file is verified. Settings ▸ Models lists others.")))
            elif button is self.file:
                row = QHBoxLayout()
                row.addWidget(self.path, 1)
                row.addWidget(browse)
                layout.addLayout(self._indent(row))
            elif button is self.server:
                layout.addLayout(self._indent(self.url))
        (self.download if facts.recommended_name else self.keep).setChecked(True)
        self.problem = _text("")
        self.problem.setObjectName("firstRunProblem")
        layout.addWidget(self.problem)
        layout.addStretch(1)
        self.path.textChanged.connect(lambda _t: self.file.setChecked(True))
        self.url.textChanged.connect(lambda _t: self.server.setChecked(True))
        page.validatePage = self._model_ok  # type: ignore[method-assign]
        return page

    def _folders_page(self) -> QWizardPage:
        page = QWizardPage()
        page.setObjectName("firstRunFolders")
        page.setTitle("Folders of notes (optional)")
        self.folder_list = QListWidget()
        self.folder_list.setObjectName("firstRunFolderList")
        add = QPushButton("Add a folder…")
        add.setAutoDefault(False)
        add.clicked.connect(lambda _checked=False: self._browse_folder())
        remove = QPushButton("Remove")
        remove.setAutoDefault(False)
        remove.clicked.connect(lambda _checked=False: [self.folder_list.takeItem(self.folder_list.row(i))
                                                       for i in self.folder_list.selectedItems()])
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addWidget(_text("MemDesk can read the Markdown and text notes in folders you choose, and keeps up "
                               "with them as they change. Your files are only read, never changed. You can add "
                               "folders later in Settings ▸ Watched folders."))
        layout.addWidget(self.folder_list, 1)
        layout.addLayout(buttons)
        return page

    # ---------------------------------------------------------------- public
    def add_folder(self, path: str) -> bool:
        path = os.path.abspath(os.path.expanduser(path.strip()))
        if not os.path.isdir(path) or path in self.folders():
            return False
        self.folder_list.addItem(path)
        return True

    def folders(self) -> list[str]:
        return [self.folder_list.item(i).text() for i in range(self.folder_list.count())]

    def result_choice(self) -> FirstRunChoice:
        picked = {0: KEEP, 1: DOWNLOAD, 2: FILE, 3: SERVER}[max(0, self.choice.checkedId())]
        return FirstRunChoice(model=picked, download_name=self.facts.recommended_name or "",
                              model_path=self.path.text().strip(), endpoint_url=self.url.text().strip(),
                              folders=self.folders())

    def accept(self) -> None:  # Finish
        self.chosen.emit(self.result_choice())
        super().accept()

    # ---------------------------------------------------------------- private
    def _model_ok(self) -> bool:
        choice = self.result_choice()
        problem = ""
        if choice.model == FILE and not os.path.exists(choice.model_path):
            problem = "Choose the model file (or folder) with Browse…, or pick another option."
        elif choice.model == SERVER:
            problem = self.validate_url(choice.endpoint_url) or ""
        self.problem.setText(problem)
        return not problem

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", os.path.expanduser("~"),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.path.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Watch a folder of notes", os.path.expanduser("~"))
        if path:
            self.add_folder(path)

    @staticmethod
    def _indent(widget_or_layout) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addSpacing(24)
        if isinstance(widget_or_layout, QWidget):
            row.addWidget(widget_or_layout, 1)
        else:
            row.addLayout(widget_or_layout, 1)
        return row

    # ------------------------------------------------------------ smoke test
    def exercise(self) -> None:
        """Visit every page (the model choice is left as it is)."""
        self.restart()
        self._visited = [self.currentPage().objectName()]
        while self.currentId() != self.pageIds()[-1]:
            self.next()
            self._visited.append(self.currentPage().objectName())

    def check_exercised(self) -> None:
        wanted = [self.page(i).objectName() for i in self.pageIds()]
        if getattr(self, "_visited", None) != wanted:
            raise AssertionError(f"first-run pages visited {getattr(self, '_visited', None)}, expected {wanted}")
