"""The "Learned preferences" page: the preference adapters trained for the model in use,
how each scored at the gate, and which one the chat loads. Switch one on, roll back to
the previous one in one click, switch them off, or ask for a training run now."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.api import Adapter, Memory
from memdesk.ui.messages import for_gui
from memdesk.ui.tasks import TaskRunner

COLUMNS = ("Adapter", "Status", "Trained", "Examples", "Adherence (held out)", "General perplexity", "Size")


def _gate_cells(adapter: Adapter) -> tuple[str, str]:
    gate = adapter.metrics.get("gate")
    if not gate:
        return "—", "—"
    return (f"{gate['adherence_before']:.2f} → {gate['adherence_after']:.2f}",
            f"{gate['ppl_before']:.1f} → {gate['ppl_after']:.1f} ({gate['ppl_change']:+.1%})")


class AdaptersView(QWidget):
    activeChanged = Signal()  # the app reloads the chat model with the new adapter (or none)
    trainRequested = Signal()
    installRequested = Signal()  # the app installs the training component (app/training_install.py)

    def __init__(self, mem: Memory, runner: TaskRunner, base_fingerprint: str, base_name: str,
                 parent: QWidget | None = None, missing: tuple[str, ...] = (), install_note: str = "",
                 installable: bool = False):
        super().__init__(parent)
        self.setObjectName("adaptersView")
        self.registry = mem.adapters
        self.runner = runner
        self.base = base_fingerprint
        self.adapters: list[Adapter] = []
        layout = QVBoxLayout(self)
        intro = QLabel(f"Every night MemDesk can distil your stated preferences and your feedback on replies "
                       f"into a small adapter for <b>{base_name}</b>, so it follows them without spending "
                       "prompt space. A new adapter is switched on only if it follows held-out examples better "
                       "and general text no worse than 10%.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, len(COLUMNS), self, objectName="adaptersTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table)
        self.empty = QLabel("No adapter yet. One is trained in the nightly window once there are a few preferences "
                            "or rated replies; “Train now” does it at once (minutes on a laptop).")
        self.empty.setWordWrap(True)
        layout.addWidget(self.empty)
        row = QHBoxLayout()
        self.activate_button = QPushButton("Switch on", clicked=self.activate_selected)
        self.rollback_button = QPushButton("Roll back", clicked=self.rollback)
        self.rollback_button.setToolTip("Back to the adapter that was active before this one")
        self.off_button = QPushButton("Switch off", clicked=self.switch_off)
        self.train_button = QPushButton("Train now", clicked=lambda: self.trainRequested.emit())
        for button in (self.activate_button, self.rollback_button, self.off_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.train_button)
        layout.addLayout(row)
        self.message = QLabel(objectName="adaptersMessage")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.install_button = QPushButton("Install training component", objectName="installTraining",
                                          clicked=self._install_clicked)
        self.install_progress = QProgressBar(objectName="installProgress")
        self.install_progress.setRange(0, 0)  # pip gives no overall fraction: busy, with its current step below
        install_row = QHBoxLayout()
        install_row.addWidget(self.install_button)
        install_row.addWidget(self.install_progress, 1)
        install_row.addStretch(0)  # the button keeps its size while the bar is hidden
        layout.addLayout(install_row)
        self.install_progress.hide()
        self.missing = tuple(missing)
        self.install_button.setVisible(bool(self.missing) and installable)
        if self.missing:  # an install without the optional training component
            self.train_button.setEnabled(False)
            self.message.setText(
                f"Learning preferences needs MemDesk's optional training component ({', '.join(self.missing)}), "
                "which this installation does not have. Everything else works without it, and adapters you "
                f"already have keep working. {install_note}")
        self.refresh()

    def _install_clicked(self) -> None:
        self.install_button.setEnabled(False)
        self.install_progress.show()
        self.message.setText("Installing the training component…")
        self.installRequested.emit()

    def install_step(self, text: str) -> None:
        self.message.setText(f"Installing the training component…\n{text}")

    def install_finished(self, error: str) -> None:
        """`error` is empty when the component is in place."""
        self.install_progress.hide()
        if error:
            self.install_button.setEnabled(True)
            self.message.setText(for_gui(error))
            return
        self.missing = ()
        self.install_button.hide()
        self.train_button.setEnabled(True)
        self.message.setText("The training component is installed. Adapters are trained in the nightly window, "
                             "or now with “Train now”.")
        self._update_buttons()

    def refresh(self) -> None:
        self.runner.read(lambda: self.registry.list(self.base), self._show, self._failed)

    def _show(self, adapters: list[Adapter]) -> None:
        self.adapters = adapters
        self.table.setRowCount(len(adapters))
        for row, adapter in enumerate(adapters):
            adherence, ppl = _gate_cells(adapter)
            examples = adapter.metrics.get("examples", {})
            cells = (adapter.id[:8], adapter.status, f"{adapter.created_at.astimezone():%d %b %Y %H:%M}",
                     str(examples.get("sft", "—")), adherence, ppl, f"{adapter.size_bytes / 1e6:.1f} MB")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if adapter.status == "active":
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                item.setData(Qt.ItemDataRole.UserRole, adapter.id)
                self.table.setItem(row, column, item)
        self.table.setVisible(bool(adapters))
        self.empty.setVisible(not adapters)
        self._update_buttons()

    def _selected(self) -> Adapter | None:
        rows = self.table.selectionModel().selectedRows()
        return self.adapters[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        chosen = self._selected()
        self.activate_button.setEnabled(chosen is not None and chosen.status in ("candidate", "retired"))
        active = any(a.status == "active" for a in self.adapters)
        self.rollback_button.setEnabled(active)
        self.off_button.setEnabled(active)

    def activate_selected(self) -> None:
        chosen = self._selected()
        if chosen is not None:
            self._change(lambda: self.registry.activate(chosen.id, self.base), f"Adapter {chosen.id[:8]} is on.")

    def rollback(self) -> None:
        self._change(lambda: self.registry.rollback(self.base), "Rolled back.")

    def switch_off(self) -> None:
        self._change(lambda: self.registry.deactivate(self.base), "The chat runs without an adapter.")

    def _change(self, fn, message: str) -> None:
        def done(_result) -> None:
            self.message.setText(message + " The model reloads with it.")
            self.activeChanged.emit()
            self.refresh()

        self.runner.write(fn, done, self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.message.setText(for_gui(str(exc)))
