"""The first-run window in the desktop app: when it is shown, what it says about this computer,
and applying what the person chose.

It opens once, on an empty profile whose settings do not say it was done (a person who already
has memories upgraded from an older MemDesk and needs no welcome), and again from Settings ▸
Model. Finishing or skipping marks it done. A chosen download starts in the background and the
chat model switches to it once verified; the built-in model answers meanwhile.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import shiboken6

from memdesk.app import settings_store
from memdesk.engine.errors import MemDeskError
from memdesk.engine.llm.hardware import assess
from memdesk.ui.first_run import DOWNLOAD, FILE, SERVER, FirstRunChoice, FirstRunFacts, FirstRunWizard

if TYPE_CHECKING:
    from memdesk.app.gui import DesktopApp

log = logging.getLogger(__name__)


def should_show(desktop: DesktopApp) -> bool:
    return not desktop.settings.welcome_done and desktop.mem.count() == 0


def facts(desktop: DesktopApp) -> FirstRunFacts:
    downloads = desktop.downloads
    try:
        rec = downloads.recommendation()
    except MemDeskError as exc:  # the catalog or the disk could not be read: offer the other choices
        log.warning("no model recommendation: %s", exc)
        return FirstRunFacts(str(desktop.paths.data_dir), desktop.key_storage, None, "none could be checked")
    entry = next((e for e in downloads.library.catalog.entries if e.name == rec.default), None)
    if entry is None:
        return FirstRunFacts(str(desktop.paths.data_dir), desktop.key_storage, None, rec.why)
    verdict = assess(entry, rec.hardware)
    installed = downloads.library.is_installed(entry, verdict.fmt)
    size = f"{verdict.download_bytes / 1e9:.1f} GB"
    return FirstRunFacts(str(desktop.paths.data_dir), desktop.key_storage, entry.name,
                         f"{entry.title} ({size}); it {verdict.reason}", downloaded=installed)


def open_window(desktop: DesktopApp) -> FirstRunWizard:
    """Show the first-run window (non-modal: the main window stays usable behind it)."""
    old = desktop.first_run_view
    if old is not None and shiboken6.isValid(old):
        old.raise_()
        old.activateWindow()
        return old
    wizard = FirstRunWizard(facts(desktop), desktop.window)
    wizard.validate_url = settings_store.validate_endpoint_url
    wizard.chosen.connect(lambda choice: apply(desktop, choice))
    wizard.skipped.connect(lambda: mark_done(desktop))
    desktop.first_run_view = wizard
    wizard.show()
    wizard.raise_()
    wizard.activateWindow()
    return wizard


def mark_done(desktop: DesktopApp) -> None:
    if not desktop.settings.welcome_done:
        new = desktop.settings.copy()
        new.welcome_done = True
        desktop.apply_settings(new)


def apply(desktop: DesktopApp, choice: FirstRunChoice) -> None:
    new = desktop.settings.copy()
    new.welcome_done = True
    for folder in choice.folders:
        if folder not in new.watched_folders:
            new.watched_folders.append(folder)
    if choice.model == FILE and choice.model_path:
        new.model_source, new.model_path, new.backend = "file", choice.model_path, "auto"
    elif choice.model == SERVER and choice.endpoint_url:
        new.model_source, new.endpoint_url, new.endpoint_model = "endpoint", choice.endpoint_url, ""
    desktop.apply_settings(new)
    if choice.model == DOWNLOAD and choice.download_name:
        library = desktop.downloads.library
        entry = library.catalog.get(choice.download_name)
        fmt = assess(entry, desktop.downloads.recommendation().hardware).fmt
        if library.is_installed(entry, fmt):
            desktop.model_choices.use(entry.name, str(library.target(entry, fmt)))
        else:
            desktop.model_choices.download(entry.name, use_when_done=True)
