"""Files that must be private and whole: the key sidecar, settings, exports and backups.

- Folders MemDesk creates for a profile are 0700 and files it writes are 0600, whatever
  the umask: the key sidecar and settings say things about the person (watched folders, the
  vault id in the keyring), and an export is plaintext.
- A file is replaced whole or not at all: written to a temporary name that nobody can
  predict or pre-create (mkstemp: O_CREAT|O_EXCL, O_NOFOLLOW where the system has it) in
  the target's own folder, fsynced, renamed over the target, and the folder fsynced so the
  rename survives a power cut. On any failure the temporary file is removed.
- Only a regular file (or nothing) is replaced: a symlink, FIFO or device node at the
  target is refused, never turned into a plaintext file. "-" means standard output.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from memdesk.engine.errors import InvalidInputError

STDOUT = "-"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (no-op where folders cannot be opened)."""
    if sys.platform == "win32":
        return  # NTFS journals metadata; Windows cannot open a folder for fsync
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (network, FUSE) refuse fsync on a folder; the data itself was synced
    finally:
        os.close(fd)


def make_private_dir(folder: Path, *, owned_from: Path | None = None) -> None:
    """Create `folder` (and missing parents) 0700. Folders from `owned_from` down to `folder`
    are MemDesk's own and are set to 0700 even if they already existed with a looser mode;
    anything above (a --data-dir the person chose) is created 0700 if missing but never changed."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        fsync_dir(path.parent)
    if owned_from is not None and hasattr(os, "getuid"):
        for path in [folder, *folder.parents]:
            info = path.stat()
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(path, 0o700)
            if path == owned_from:
                break


def check_target(path: Path) -> None:
    """Refuse to replace anything but a regular file (checked without following a symlink)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode)
                else "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device")
        raise InvalidInputError(f"{path} is {kind}, not a regular file; MemDesk will not replace it. "
                                "Choose another file name (or '-' for standard output).")
    if not path.parent.is_dir():
        raise InvalidInputError(f"The folder {path.parent} does not exist; create it first.")


@contextmanager
def replace_whole(path: Path) -> Iterator[BinaryIO]:
    """A 0600 binary file that becomes `path` only when the block finishes without error."""
    path = Path(path)
    check_target(path)
    if not path.parent.is_dir():
        raise InvalidInputError(f"The folder {path.parent} does not exist; create it first.")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        check_target(path)  # it may have been swapped for a link while we wrote
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, 0600, atomically and durably."""
    with replace_whole(path) as out:
        out.write(data)


@contextmanager
def output(target: str | os.PathLike) -> Iterator[BinaryIO]:
    """`replace_whole(target)`, or standard output for "-"."""
    if str(target) == STDOUT:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with replace_whole(Path(target)) as out:
        yield out


def try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking OS lock on an open file; False when another process holds
    it. The OS drops it when the descriptor is closed or the process ends, however it ends."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
