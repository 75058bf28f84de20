"""The passphrase prompt shown before the vault opens (when no OS keyring holds its key)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

MIN_LENGTH = 8  # as engine.vault.keys.check_new_passphrase asks of a new passphrase


def passphrase_problem(mode: str, text: str, repeat: str) -> str:
    """What is wrong with a passphrase typed in a dialog ("" when nothing): a new one ("create")
    must be long enough and typed twice alike."""
    if not text:
        return "Enter a passphrase."
    if mode == "create":
        if len(text) < MIN_LENGTH:
            return f"Use at least {MIN_LENGTH} characters."
        if text != repeat:
            return "The two passphrases do not match."
    return ""


class UnlockDialog(QDialog):
    """mode "unlock": one field. mode "create": passphrase twice, with a warning that it cannot be recovered."""

    def __init__(self, mode: str, vault_path: str, error: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.mode = mode
        self.setObjectName("unlockDialog")
        self.setWindowTitle("Unlock MemDesk" if mode == "unlock" else "Protect your memories")
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        if mode == "unlock":
            intro = "Your memories are encrypted. Enter the passphrase to open them."
        else:
            intro = ("No secure system keyring was found, so MemDesk encrypts your memories with a "
                     "passphrase. Choose one you will remember: it cannot be recovered.")
        heading = QLabel(intro)
        heading.setWordWrap(True)
        layout.addWidget(heading)
        where = QLabel(f"<small>{vault_path}</small>")
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(where)
        form = QFormLayout()
        self.passphrase = QLineEdit(echoMode=QLineEdit.EchoMode.Password, objectName="passphrase")
        form.addRow("Passphrase", self.passphrase)
        self.repeat = QLineEdit(echoMode=QLineEdit.EchoMode.Password, objectName="repeat")
        if mode == "create":
            form.addRow("Repeat", self.repeat)
        layout.addLayout(form)
        self.error = QLabel(error, objectName="error")
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        self.error.setVisible(bool(error))
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Open" if mode == "unlock" else "Create vault")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.passphrase.setFocus()

    def problem(self) -> str:
        return passphrase_problem(self.mode, self.passphrase.text(), self.repeat.text())

    def accept(self) -> None:
        problem = self.problem()
        if problem:
            self.error.setText(problem)
            self.error.setVisible(True)
            return
        super().accept()

    def value(self) -> str:
        return self.passphrase.text()
