"""Settings ▸ Privacy & key ▸ Backups: make an encrypted backup of the whole profile, or restore one.

The box only asks (file, passphrase, confirmation) and says how it went; the app does the
work on its runner (engine.vault.backup) and answers with `show_result`. A restore replaces the
open profile, so the app closes the vault, restores and opens again: the box says so first.
"""
from __future__ import annotations

from datetime import date

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from memdesk.ui.messages import for_gui
from memdesk.ui.unlock import passphrase_problem

RESTORE_WARNING = ("Restoring replaces every memory, chat and learned preference in this profile with the "
                   "backup's: what is here now and not in the backup is lost. MemDesk closes, restores the "
                   "backup and opens again.")
ERROR_COLOR = "#a61b1b"


class BackupPassphraseDialog(QDialog):
    """mode "create": a new passphrase for the backup, twice. mode "restore": the backup's passphrase."""

    def __init__(self, mode: str, detail: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.mode = mode
        self.setObjectName("backupPassphraseDialog")
        self.setWindowTitle("Backup passphrase")
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        intro = ("Choose a passphrase for this backup. It is needed to restore it, on this computer or "
                 "another, and cannot be recovered: keep it somewhere safe." if mode == "create" else
                 "Enter the passphrase chosen when this backup was made (not necessarily the vault's).")
        text = QLabel(intro + (f"\n\n{detail}" if detail else ""), wordWrap=True)
        layout.addWidget(text)
        form = QFormLayout()
        self.passphrase = QLineEdit(echoMode=QLineEdit.EchoMode.Password, objectName="backupPassphrase")
        form.addRow("Passphrase", self.passphrase)
        self.repeat = QLineEdit(echoMode=QLineEdit.EchoMode.Password, objectName="backupRepeat")
        if mode == "create":
            form.addRow("Repeat", self.repeat)
        layout.addLayout(form)
        self.error = QLabel(objectName="backupPassphraseError", wordWrap=True)
        self.error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText(
            "Create backup" if mode == "create" else "Restore and reopen")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def problem(self) -> str:
        return passphrase_problem(self.mode, self.passphrase.text(), self.repeat.text())

    def accept(self) -> None:
        problem = self.problem()
        if problem:
            self.error.setText(problem)
            self.error.show()
            return
        super().accept()

    def value(self) -> str:
        return self.passphrase.text()


class BackupBox(QWidget):
    createRequested = Signal(str, str)  # file, backup passphrase
    restoreChosen = Signal(str)  # a backup file to restore: the app reads its header first
    restoreRequested = Signal(str, str)  # file, backup passphrase (the person confirmed the restore)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("backupBox")
        style = self.style()
        self.create_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton),
                                         "Create backup…", objectName="createBackup")
        self.create_button.setToolTip("Write the whole profile to one encrypted file, restorable on any computer")
        self.create_button.clicked.connect(lambda _checked=False: self.request_create())
        self.restore_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton),
                                          "Restore backup…", objectName="restoreBackup")
        self.restore_button.setToolTip("Replace this profile with a backup")
        self.restore_button.clicked.connect(lambda _checked=False: self.request_restore())
        for button in (self.create_button, self.restore_button):
            button.setAutoDefault(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.create_button)
        row.addWidget(self.restore_button)
        row.addStretch(1)
        self.status = QLabel(objectName="backupStatus", wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    # ------------------------------------------------------------ asking
    def request_create(self, path: str | None = None, passphrase: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Create backup", f"memdesk-{date.today():%Y-%m-%d}.backup",
                                                  "MemDesk backups (*.backup);;All files (*)")
        if not path:
            return
        if passphrase is None:
            passphrase = self._ask("create")
        if passphrase:
            self.set_busy(f"Creating the backup {path}…")
            self.createRequested.emit(path, passphrase)

    def request_restore(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Restore backup", "",
                                                  "MemDesk backups (*.backup);;All files (*)")
        if path:
            self.set_busy(f"Reading {path}…")
            self.restoreChosen.emit(path)

    def confirm_restore(self, path: str, made: str, passphrase: str | None = None) -> None:
        """The app read the backup's header: ask its passphrase, saying what a restore does."""
        self.show_result("")
        if passphrase is None:
            passphrase = self._ask("restore", f"{path}\nBackup made {made}.\n\n{RESTORE_WARNING}")
        if passphrase:
            self.set_busy("Checking the backup passphrase…")
            self.restoreRequested.emit(path, passphrase)

    def _ask(self, mode: str, detail: str = "") -> str:
        dialog = BackupPassphraseDialog(mode, detail, self)
        try:
            return dialog.value() if dialog.exec() == QDialog.DialogCode.Accepted else ""
        finally:
            dialog.deleteLater()

    # ------------------------------------------------------------ answers from the app
    def set_busy(self, text: str) -> None:
        self.create_button.setEnabled(False)
        self.restore_button.setEnabled(False)
        self.status.setStyleSheet("")
        self.status.setText(text)
        self.status.show()

    def show_result(self, text: str, error: bool = False) -> None:
        self.create_button.setEnabled(True)
        self.restore_button.setEnabled(True)
        self.status.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
        self.status.setText(for_gui(text))
        self.status.setVisible(bool(text))
