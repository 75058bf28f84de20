"""Backups from the desktop app (Settings ▸ Privacy & key), as `memdesk backup` does on a terminal.

Creating reads the open vault (one read snapshot) and runs on the runner's read lane. A restore
replaces the profile that is open, which cannot happen under an open vault: the passphrase is
checked first (nothing is written before that), then the app quits its event loop with the
restore pending, `cmd_gui` closes everything, `finish_restore` swaps the profile in, and the
app opens again on the restored vault (app/gui.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from memdesk.engine.api import Memory
from memdesk.engine.vault.backup import RestoreReport, create_backup, read_header, restore_backup, unlock
from memdesk.engine.vault.keys import PASSPHRASE_ENV, PassphraseProvider
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.ui.settings_backup import BackupBox
from memdesk.ui.tasks import TaskRunner


@dataclass(frozen=True)
class PendingRestore:
    path: str
    passphrase: str  # the backup's; checked before the app closed


class Backups:
    def __init__(self, mem: Memory, runner: TaskRunner, on_restore_ready):
        """`on_restore_ready(PendingRestore)`: the passphrase is right and the person confirmed;
        the app closes and restores."""
        self.mem = mem
        self.runner = runner
        self.on_restore_ready = on_restore_ready

    def wire(self, box: BackupBox) -> None:
        box.createRequested.connect(lambda path, secret: self.create(path, secret, box))
        box.restoreChosen.connect(lambda path: self.read(path, box))
        box.restoreRequested.connect(lambda path, secret: self.check(path, secret, box))

    def create(self, path: str, passphrase: str, box: BackupBox) -> None:
        mem = self.mem

        def done(report) -> None:
            box.show_result(f"Backed up {report.tables.get('memories', 0)} memories and everything else in this "
                            f"profile to {report.path} ({report.bytes / 1e6:.1f} MB, encrypted). Keep the backup "
                            "passphrase: without it the backup cannot be restored.")

        self.runner.read(lambda: create_backup(mem, path, passphrase), on_done=done,
                         on_error=lambda exc: box.show_result(f"No backup was made: {exc}", error=True))

    def read(self, path: str, box: BackupBox) -> None:
        """The header says when the backup was made (and refuses a file that is not one)."""
        def done(header) -> None:
            made = header.created_at.astimezone()
            box.confirm_restore(path, f"{made:%d %B %Y at %H:%M}")

        self.runner.read(lambda: read_header(path), on_done=done,
                         on_error=lambda exc: box.show_result(str(exc), error=True))

    def check(self, path: str, passphrase: str, box: BackupBox) -> None:
        """Derive the backup key (Argon2id: off the GUI thread); a wrong passphrase stops here."""
        def done(_key) -> None:
            box.show_result("The passphrase is right. MemDesk closes, restores the backup and opens again…")
            self.on_restore_ready(PendingRestore(path, passphrase))

        self.runner.read(lambda: unlock(read_header(path), passphrase), on_done=done,
                         on_error=lambda exc: box.show_result(str(exc), error=True))


def finish_restore(paths: ProfilePaths, pending: PendingRestore,
                   vault_passphrase: PassphraseProvider) -> RestoreReport:
    """With the vault closed: replace the profile with the backup. The restored vault gets a new
    key, kept as a new vault's would be here (`vault_passphrase` is asked for a passphrase when
    there is no OS keyring). This machine's settings are kept."""
    return restore_backup(Path(pending.path), paths.data_dir, paths.name, pending.passphrase, overwrite=True,
                          vault_passphrase=vault_passphrase)


def restore_message(report: RestoreReport) -> str:
    where = "the OS keyring" if report.key_mode == "keyring" else "your passphrase"
    return (f"Restored {report.tables.get('memories', 0)} memories from the backup made "
            f"{report.created_at.astimezone():%d %B %Y at %H:%M}; its key is kept by {where}.")


def env_or(ask: PassphraseProvider) -> PassphraseProvider:
    """MEMDESK_PASSPHRASE when set (headless), else `ask`."""
    return lambda confirm: os.environ.get(PASSPHRASE_ENV) or ask(confirm)

