"""Loading and saving the desktop app's settings (settings.json in the profile folder).

- Atomic: written to a temporary file, flushed, then os.replace()d over the old one, so a
  crash or full disk leaves either the old or the new file, never half of one.
- Forgiving: a corrupt or unreadable file never stops MemDesk from starting. It is kept as
  settings.json.bad for the user to inspect, the defaults are used, and `LoadedSettings.warning`
  says what happened (the app shows it once). A single bad value falls back to its default.
- Watched folders that no longer exist are kept (a drive may be unplugged) but listed in
  `LoadedSettings.missing_folders` so the app can say so and ingestion can skip them.

Where the file lives: the "home" data folder (--data-dir, else $MEMDESK_DATA_DIR, else the
platform's folder) under profiles/<name>/. When the user picks another data folder in
Settings, the file stays at home and points there; `effective_data_dir` follows the pointer
at the next start (an explicit --data-dir always wins and is never redirected).
"""
from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memdesk.engine.errors import MemDeskError, StorageFullError
from memdesk.engine.llm.registry import BACKENDS
from memdesk.engine.vault.paths import ProfilePaths, data_dir
from memdesk.engine.vault.private_files import make_private_dir, write_private
from memdesk.ui.settings_model import CONTEXT_CHOICES, MODEL_SOURCES, AppSettings

if TYPE_CHECKING:
    from memdesk.engine.llm.endpoint import EndpointConfig

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
FORMAT = 1


@dataclass
class LoadedSettings:
    settings: AppSettings
    warning: str | None = None  # the file was unreadable/corrupt or held bad values
    missing_folders: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """One line per problem, for the main window's status area."""
        out = [self.warning] if self.warning else []
        out += [f"The watched folder {folder} no longer exists; it is skipped until it is back "
                "(or remove it in Settings ▸ Watched folders)." for folder in self.missing_folders]
        return out


class SettingsStore:
    """settings.json in one profile folder."""

    def __init__(self, profile_root: Path | ProfilePaths):
        root = profile_root.root if isinstance(profile_root, ProfilePaths) else Path(profile_root)
        self.path = root / SETTINGS_FILE

    @property
    def bad_path(self) -> Path:
        return self.path.with_name(SETTINGS_FILE + ".bad")

    def load(self) -> LoadedSettings:
        if not self.path.exists():
            return LoadedSettings(AppSettings())  # first start: defaults, nothing to report
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("the file does not hold a JSON object")
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return LoadedSettings(AppSettings(), warning=self._set_aside(exc))
        settings, bad = _from_json(data)
        warning = None
        if bad:
            warning = (f"Some settings in {self.path} were invalid ({', '.join(bad)}) and were reset to their "
                       "defaults. Check them in Settings.")
        missing = [folder for folder in settings.watched_folders if not os.path.isdir(folder)]
        return LoadedSettings(settings, warning, missing)

    def save(self, settings: AppSettings) -> Path:
        """Write atomically; a failure leaves the previous file untouched and says what to do."""
        payload = json.dumps({"format": FORMAT, **_to_json(settings)}, indent=2, ensure_ascii=False) + "\n"
        try:
            # 0700 folder, 0600 file (watched folders and the data folder say where a person keeps
            # things), replaced whole through an unpredictable temporary name, fsynced.
            make_private_dir(self.path.parent)
            write_private(self.path, payload.encode("utf-8"))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StorageFullError(f"The disk is full, so the settings were not saved to {self.path}. "
                                       "Free some space and press Apply again.") from exc
            raise MemDeskError(f"Could not save the settings to {self.path} ({exc.strerror or exc}). "
                               "Check that the folder is writable, then press Apply again.") from exc
        return self.path

    def _set_aside(self, exc: Exception) -> str:
        """Keep the damaged file as settings.json.bad (replacing an older one) and explain."""
        try:
            os.replace(self.path, self.bad_path)
            kept = f"it was kept as {self.bad_path}"
        except OSError as move_error:
            kept = f"it could not be moved aside ({move_error.strerror or move_error})"
        log.warning("settings file %s unreadable: %s", self.path, exc)
        return (f"The settings file {self.path} could not be read ({exc}); {kept}. MemDesk started with the "
                "default settings: set them again in Settings.")


def load(paths: Path | ProfilePaths) -> tuple[AppSettings, str | None]:
    """Shorthand for the app: the settings and one message to show once (None when all is well)."""
    loaded = SettingsStore(paths).load()
    return loaded.settings, " ".join(loaded.messages) or None


def save(paths: Path | ProfilePaths, settings: AppSettings) -> Path:
    return SettingsStore(paths).save(settings)


def effective_data_dir(explicit: str | os.PathLike | None = None,
                       profile: str = "default") -> tuple[Path, SettingsStore, LoadedSettings]:
    """The data folder to open, the store that holds this profile's settings, and those settings."""
    home = data_dir(explicit)
    store = SettingsStore(ProfilePaths.for_profile(home, profile))
    loaded = store.load()
    chosen = loaded.settings.data_dir.strip()
    if explicit or not chosen:
        return home, store, loaded
    return Path(chosen).expanduser(), store, loaded


def describe_key_storage(paths: ProfilePaths) -> str:
    """How the vault key is kept, read from the key sidecar: "OS keyring (name)" or "passphrase".

    Reads a small file (and asks the keyring backend its name): call it off the GUI thread
    or once at start-up.
    """
    from memdesk.engine.vault.keys import KeyManager, secure_keyring

    manager = KeyManager(paths.key_sidecar)
    if not manager.exists():
        return "not set up yet (chosen when the vault is created)"
    try:
        mode = manager.info().mode
    except MemDeskError as exc:
        return f"unknown: {exc}"
    if mode != "keyring":
        return "passphrase"
    backend = secure_keyring()
    if backend is None:
        return "OS keyring (not reachable now: unlock it)"
    chained = getattr(backend, "backends", None)  # keyring's ChainerBackend: name the first real one
    name = getattr(chained[0] if chained else backend, "name", type(backend).__name__)
    return f"OS keyring ({name})"


def validate_model_path(path: str) -> str | None:
    """A validator for the Settings dialog: None when the model can be loaded, else what to fix.

    "" means the embedded default. Cheap enough for the GUI thread (a stat and a 4-byte
    header read), so the dialog calls it as the user types.
    """
    from memdesk.engine.errors import ModelError
    from memdesk.engine.llm.registry import check_model_path, default_model_path

    try:
        check_model_path(Path(path) if path.strip() else default_model_path())
    except ModelError as exc:
        return str(exc)
    return None


def validate_endpoint_url(url: str) -> str | None:
    """A validator for the Settings dialog: None when `url` can be a local model server's address,
    else what to fix. No network: whether a server answers there is what "List models" shows."""
    from memdesk.engine.errors import InvalidInputError
    from memdesk.engine.llm.endpoint import normalise_url

    try:
        normalise_url(url)
    except InvalidInputError as exc:
        return str(exc)
    return None


def endpoint_of(settings: AppSettings) -> EndpointConfig | None:
    """The server chosen in Settings, or None when the model runs in MemDesk (a file)."""
    from memdesk.engine.llm.endpoint import EndpointConfig

    if settings.model_source != "endpoint" or not settings.endpoint_url.strip():
        return None
    return EndpointConfig(settings.endpoint_url.strip(), settings.endpoint_model.strip())


# ------------------------------------------------------------------ JSON
def _to_json(settings: AppSettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(AppSettings)}


def _from_json(data: dict[str, Any]) -> tuple[AppSettings, list[str]]:
    """Known keys of the right type; anything else falls back to its default (listed in `bad`)."""
    defaults = AppSettings()
    values: dict[str, Any] = {}
    bad: list[str] = []
    for f in fields(AppSettings):
        if f.name not in data:
            continue
        value = data[f.name]
        if _valid(f.name, value):
            values[f.name] = list(value) if isinstance(value, list) else value
        else:
            bad.append(f.name)
    settings = AppSettings(**{**_to_json(defaults), **values})
    settings.watched_folders = list(dict.fromkeys(settings.watched_folders))  # drop repeats, keep order
    return settings, bad


def _valid(name: str, value: Any) -> bool:
    if name in ("model_path", "data_dir"):
        return isinstance(value, str)
    if name == "backend":
        return value in BACKENDS
    if name == "model_source":
        return value in MODEL_SOURCES
    if name == "endpoint_url":
        return isinstance(value, str) and (not value.strip() or validate_endpoint_url(value) is None)
    if name == "endpoint_model":
        return isinstance(value, str)
    if name == "context_profile":
        return value in CONTEXT_CHOICES
    if name == "watched_folders":
        return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
    if name in ("scheduler_enabled", "welcome_done"):
        return isinstance(value, bool)
    if name in ("nightly_start_hour", "nightly_end_hour"):
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 23
    return False  # a field added to AppSettings without a rule here: fail loudly in tests
