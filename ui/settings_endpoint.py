"""Settings ▸ Model: where the chat model runs — a file MemDesk loads, or a server on this computer.

The server rows (address, model, "List models", and why activation memory and learned
preferences are off) live on the Model page's grid next to the file rows; choosing a source
shows one set and hides the other. Like the model-path check, the server is never called from
here: "List models" emits `listRequested(url)`, the app asks the server off the GUI thread and
answers with `show_models` or `show_error`; `validate` (set by the app) checks an address.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QLineEdit, QPushButton, QWidget

from memdesk.engine.errors import MemDeskError
from memdesk.ui.settings_model import MODEL_SOURCES

SOURCE_LABELS = {"file": "In MemDesk: a model file on this computer",
                 "endpoint": "In a local server: Ollama, LM Studio, llama-server, Jan"}
FIRST_LISTED = "(the first model the server lists)"
OFF_NOTE = ("With a server, activation memory (the model's prepared state for your pinned memories, its "
            "KV prefixes) and learned preferences (adapters) are off: both need a model MemDesk runs itself. "
            "Your memories still go into every prompt. Only servers on this computer are allowed.")


def _basic_check(url: str) -> str | None:
    return None if url.strip() else "Enter the server's address, e.g. http://127.0.0.1:11434 (Ollama)."


class EndpointFields(QObject):
    listRequested = Signal(str)  # the address typed; the app lists that server's models
    sourceChanged = Signal(str)  # "file" | "endpoint"

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.validate: Callable[[str], str | None] = _basic_check
        self.source = QComboBox(parent)
        self.source.setObjectName("modelSource")
        for value in MODEL_SOURCES:
            self.source.addItem(SOURCE_LABELS[value], value)
        self.url = QLineEdit(parent)
        self.url.setObjectName("endpointUrl")
        self.url.setPlaceholderText("http://127.0.0.1:11434")
        self.url.setToolTip("Ollama: http://127.0.0.1:11434 · LM Studio: http://127.0.0.1:1234 · "
                            "llama-server: http://127.0.0.1:8080 · Jan: http://127.0.0.1:1337")
        self.url.setClearButtonEnabled(True)
        self.model = QComboBox(parent)
        self.model.setObjectName("endpointModel")
        self.model.setEditable(True)  # a name typed by hand works too (e.g. before the server is started)
        self.model.lineEdit().setPlaceholderText(FIRST_LISTED)
        self.list_button = QPushButton("List models", parent)
        self.list_button.setObjectName("listEndpointModels")
        self.list_button.setToolTip("Ask the server which models it offers")
        self.list_button.setAutoDefault(False)
        self.list_button.clicked.connect(lambda _checked=False: self.request_list())
        self.status = QLabel(parent)
        self.status.setObjectName("endpointStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note = QLabel(OFF_NOTE, parent)
        self.note.setObjectName("endpointNote")
        self.note.setWordWrap(True)
        self.listing = False
        self._grid: QGridLayout | None = None
        self._rows: dict[str, list[int]] = {"file": [], "endpoint": []}
        self.source.currentIndexChanged.connect(lambda _i: self._source_changed())

    # ------------------------------------------------------------ building
    def place(self, grid: QGridLayout, file_rows: Iterable[int], endpoint_rows: Iterable[int]) -> None:
        """Which grid rows belong to each source (the page adds them; this shows one set)."""
        self._grid = grid
        self._rows = {"file": list(file_rows), "endpoint": list(endpoint_rows)}
        self._source_changed()

    # ------------------------------------------------------------ values
    def load(self, source: str, url: str, model: str) -> None:
        self.source.setCurrentIndex(max(0, self.source.findData(source)))
        self.url.setText(url)
        self.model.clear()
        self.model.setEditText(model)
        self._say("")
        self._source_changed()

    def values(self) -> tuple[str, str, str]:
        """(source, url, model) as edited."""
        return self.current_source(), self.url.text().strip(), self.model.currentText().strip()

    def current_source(self) -> str:
        return self.source.currentData() or "file"

    def problem(self) -> str | None:
        """What must be fixed before these values can be applied (only when a server is chosen)."""
        if self.current_source() != "endpoint":
            return None
        problem = self.validate(self.url.text())
        if problem:
            self._say(problem)
        return problem

    # ------------------------------------------------------------ the server
    def request_list(self) -> bool:
        problem = self.validate(self.url.text())
        if problem:
            self._say(problem)
            return False
        self.listing = True
        self.list_button.setEnabled(False)
        self._say(f"Asking {self.url.text().strip()} for its models…")
        self.listRequested.emit(self.url.text().strip())
        return True

    def show_models(self, names: list[str]) -> None:
        self.listing = False
        self.list_button.setEnabled(True)
        typed = self.model.currentText().strip()
        self.model.clear()
        self.model.addItems(names)
        self.model.setEditText(typed if typed in names else (names[0] if names else typed))
        self._say(f"The server offers {len(names)} model{'s' if len(names) != 1 else ''}." if names else
                  "The server answers but offers no model: load or pull one there, then list again.")

    def show_error(self, message: str) -> None:
        self.listing = False
        self.list_button.setEnabled(True)
        self._say(message)

    def show_error_of(self, exc: BaseException) -> None:
        """A listing that failed: MemDesk's own errors say what to do; anything else is named."""
        self.show_error(str(exc) if isinstance(exc, MemDeskError) else
                        f"Listing the models failed ({type(exc).__name__}: {exc}). Check the address.")

    # ------------------------------------------------------------ private
    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text) and self.current_source() == "endpoint")

    def _source_changed(self) -> None:
        source = self.current_source()
        if self._grid is not None:
            for kind, rows in self._rows.items():
                for row in rows:
                    _set_row_visible(self._grid, row, kind == source)
        self.status.setVisible(bool(self.status.text()) and source == "endpoint")
        self.sourceChanged.emit(source)


def _set_row_visible(grid: QGridLayout, row: int, visible: bool) -> None:
    for column in range(grid.columnCount()):
        item = grid.itemAtPosition(row, column)
        if item is None:
            continue
        widgets = [item.widget()] if item.widget() is not None else []
        layout = item.layout()
        if layout is not None:
            widgets += [layout.itemAt(i).widget() for i in range(layout.count()) if layout.itemAt(i).widget()]
        for widget in widgets:
            widget.setVisible(visible)
