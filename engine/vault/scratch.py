"""Where decrypted adapter weights and training checkpoints may exist as files, briefly.

Adapters and checkpoints live encrypted in the vault; llama.cpp, peft and MLX read them from
a path, so they are decrypted into a private (0700) scratch folder only for the load or the
training run, and removed right after:

- in RAM where the system has a RAM-backed folder (/dev/shm on Linux), so the plaintext
  never reaches a disk;
- elsewhere (macOS, Windows: no RAM folder without administrator rights) in a 0700 folder
  under the user's temporary folder, removed as soon as the block ends. There the files do
  touch the disk for the length of a load: full-disk encryption (FileVault, BitLocker) is
  what covers that window.

Every scratch folder's name carries the owning process id. A process that dies mid-load
(killed, power cut) leaves its folder behind, so `sweep_leftovers` runs at start-up and
removes folders whose process is gone.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "memdesk-"
KINDS = ("adapter", "train")
_NAME = re.compile(rf"^{PREFIX}(?:{'|'.join(KINDS)})-(\d+)-")


def ram_folder() -> Path | None:
    """A RAM-backed folder this user may write to, or None where the system has none."""
    if sys.platform.startswith("linux"):
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            return shm
    return None


def base_folders() -> list[Path]:
    """Every folder a scratch folder may be made in (what the sweep looks at)."""
    folders = [Path(tempfile.gettempdir())]
    ram = ram_folder()
    if ram is not None:
        folders.insert(0, ram)
    return folders


@contextmanager
def private_scratch(kind: str) -> Iterator[Path]:
    """A fresh 0700 folder for decrypted weights, in RAM where possible, removed when the block ends."""
    if kind not in KINDS:
        raise ValueError(f"unknown scratch kind {kind!r}")
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{kind}-{os.getpid()}-", dir=ram_folder()) as tmp:
        os.chmod(tmp, 0o700)  # mkdtemp already makes it 0700; said again because it matters
        yield Path(tmp)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return True  # no cheap, safe liveness test: leave it (the OS cleans its temp folder)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True


def sweep_leftovers(folders: list[Path] | None = None) -> list[Path]:
    """Remove scratch folders of processes that are gone (decrypted weights a crash left behind)."""
    removed = []
    for base in folders if folders is not None else base_folders():
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _NAME.match(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            try:
                if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                    continue
            except (OSError, AttributeError):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
                log.info("removed leftover decrypted scratch folder %s", entry)
    return removed
