"""One base error for the engine. Every message says what happened and how to fix it.

Each error carries an exit code so the CLI can map failures to distinct statuses
without inspecting message text.
"""
from __future__ import annotations


class MemDeskError(Exception):
    """Base of every error MemDesk raises on purpose."""

    exit_code = 1


class InvalidInputError(MemDeskError):
    """The caller passed something we refuse to store (empty, too large, binary, bad JSON)."""

    exit_code = 2


class WrongKeyError(MemDeskError):
    """The passphrase or stored key does not open this vault."""

    exit_code = 3


class CorruptStoreError(MemDeskError):
    """The vault file is damaged or not a MemDesk vault; it has not been modified."""

    exit_code = 4


class NotFoundError(MemDeskError):
    """No memory with that id (or prefix) exists."""

    exit_code = 5


class KeyUnavailableError(MemDeskError):
    """No secure keyring and no passphrase: we cannot open or create the vault."""

    exit_code = 6


class ModelError(MemDeskError):
    """A model (embedder or chat) is missing or cannot be loaded."""

    exit_code = 7


class StorageFullError(MemDeskError):
    """The disk is full; the write was rolled back and nothing was lost."""

    exit_code = 8


class Preempted(MemDeskError):
    """Background work stopped so that a user's request could run first; it will be retried."""

    exit_code = 9


class VaultBusyError(MemDeskError):
    """Another process kept the vault's write lock for longer than the busy timeout."""

    exit_code = 10


class AccessError(MemDeskError):
    """MemDesk may not write where the vault lives (read-only folder or file, no permission)."""

    exit_code = 11


class DownloadError(MemDeskError):
    """A download could not finish: no network, a proxy refused, the server failed or stalled.

    What was already downloaded is kept beside the target as a `.part` file; running the same
    download again resumes it."""

    exit_code = 12


class IntegrityError(MemDeskError):
    """A downloaded file does not match the checksum its publisher gave; it was deleted unused."""

    exit_code = 13


class Cancelled(MemDeskError):
    """The person cancelled the operation; what was done so far is kept where it can be resumed."""

    exit_code = 130  # what a shell reports for Ctrl-C, the terminal's way to cancel


class StaleVersionError(MemDeskError):
    """An edit was made on an older version of a memory than the one stored now; nothing was saved."""

    exit_code = 15


class EndpointError(ModelError):
    """A model server (Ollama, LM Studio, llama-server...) answered, but not with a reply."""


class EndpointUnavailableError(EndpointError):
    """Nothing answers at the model server's address, or it stopped answering mid-reply."""

    exit_code = 14
