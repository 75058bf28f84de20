"""Where a profile's files live. One folder per profile holds its vault and key sidecar."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "MEMDESK_DATA_DIR"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--data-dir beats MEMDESK_DATA_DIR beats the platform's user data folder."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("MemDesk", appauthor=False))


@dataclass(frozen=True)
class ProfilePaths:
    data_dir: Path  # the whole data folder: nothing under it may hold plaintext
    name: str

    @classmethod
    def for_profile(cls, base: Path, profile: str = "default") -> ProfilePaths:
        if not profile or "/" in profile or "\\" in profile or profile.startswith("."):
            from memdesk.engine.errors import InvalidInputError

            raise InvalidInputError(f"Invalid profile name {profile!r}: use letters, digits, '-' or '_'.")
        return cls(base, profile)

    @property
    def root(self) -> Path:
        return self.data_dir / "profiles" / self.name

    @property
    def vault(self) -> Path:
        return self.root / "vault.db"

    @property
    def key_sidecar(self) -> Path:
        return self.root / "vault.key.json"
