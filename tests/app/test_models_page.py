"""Settings ▸ Models and the first-run window in the composed app: a catalog model downloaded from
a loopback Hub with progress on the page and the status line, cancelled and resumed, used at
once; the first-run window shown once on an empty profile, its choices applied."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from bench.hub_server import LoopbackHub  # noqa: E402
from memdesk.engine.llm.catalog import parse_catalog  # noqa: E402
from memdesk.engine.llm.download import DownloadOptions  # noqa: E402
from memdesk.engine.llm.hub import Timeouts  # noqa: E402
from memdesk.engine.llm.library import ModelLibrary  # noqa: E402
from memdesk.engine.llm.registry import embedded_model_path  # noqa: E402

REPO, FILE = "org/Tiny-GGUF", "tiny-q4.gguf"
FAST = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=60), retry_backoff_s=0, reserve_bytes=1 << 20)


def tiny_catalog():
    entry = {"name": "tiny", "title": "Tiny Chat", "family": "Test", "params_b": 0.1, "context_length": 8192,
             "ram_gb": 0.5, "licence": "Apache-2.0", "licence_url": "https://example.org/licence",
             "good_for": "tests", "gguf": {"repo": REPO, "file": FILE, "revision": "main", "quant": "Q4_1",
                                           "size_bytes": embedded_model_path().stat().st_size, "sha256": None}}
    return parse_catalog({"format": 1, "version": "test", "models": [entry]}, source="test")


@pytest.fixture
def hub(monkeypatch):
    server = LoopbackHub()
    server.add_file(REPO, FILE, embedded_model_path())
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def models(desktop, hub, tmp_path):
    """The desktop app's downloads on a one-model catalog served by the loopback Hub."""
    desktop.downloads.library = ModelLibrary(tmp_path / "models-data", tiny_catalog())
    desktop.downloads.options = FAST
    desktop.downloads._recommendation = None
    yield desktop
    desktop.downloads.shutdown()


def row(page, name):
    return next(r for r in page.rows if r.name == name)


def test_the_models_page_downloads_shows_progress_and_uses_the_model(qtbot, models):
    dialog = models.settings_dialog()
    qtbot.addWidget(dialog)
    page = dialog.models
    assert [r.name for r in page.rows] == ["embedded", "tiny"]
    assert row(page, "embedded").in_use and row(page, "tiny").recommended
    assert page.hardware.text().startswith("This computer:") and "Tiny Chat" in page.hardware.text()
    assert page.select("tiny") and page.download_button.isEnabled() and not page.use_button.isEnabled()
    seen = []
    models.downloads.progress.connect(lambda p: seen.append(models.window.status_line.download.text()))
    page.download_button.click()
    qtbot.waitUntil(lambda: row(page, "tiny").status == "Downloaded", timeout=60000)
    assert any(text.startswith("Downloading tiny:") for text in seen)  # the status line followed it
    assert not models.window.status_line.download.isVisible() and page.progress.isHidden()
    assert "downloaded and verified" in page.message.text()
    tiny = row(page, "tiny")
    assert tiny.path.endswith(FILE) and page.select("tiny") and page.use_button.isEnabled()
    page.use_button.click()
    assert models.settings.model_path == tiny.path and models.store.load().settings.model_path == tiny.path
    assert dialog.model_path.text() == tiny.path  # the Model page shows it, as applied
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Apply).isEnabled()
    qtbot.waitUntil(lambda: models.chat.ready and str(models.chat.model_path) == tiny.path, timeout=60000)
    assert row(page, "tiny").in_use and not row(page, "embedded").in_use
    models.model_choices.remove("tiny")  # in use: refused with the reason
    assert "in use" in page.message.text() and row(page, "tiny").status == "Downloaded"


def test_a_cancelled_download_keeps_its_part_and_resumes(qtbot, models, hub):
    hub.faults.stall_after, hub.faults.stall_count = 20_000_000, 1
    dialog = models.settings_dialog()
    qtbot.addWidget(dialog)
    page = dialog.models
    page.select("tiny")
    page.download_button.click()
    assert hub.stalled.wait(60)
    qtbot.waitUntil(lambda: not page.cancel_button.isHidden() and "tiny" in page.progress_text.text(), timeout=30000)

    page.cancel_button.click()
    qtbot.waitUntil(lambda: row(page, "tiny").status.startswith("Paused at"), timeout=30000)
    assert "cancelled" in page.message.text() and models.downloads.active is None
    assert page.download_button.text() == "Resume download"
    page.download_button.click()
    qtbot.waitUntil(lambda: row(page, "tiny").status == "Downloaded", timeout=60000)
    assert any(r and r.startswith("bytes=") and not r.startswith("bytes=0-") for r in hub.ranges())


def test_a_download_that_fails_says_why(qtbot, models, hub):
    hub.faults.missing.add(f"{REPO}/{FILE}")
    dialog = models.settings_dialog()
    qtbot.addWidget(dialog)
    dialog.models.select("tiny")
    dialog.models.download_button.click()
    qtbot.waitUntil(lambda: models.downloads.active is None and bool(dialog.models.message.text()), timeout=30000)
    assert "404" in dialog.models.message.text() or "not found" in dialog.models.message.text().lower()
    assert "`memdesk" not in dialog.models.message.text()
    assert row(dialog.models, "tiny").status == ""


def test_the_first_run_window_shows_once_and_applies_what_was_chosen(qtbot, models, tmp_path):
    from memdesk.app import first_run
    from memdesk.ui.first_run import DOWNLOAD

    assert first_run.should_show(models)  # an empty profile, never welcomed
    wizard = first_run.open_window(models)
    qtbot.addWidget(wizard)
    assert wizard.download.isChecked() and "Tiny Chat" in wizard.download_detail.text()
    notes = tmp_path / "notes"
    notes.mkdir()
    assert wizard.add_folder(str(notes)) and not wizard.add_folder(str(tmp_path / "missing"))
    wizard.exercise()
    wizard.check_exercised()
    assert wizard.result_choice().model == DOWNLOAD
    wizard.accept()  # Finish
    assert models.settings.welcome_done and models.store.load().settings.welcome_done
    assert str(notes) in models.settings.watched_folders
    # The chosen model downloads in the background and is used once verified; chat works meanwhile.
    assert models.downloads.active == "tiny"
    qtbot.waitUntil(lambda: models.settings.model_path.endswith(FILE), timeout=60000)
    qtbot.waitUntil(lambda: models.chat.ready and str(models.chat.model_path).endswith(FILE), timeout=60000)
    assert not first_run.should_show(models)


def test_skipping_the_first_run_window_marks_it_done_and_settings_keep_it(qtbot, models):
    from memdesk.app import first_run

    wizard = first_run.open_window(models)
    qtbot.addWidget(wizard)
    wizard.reject()  # Skip
    assert models.settings.welcome_done
    dialog = models.settings_dialog()  # applying other settings must not bring the window back
    qtbot.addWidget(dialog)
    dialog.scheduler_enabled.setChecked(not dialog.scheduler_enabled.isChecked())
    assert dialog.apply()
    assert models.settings.welcome_done and models.store.load().settings.welcome_done


def test_the_first_run_window_checks_a_server_address(qtbot, models):
    from memdesk.app import first_run

    wizard = first_run.open_window(models)
    qtbot.addWidget(wizard)
    wizard.next()
    wizard.next()
    wizard.url.setText("http://10.0.0.9:11434")
    assert wizard.server.isChecked()
    wizard.next()
    assert wizard.currentPage() is wizard.model_page and "this computer" in wizard.problem.text()
    wizard.url.setText("http://127.0.0.1:11434")
    wizard.next()
    assert wizard.currentPage() is wizard.folders_page
    wizard.accept()
    assert models.settings.model_source == "endpoint" and models.settings.endpoint_url == "http://127.0.0.1:11434"


def test_downloads_go_to_the_folder_chosen_on_the_page(qtbot, models, tmp_path):
    dialog = models.settings_dialog()
    qtbot.addWidget(dialog)
    page = dialog.models
    chosen = tmp_path / "big-disk" / "models"
    page.folderRequested.emit(str(chosen))
    assert page.folder.text() == f"Downloads go to {chosen}" and "New downloads go to" in page.message.text()
    page.select("tiny")
    page.download_button.click()
    qtbot.waitUntil(lambda: row(page, "tiny").status == "Downloaded", timeout=60000)
    assert row(page, "tiny").path == str(chosen / "tiny" / FILE)
