"""The Settings dialog: shows the values, validates inline, refuses bad input, emits edits on OK."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QDialogButtonBox, QFileDialog  # noqa: E402

from memdesk.engine.errors import ModelError  # noqa: E402
from memdesk.ui.settings import AppSettings, SettingsDialog, SettingsInfo  # noqa: E402

BAD_MODEL = "is not a GGUF model (it does not start with 'GGUF'); choose a .gguf file."


def fake_validator(calls: list[str]):
    """Like the app's: "" (the embedded default) and .gguf files are fine, unless named missing."""
    def validate(path: str) -> str | None:
        calls.append(path)
        if path == "" or path.endswith(".gguf") and not path.endswith("missing.gguf"):
            return None
        return f"{path} {BAD_MODEL}"
    return validate


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "notes", tmp_path / "papers"
    a.mkdir()
    b.mkdir()
    return a, b


@pytest.fixture
def make_dialog(qtbot, tmp_path):
    def make(settings: AppSettings, calls: list[str] | None = None, key: str = "passphrase") -> SettingsDialog:
        info = SettingsInfo(key_storage=key, data_dir=str(tmp_path / "data"),
                            ingest_status="Watching 1 folder · 12 files indexed",
                            model_in_use="/models/smollm2.gguf", default_model="/models/smollm2.gguf")
        dialog = SettingsDialog(settings, info, fake_validator(calls if calls is not None else []))
        qtbot.addWidget(dialog)
        return dialog
    return make


def test_the_dialog_shows_the_values(make_dialog, folders, tmp_path):
    missing = str(tmp_path / "unplugged")
    settings = AppSettings(model_path="/models/qwen.gguf", backend="llama.cpp",
                           watched_folders=[str(folders[0]), missing], scheduler_enabled=False,
                           nightly_start_hour=23, nightly_end_hour=4, data_dir="/srv/memdesk")
    dialog = make_dialog(settings, key="OS keyring (SecretService Keyring)")
    assert dialog.model_path.text() == "/models/qwen.gguf" and dialog.backend.currentText() == "llama.cpp"
    assert dialog.model_validation.text() == "This model looks good."
    assert [dialog.folders.item(i).text() for i in range(dialog.folders.count())] == \
        [str(folders[0]), f"{missing}  (missing)"]
    assert "no longer exists" in dialog.folders.item(1).toolTip()
    assert dialog.ingest_status.text() == "Watching 1 folder · 12 files indexed"
    # Unticked, only the preparation of the next reply stops: nightly learning keeps its window.
    assert not dialog.scheduler_enabled.isChecked() and dialog.nightly_start.isEnabled()
    assert dialog.scheduler_enabled.text() == "Prepare the next reply in the background"
    assert "nightly learning go on" in dialog.scheduler_enabled.toolTip()
    assert dialog.nightly_start.currentText() == "23:00" and dialog.nightly_end.currentText() == "04:00"
    assert dialog.data_dir.text() == "/srv/memdesk"
    assert dialog.findChild(type(dialog.model_validation), "keyStorage").text() == "OS keyring (SecretService Keyring)"
    assert dialog.findChild(type(dialog.model_validation), "dataDirInUse").text() == str(tmp_path / "data")
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == \
        ["Model", "Models", "Watched folders", "Privacy && key", "Scheduler", "Memories"]
    assert dialog.values() == settings
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Apply).isEnabled()  # nothing changed yet


def test_an_empty_model_field_shows_and_checks_the_embedded_default(qtbot, make_dialog):
    calls: list[str] = []
    dialog = make_dialog(AppSettings(), calls)
    assert calls == ["/models/smollm2.gguf"]
    assert "embedded default" in dialog.model_validation.text() and "smollm2" in dialog.model_validation.text()
    # Without the default's path the validator is asked about "" (the embedded default).
    unnamed: list[str] = []
    bare = SettingsDialog(AppSettings(), SettingsInfo("passphrase", "/data", "", ""), fake_validator(unnamed))
    qtbot.addWidget(bare)
    assert unnamed == [""] and "SmolLM2" in bare.model_validation.text()


def test_a_bad_model_path_shows_the_validator_message_and_blocks_ok(qtbot, make_dialog):
    calls: list[str] = []
    dialog = make_dialog(AppSettings(), calls)
    dialog.show()
    dialog.tabs.setCurrentIndex(2)
    qtbot.keyClicks(dialog.model_path, "/tmp/notes.txt")
    # Validation follows typing (debounced), without pressing anything.
    qtbot.waitUntil(lambda: BAD_MODEL in dialog.model_validation.text(), timeout=3000)
    assert calls[-1] == "/tmp/notes.txt"
    with qtbot.assertNotEmitted(dialog.settingsChanged):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.isVisible() and dialog.tabs.currentWidget() is dialog.model_page
    assert dialog.model_error and dialog.model_error.startswith("/tmp/notes.txt")

    dialog.model_path.setText("/models/good.gguf")
    assert dialog.validate_now() is None and dialog.model_validation.text() == "This model looks good."


def test_a_validator_that_raises_is_shown_too(make_dialog, qtbot):
    info = SettingsInfo("passphrase", "/data", "", "")

    def raising(path: str) -> str | None:
        raise ModelError(f"The model file {path} does not exist. Choose a GGUF file in Settings.")

    dialog = SettingsDialog(AppSettings(model_path="/nope.gguf"), info, raising)
    qtbot.addWidget(dialog)
    assert "does not exist" in dialog.model_validation.text()


def test_adding_a_folder_that_does_not_exist_is_refused(make_dialog, folders, tmp_path, monkeypatch):
    dialog = make_dialog(AppSettings())
    assert not dialog.folders_empty.isHidden()  # the empty state (its tab is not current)
    assert not dialog.add_folder(str(tmp_path / "nowhere"))
    assert "not an existing folder" in dialog.folder_message.text()
    file_path = tmp_path / "a-file.txt"
    file_path.write_text("x")
    assert not dialog.add_folder(str(file_path))
    assert dialog.folders.count() == 0

    # Add… goes through the folder picker.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folders[0]))
    dialog.findChild(type(dialog.remove_folder_button), "addFolder").click()
    assert dialog.values().watched_folders == [str(folders[0])] and dialog.folder_message.text() == ""
    assert dialog.folders_empty.isHidden()
    assert not dialog.add_folder(str(folders[0])) and "already watched" in dialog.folder_message.text()


def test_ok_emits_the_edited_values_and_cancel_discards(qtbot, make_dialog, folders):
    dialog = make_dialog(AppSettings(watched_folders=[str(folders[0])]))
    dialog.model_path.setText("/models/qwen2.5-1.5b.gguf")
    dialog.backend.setCurrentText("llama.cpp")
    assert dialog.add_folder(str(folders[1]))
    dialog.folders.setCurrentRow(0)
    dialog.remove_folder_button.click()
    dialog.scheduler_enabled.setChecked(False)
    dialog.nightly_start.setCurrentIndex(22)
    dialog.nightly_end.setCurrentIndex(6)
    dialog.data_dir.setText("/srv/memdesk")
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Apply).isEnabled()
    with qtbot.waitSignal(dialog.settingsChanged, timeout=1000) as changed:
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert changed.args[0] == AppSettings(
        model_path="/models/qwen2.5-1.5b.gguf", backend="llama.cpp", watched_folders=[str(folders[1])],
        scheduler_enabled=False, nightly_start_hour=22, nightly_end_hour=6, data_dir="/srv/memdesk")
    assert dialog.result() == dialog.DialogCode.Accepted

    other = make_dialog(AppSettings())
    other.model_path.setText("/models/other.gguf")
    with qtbot.assertNotEmitted(other.settingsChanged):
        other.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    assert other.result() == other.DialogCode.Rejected


def test_an_empty_nightly_window_and_a_file_as_data_folder_are_refused(qtbot, make_dialog, tmp_path):
    dialog = make_dialog(AppSettings())
    dialog.nightly_end.setCurrentIndex(dialog.nightly_start.currentIndex())
    with qtbot.assertNotEmitted(dialog.settingsChanged):
        assert not dialog.apply()
    assert dialog.tabs.currentWidget() is dialog.scheduler_page and "empty" in dialog.scheduler_message.text()
    dialog.nightly_end.setCurrentIndex(5)
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    dialog.data_dir.setText(str(a_file))
    assert not dialog.apply() and dialog.tabs.currentWidget() is dialog.privacy_page
    assert "is a file" in dialog.data_dir_message.text()
    dialog.data_dir.setText(str(tmp_path / "new-data"))  # not there yet is fine: created at next start
    with qtbot.waitSignal(dialog.settingsChanged, timeout=1000):
        assert dialog.apply()
    assert dialog.scheduler_message.text() == "" and dialog.data_dir_message.text() == ""


def test_export_and_import_requests(qtbot, make_dialog, monkeypatch, tmp_path):
    dialog = make_dialog(AppSettings())
    target = str(tmp_path / "backup.jsonl")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (target, "JSON Lines (*.jsonl)"))
    with qtbot.waitSignal(dialog.exportRequested, timeout=1000) as exported:
        dialog.findChild(type(dialog.remove_folder_button), "exportMemories").click()
    assert exported.args == [target] and "Exporting" in dialog.exchange_status.text()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))  # the user cancelled
    with qtbot.assertNotEmitted(dialog.importRequested):
        dialog.findChild(type(dialog.remove_folder_button), "importMemories").click()
    with qtbot.waitSignal(dialog.importRequested, timeout=1000) as imported:
        dialog.request_import(target)
    assert imported.args == [target]
    dialog.show_exchange_result("Imported 3 memories, skipped 1.")
    assert dialog.exchange_status.text() == "Imported 3 memories, skipped 1."


def test_exercise_and_check(make_dialog):
    calls: list[str] = []
    dialog = make_dialog(AppSettings(model_path="/models/x.gguf"), calls)
    with pytest.raises(AssertionError, match="not called"):
        dialog.check_exercised()
    dialog.exercise()
    dialog.check_exercised()
    assert calls[-1] == "/models/x.gguf"
