"""Downloads a person can trust: resumable, verified, cancellable, never half a model.

`download_file` fetches one file of a Hub repository into place:
- The bytes go to `<name>.part` (a name no model loader picks up) next to the target, with
  `<name>.part.json` saying which file and which version they belong to. A dropped
  connection is resumed with a Range request within the same call (up to
  `DownloadOptions.max_retries` failures in a row without progress); a later call, after a
  crash, a cancel or a restart, resumes from the same `.part` when the Hub still serves
  the same version (same sha256, or same commit) and starts over when it does not.
- Free disk is checked before the first byte is requested.
- The sha256 (the catalog's, else the one the Hub publishes; the git blob id for small
  files kept in git) is computed as the bytes arrive and compared before the file is
  renamed into place; a mismatch deletes the `.part` and raises IntegrityError. A file
  with no published checksum is refused.
- `CancelToken.cancel()` may be called from any thread (a GUI button): a read waiting on
  the network is interrupted at once, and what was downloaded is kept for a resume.
- Progress (bytes, rate over the last seconds, time left) goes to a callback, called on the
  downloading thread at most every `progress_interval_s` and once at the end.
- Two processes never write the same `.part`: an OS lock on `<name>.lock` decides.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from memdesk.engine.errors import Cancelled, DownloadError, IntegrityError, StorageFullError
from memdesk.engine.llm.hub import RemoteFile, Response, Timeouts, TransientDownloadError, request
from memdesk.engine.vault.private_files import fsync_dir, try_lock

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".part.json"
LOCK_SUFFIX = ".lock"
SIDECAR_FORMAT = 1
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_HASH_READ = 8 << 20


@dataclass(frozen=True)
class DownloadOptions:
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_retries: int = 5  # failed attempts in a row, without a byte of progress, before giving up
    retry_backoff_s: float = 1.0  # doubles after each failure, up to 30 s
    chunk_bytes: int = 1 << 20
    reserve_bytes: int = 200 * 1024 * 1024  # a download never takes the disk to its last megabytes
    progress_interval_s: float = 0.1


@dataclass(frozen=True)
class DownloadProgress:
    label: str  # what is being downloaded, e.g. the catalog name
    filename: str  # the file being fetched now
    done_bytes: int  # of the whole download (every file of an MLX folder together)
    total_bytes: int
    rate_bps: float  # over the last few seconds; 0 until known
    eta_s: float | None  # None until a rate is known
    phase: str  # "checking" (hashing what an earlier run left), "downloading", "verifying", "done"
    resumed_from: int  # bytes that were already there when this call started

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0


ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str | None  # None for a small git file verified by its blob id
    commit: str | None
    resumed_from: int  # bytes reused from an earlier attempt
    downloaded_bytes: int  # bytes received by this call
    seconds: float
    attempts: int  # requests made for the body (1 when nothing dropped)


class CancelToken:
    """Shared between the thread that downloads and whoever may cancel (the GUI thread)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._responses: set[Response] = set()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            response.abort()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep between retries, waking at once on a cancel; True when cancelled."""
        return self._event.wait(seconds)

    def _attach(self, response: Response) -> None:
        with self._lock:
            self._responses.add(response)
        if self.cancelled:
            response.abort()

    def _detach(self, response: Response) -> None:
        with self._lock:
            self._responses.discard(response)


class ProgressMeter:
    """Turns byte counts into DownloadProgress events; one meter can span several files."""

    WINDOW_S = 5.0  # the rate is measured over this much recent time, so time left follows the network

    def __init__(self, label: str, total_bytes: int, callback: ProgressCallback | None, interval_s: float = 0.1):
        self.label, self.total, self.callback, self.interval_s = label, total_bytes, callback, interval_s
        self.done = self.resumed_from = 0
        self.filename, self.phase = "", "checking"
        self._samples: deque[tuple[float, int]] = deque()
        self._last_emit = 0.0

    def reused(self, nbytes: int) -> None:
        """Bytes an earlier attempt left: counted as done, never as speed."""
        self.done += nbytes
        self.resumed_from += nbytes
        self.emit(force=True)

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.WINDOW_S:
            self._samples.popleft()
        self.emit()

    def set_phase(self, phase: str, filename: str | None = None) -> None:
        self.phase = phase
        if filename is not None:
            self.filename = filename
        if phase == "downloading":
            self._samples.clear()  # hashing an old .part is not network speed
        self.emit(force=True)

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def emit(self, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last_emit < self.interval_s:
            return
        self._last_emit = now
        rate = self.rate()
        eta = max(self.total - self.done, 0) / rate if rate > 0 else None
        self.callback(DownloadProgress(self.label, self.filename, self.done, self.total, rate, eta, self.phase,
                                       self.resumed_from))


def part_paths(dest: Path) -> tuple[Path, Path, Path]:
    """The `.part`, its sidecar and the lock file of a download into `dest`."""
    return (dest.with_name(dest.name + PART_SUFFIX), dest.with_name(dest.name + SIDECAR_SUFFIX),
            dest.with_name(dest.name + LOCK_SUFFIX))


def check_free_space(folder: Path, needed: int, reserve: int, label: str) -> None:
    """Refuse before the first byte when the disk cannot take the rest of the download."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + reserve > free:
        raise StorageFullError(f"Not enough free disk for {label}: it needs {_size(needed)} more (and MemDesk keeps "
                               f"{_size(reserve)} free) but {probe} has {_size(free)} free. Free some space, or choose "
                               "another models folder (`memdesk model folder PATH`), then try again.")


def download_file(remote: RemoteFile, dest: Path, *, expected_sha256: str | None = None,
                  cancel: CancelToken | None = None, on_progress: ProgressCallback | None = None,
                  options: DownloadOptions = DownloadOptions(), meter: ProgressMeter | None = None,
                  label: str | None = None) -> DownloadResult:
    """Fetch `remote` into `dest` (see the module docstring). `meter` lets several files share
    one progress bar; without it this file has its own."""
    dest = Path(dest)
    label = label or remote.filename
    cancel = cancel or CancelToken()
    meter = meter or ProgressMeter(label, remote.size, on_progress, options.progress_interval_s)
    algorithm, expected = _expected_digest(remote, expected_sha256, label)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, sidecar, lock_path = part_paths(dest)
    started = time.monotonic()
    with _DownloadLock(lock_path, label):
        digest = _Digest(algorithm, remote.size)
        have = _reusable_part(part, sidecar, remote, expected)
        check_free_space(dest.parent, remote.size - have, options.reserve_bytes, label)
        _write_sidecar(sidecar, remote, algorithm, expected)
        meter.set_phase("checking", remote.filename)
        if have:
            _hash_existing(part, have, remote.size, digest, cancel, label)
            meter.reused(have)
        resumed_from, attempts, failures = have, 0, 0
        file_base = meter.done - have  # where this file starts on a progress bar shared by several
        meter.set_phase("downloading")
        with open(part, "ab", buffering=0) as out:
            while have < remote.size or attempts == 0:
                if cancel.cancelled:
                    raise _cancelled(label, have, remote.size)
                before, attempts = have, attempts + 1
                try:
                    have = _transfer(remote, out, have, digest, meter, file_base, cancel, options, label)
                except TransientDownloadError as exc:
                    # The .part holds exactly the bytes the digest has seen (a restart truncates both).
                    have = os.fstat(out.fileno()).st_size
                    meter.done = file_base + have
                    if cancel.cancelled:
                        raise _cancelled(label, have, remote.size) from None
                    failures = 1 if have > before else failures + 1
                    if failures > options.max_retries:
                        raise DownloadError(f"{exc} (gave up after {attempts} attempts; {_size(have)} of "
                                            f"{_size(remote.size)} are kept, so running the download again "
                                            "resumes it)") from exc
                    log.info("download of %s interrupted at %d bytes (%s); retrying", label, have, exc)
                    if cancel.wait(min(options.retry_backoff_s * 2 ** (failures - 1), 30.0)):
                        raise _cancelled(label, have, remote.size) from None
            meter.set_phase("verifying")
            _sync(out, label)
        actual = digest.hexdigest()
        if actual != expected:
            _remove(part, sidecar)
            raise IntegrityError(f"The download of {label} does not match its published checksum ({algorithm} "
                                 f"{expected[:16]}…, got {actual[:16]}…). It was deleted unused. Try again; if it "
                                 "repeats, something on the network (a proxy, antivirus) is changing downloads.")
        os.replace(part, dest)
        fsync_dir(dest.parent)
        _remove(sidecar)
    meter.set_phase("done")
    return DownloadResult(dest, remote.size, expected if algorithm == "sha256" else None, remote.commit,
                          resumed_from, remote.size - resumed_from, time.monotonic() - started, attempts)


def discard_partial(dest: Path) -> list[Path]:
    """Delete what an unfinished download into `dest` left (not while it is running)."""
    part, sidecar, lock_path = part_paths(dest)
    if not dest.parent.is_dir():
        return []
    removed = [p for p in (part, sidecar) if p.exists()]
    with _DownloadLock(lock_path, dest.name):
        _remove(part, sidecar)
    return removed


# ------------------------------------------------------------------ internals
def _transfer(remote: RemoteFile, out, have: int, digest: _Digest, meter: ProgressMeter, file_base: int,
              cancel: CancelToken, options: DownloadOptions, label: str) -> int:
    """One request for the bytes from `have` on; returns how many bytes the .part holds after it."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    response = request(remote.url, headers=headers, timeouts=options.timeouts, what=label)
    cancel._attach(response)
    try:
        if response.status == 416:  # nothing left to send: the .part is complete, or longer than the file
            if have == remote.size:
                return have
            return _restart(out, digest, meter, file_base)
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if total not in (None, remote.size):
                raise TransientDownloadError(f"The server now has a different {label} ({total} bytes, not "
                                             f"{remote.size}); starting over.")
            if start != have:
                have = _restart(out, digest, meter, file_base)
                raise TransientDownloadError(f"The server resumed {label} at the wrong place; starting over.")
        elif response.status == 200:
            if have:  # the server ignored the Range header: its body starts at byte 0
                have = _restart(out, digest, meter, file_base)
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != remote.size:
                raise DownloadError(f"The server sends {length} bytes for {label} but said {remote.size}. Try again "
                                    "later; if it repeats, the mirror or proxy is serving a different file.")
        else:
            raise DownloadError(f"Unexpected answer {response.status} while downloading {label}. Try again later.")
        while True:
            try:
                chunk = response.read1(options.chunk_bytes)
            except TimeoutError as exc:
                raise TransientDownloadError(f"The server stopped sending {label} (nothing for "
                                             f"{options.timeouts.read_s:g} s).") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise TransientDownloadError(f"The connection dropped while downloading {label} "
                                             f"({exc.__class__.__name__}).") from exc
            if not chunk:
                break
            if have + len(chunk) > remote.size:
                have = _restart(out, digest, meter, file_base)
                raise TransientDownloadError(f"The server sent more than the {remote.size} bytes of {label}; "
                                             "starting over.")
            _write(out, chunk, label, have, remote.size)
            digest.update(chunk)
            have += len(chunk)
            meter.add(len(chunk))
            if cancel.cancelled:
                return have
        if have < remote.size and not cancel.cancelled:
            raise TransientDownloadError(f"The connection to the server closed early ({_size(have)} of "
                                         f"{_size(remote.size)} of {label}).")
        return have
    finally:
        cancel._detach(response)
        response.close()


def _write(out, chunk: bytes, label: str, have: int, total: int) -> None:
    view = memoryview(chunk)
    try:
        while view:  # an unbuffered write may take only part of the chunk
            view = view[out.write(view):]
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise StorageFullError(f"The disk filled up while downloading {label} ({_size(have)} of {_size(total)}). "
                                   "What was downloaded is kept: free some space, then run the download again "
                                   "to resume it.") from exc
        raise DownloadError(f"Could not write the download of {label} to {out.name}: {exc.strerror or exc}. "
                            "Check that the models folder is writable.") from exc


def _sync(out, label: str) -> None:
    """Flush the .part to disk before it is renamed, so a power cut never leaves a short model."""
    try:
        os.fsync(out.fileno())
    except OSError as exc:  # some filesystems (network, delayed allocation) report a full disk only here
        if exc.errno in _DISK_FULL:
            raise StorageFullError(f"The disk filled up while saving {label}. What was downloaded is kept: free "
                                   "some space, then run the download again to resume it.") from exc
        raise DownloadError(f"Could not save the download of {label}: {exc.strerror or exc}. Check the models "
                            "folder's disk, then try again.") from exc


def _restart(out, digest: _Digest, meter: ProgressMeter, file_base: int) -> int:
    """Drop what the .part holds (it is not this file's start) and count this file from zero."""
    out.truncate(0)
    digest.reset()
    meter.done = file_base
    return 0


def _content_range(value: str) -> tuple[int | None, int | None]:
    """"bytes 100-199/1000" -> (100, 1000); "*" parts are None."""
    try:
        unit, _, spec = value.strip().partition(" ")
        span, _, total = spec.partition("/")
        start = span.split("-")[0]
        return (int(start) if start.isdigit() else None), (int(total) if total.isdigit() else None)
    except ValueError:
        return None, None


def _expected_digest(remote: RemoteFile, catalog_sha256: str | None, label: str) -> tuple[str, str]:
    if catalog_sha256 and remote.sha256 and catalog_sha256 != remote.sha256:
        raise IntegrityError(f"The Hub now publishes a different file for {label} (sha256 {remote.sha256[:16]}…) "
                             f"than the one MemDesk's catalog names ({catalog_sha256[:16]}…). Nothing was "
                             "downloaded: update MemDesk, or choose another model.")
    if catalog_sha256 or remote.sha256:
        return "sha256", (catalog_sha256 or remote.sha256)
    if remote.git_sha1:
        return "git-sha1", remote.git_sha1
    raise IntegrityError(f"The server published no checksum for {label}, so it cannot be verified and MemDesk will "
                         "not install it. Try again later, or check HF_ENDPOINT if you set it.")


class _Digest:
    """sha256, or git's blob id (sha1 of "blob <size>\\0" + bytes) for files kept in git."""

    def __init__(self, algorithm: str, size: int):
        self.algorithm, self.size = algorithm, size
        self.reset()

    def reset(self) -> None:
        if self.algorithm == "sha256":
            self._hash = hashlib.sha256()
        else:
            self._hash = hashlib.sha1(usedforsecurity=False)
            self._hash.update(b"blob %d\0" % self.size)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _reusable_part(part: Path, sidecar: Path, remote: RemoteFile, expected: str) -> int:
    """Bytes of an earlier attempt that belong to this very file; 0 (and the .part gone) otherwise."""
    if not part.exists():
        return 0
    try:
        state = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    have = part.stat().st_size
    same = (isinstance(state, dict) and state.get("format") == SIDECAR_FORMAT and state.get("size") == remote.size
            and state.get("repo") == remote.repo and state.get("filename") == remote.filename
            and (state.get("expected") == expected or (remote.commit and state.get("commit") == remote.commit)))
    if not same or have > remote.size:
        log.info("discarding %s: it belongs to another version of the file", part)
        part.unlink()
        return 0
    return have


def _write_sidecar(sidecar: Path, remote: RemoteFile, algorithm: str, expected: str) -> None:
    payload = {"format": SIDECAR_FORMAT, "repo": remote.repo, "filename": remote.filename,
               "revision": remote.revision, "commit": remote.commit, "size": remote.size,
               "algorithm": algorithm, "expected": expected}
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, sidecar)


def _hash_existing(part: Path, have: int, total: int, digest: _Digest, cancel: CancelToken, label: str) -> None:
    with open(part, "rb") as fh:
        left = have
        while left:
            block = fh.read(min(_HASH_READ, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
            if cancel.cancelled:
                raise _cancelled(label, have, total)


def _cancelled(label: str, have: int, total: int) -> Cancelled:
    return Cancelled(f"The download of {label} was cancelled at {_size(have)} of {_size(total)}. What was "
                     "downloaded is kept: starting the download again resumes it (`memdesk model remove` "
                     "deletes it).")


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _size(nbytes: int) -> str:
    if nbytes >= 1_000_000_000:
        return f"{nbytes / 1e9:.2f} GB"
    if nbytes >= 1_000_000:
        return f"{nbytes / 1e6:.1f} MB"
    return f"{nbytes / 1e3:.0f} kB"


class _DownloadLock:
    """An OS lock on `<name>.lock`: released by the OS however the process ends."""

    def __init__(self, path: Path, label: str):
        self.path, self.label = path, label
        self._fd: int | None = None

    def __enter__(self) -> _DownloadLock:
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not try_lock(fd):
                os.close(fd)
                raise DownloadError(f"{self.label} is being downloaded by another MemDesk window or command "
                                    "right now. Wait for it to finish (or cancel it there), then try again.")
            try:  # the holder before us may have removed the file after we opened it: lock the one on disk
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self._fd = fd
                    return self
            except FileNotFoundError:
                pass
            os.close(fd)
        raise DownloadError(f"Could not lock {self.path}; try the download again.")

    def __exit__(self, *exc) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)  # while still held, so nobody can lock the old file after us
        except OSError:
            pass  # Windows keeps an open file; the next download reuses it
        os.close(fd)
