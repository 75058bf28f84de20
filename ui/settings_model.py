"""The values behind the Settings window and the rules they must meet (no widgets here).

`AppSettings` is what the user chooses; app/settings_store.py saves it as JSON in the
profile folder. `SettingsInfo` is what the app knows and the window only shows. The rule
helpers return None when a value is fine, else a message that says what to do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

BACKEND_CHOICES = ("auto", "llama.cpp", "mlx")
# How memories are laid out for the model (engine.chat.context): chosen by the model's size, or forced.
CONTEXT_CHOICES = ("auto", "compact", "full")
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# Where the chat model runs: a file MemDesk loads itself, or a server on this computer.
MODEL_SOURCES = ("file", "endpoint")


@dataclass
class AppSettings:
    """Empty strings mean "the default"."""

    model_path: str = ""  # a .gguf file or an MLX model folder; "" = the embedded default
    backend: str = "auto"
    model_source: str = "file"  # "file" (model_path) or "endpoint" (a local OpenAI-compatible server)
    endpoint_url: str = ""  # e.g. http://127.0.0.1:11434 (Ollama); kept when the source is "file"
    endpoint_model: str = ""  # the server's name for the model; "" = the first it lists
    context_profile: str = "auto"  # "auto" (by model size), "compact" (small models) or "full"
    watched_folders: list[str] = field(default_factory=list)
    # Preparing the next reply in the background (prefetch, KV precompute). Extraction and nightly
    # learning are not part of it and always run. The name is kept for existing settings files.
    scheduler_enabled: bool = True
    nightly_start_hour: int = 2
    nightly_end_hour: int = 5
    data_dir: str = ""  # "" = the platform default; a change takes effect at the next start
    welcome_done: bool = False  # the first-run window was finished or skipped (it is shown once)

    def copy(self) -> AppSettings:
        return AppSettings(**{**self.__dict__, "watched_folders": list(self.watched_folders)})


@dataclass
class SettingsInfo:
    key_storage: str  # "OS keyring (name)" or "passphrase"
    data_dir: str  # the data folder in use now
    ingest_status: str  # e.g. "Watching 2 folders · 14 files indexed"
    model_in_use: str  # the model loaded now (path or name)
    default_model: str = ""  # the embedded default's path, validated when the model field is empty


def normalise_folder(path: str) -> str:
    path = path.strip()
    return os.path.abspath(os.path.expanduser(path)) if path else ""


def folder_problem(path: str, watched: list[str]) -> str | None:
    """Why `path` cannot be added to the watched folders (None: it can)."""
    if not path or not os.path.isdir(path):
        return f"“{path or '(empty)'}” is not an existing folder; choose a folder that exists."
    if path in watched:
        return f"{path} is already watched."
    return None


def data_dir_problem(path: str) -> str | None:
    """A data folder may not exist yet (MemDesk creates it) but must not be a file."""
    full = os.path.expanduser(path) if path else ""
    if full and os.path.exists(full) and not os.path.isdir(full):
        return f"{path} is a file; choose a folder for MemDesk's data."
    return None


def nightly_problem(settings: AppSettings) -> str | None:
    hours = (settings.nightly_start_hour, settings.nightly_end_hour)
    if any(not 0 <= hour <= 23 for hour in hours):
        return "Nightly hours run from 0 to 23."
    if hours[0] == hours[1]:
        return "The nightly window is empty: choose different start and end hours."
    return None
