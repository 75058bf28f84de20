"""FolderWatcher: keeps the vault in step with watched folders while the app runs.

    watcher = FolderWatcher(Ingestor(mem), ["~/Notes"], on_report=..., on_progress=...)
    watcher.start()      # scans each folder (what changed while the app was closed), then watches
    watcher.pause(); watcher.resume()   # resume catches up with a scan
    watcher.stop()

watchdog's observer thread only records events; all ingestion runs on the watcher's own
worker thread ("memdesk-ingest"), never on the caller's, and every callback is called on
that worker thread (a Qt app forwards them to the GUI thread with a signal). Events are
coalesced per path and handled once the path has been quiet for `debounce` seconds, so an
editor saving a file in several writes (or through a temporary file and a rename) costs
one ingestion. What a path is after the quiet period decides what happens: a file that
exists is (re-)ingested, a path that is gone is removed, and a rename whose source is gone
keeps its memories.

Each folder has a state (`FolderState`: starting, scanning n of m, watching, paused, missing,
error with its reason), reported through `on_state` whenever it changes. A folder that
disappears (deleted, a drive unplugged) is noticed within `recheck` seconds and watched again,
with a scan, as soon as it is back: no restart or Apply needed.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from memdesk.engine.errors import InvalidInputError, MemDeskError
from memdesk.engine.ingestion.folders import Ingestor, IngestReport, Progress, absolute_path, is_inside, skipped_dir
from memdesk.engine.scheduler.health import Health
from memdesk.engine.vault.database import VaultClosed

log = logging.getLogger(__name__)

ReportCallback = Callable[[IngestReport], None]
ErrorCallback = Callable[[MemDeskError], None]
_IGNORED_EVENTS = ("opened", "closed_no_write")
STATE_EVERY_S = 0.25  # scan progress is reported at most this often per folder (and at its end)


@dataclass(frozen=True)
class FolderState:
    """What the watcher is doing with one folder."""

    folder: str
    state: str  # "starting" | "scanning" | "watching" | "paused" | "missing" | "error"
    done: int = 0  # scanning: files handled so far ...
    total: int = 0  # ... of the files that needed work
    error: str = ""  # state "error": what went wrong and what to do

    def describe(self) -> str:
        if self.state == "scanning":
            return f"Scanning: {self.done} of {self.total} files" if self.total else "Scanning…"
        if self.state == "missing":
            return "Folder not found: it is watched again as soon as it is back"
        if self.state == "error":
            return f"Error: {self.error}"
        return {"starting": "Starting…", "watching": "Watching", "paused": "Paused"}.get(self.state, self.state)


StateCallback = Callable[[list[FolderState]], None]


class FolderWatcher:
    def __init__(self, ingestor: Ingestor, folders: Iterable[str | os.PathLike], *,
                 on_report: ReportCallback | None = None, on_progress: Progress | None = None,
                 on_error: ErrorCallback | None = None, debounce: float = 0.5, scan_on_start: bool = True,
                 rescan_interval: float | None = None, health: Health | None = None,
                 on_state: StateCallback | None = None, missing_ok: bool = False, recheck: float = 2.0):
        """`missing_ok`: a folder missing at start is watched once it exists (the app's watched
        folders); without it start() refuses a missing folder (a one-off watch of a path given)."""
        self.ingestor = ingestor
        self.health = health or getattr(ingestor.mem, "health", None) or Health()
        self.folders = list(dict.fromkeys(absolute_path(f) for f in folders))
        self.on_report = on_report
        self.on_progress = on_progress
        self.on_error = on_error
        self.debounce = debounce
        self.rescan_interval = rescan_interval
        self.on_state = on_state
        self.missing_ok = missing_ok
        self.recheck = recheck
        self.last_error: str | None = None
        self._states = {f: FolderState(f, "starting") for f in self.folders}
        self._state_lock = threading.Lock()  # a leaf: held for a dict update, never while calling out
        self._state_sent: dict[str, float] = {}
        self._watches: dict[str, ObservedWatch] = {}  # folder -> its watch
        self._handler = _Handler(self)
        self._last_check = time.monotonic()
        self._check_now = False
        self._scanning: str | None = None
        self._lock = threading.Condition()
        self._pending: dict[str, float] = {}  # path -> time of its last event (monotonic)
        self._moves: dict[str, str] = {}  # destination -> source, in arrival order
        self._scan_wanted = scan_on_start
        self._paused = False
        self._stopping = False
        self._busy = False
        self._last_scan = time.monotonic()
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None

    # ------------------------------------------------------------------- control
    def start(self) -> None:
        missing = [f for f in self.folders if not os.path.isdir(f)]
        if missing and not self.missing_ok:
            raise InvalidInputError(f"Cannot watch {missing[0]!r}: no such folder. Choose an existing folder "
                                    "in settings, or create it first.")
        if self._thread is not None:
            return
        observer = Observer()
        self._observer = observer
        try:
            for folder in self.folders:
                if folder in missing:
                    self._set_state(folder, "missing")
                else:
                    self._watches[folder] = observer.schedule(self._handler, folder, recursive=True)
                    if not self._scan_wanted:
                        self._set_state(folder, "watching")
            observer.start()
        except OSError as exc:
            self._observer = None
            raise MemDeskError(_watch_error(self.folders, exc)) from exc
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="memdesk-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; the file being ingested is finished (or rolled back), never half-written."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pause(self) -> None:
        """Stop ingesting (a scan under way stops after its current file); changes are caught up on resume."""
        with self._lock:
            self._paused = True
            self._lock.notify_all()
        for folder_state in self.states():
            if folder_state.state != "missing":
                self._set_state(folder_state.folder, "paused")

    def resume(self) -> None:
        """Ingest again, starting with a scan of every folder (it picks up whatever changed meanwhile)."""
        with self._lock:
            self._paused = False
            self._scan_wanted = True
            self._lock.notify_all()

    def states(self) -> list[FolderState]:
        """Each folder's state now, in the order the folders were given."""
        with self._state_lock:
            return [self._states[f] for f in self.folders]

    def _set_state(self, folder: str, state: str, done: int = 0, total: int = 0, error: str = "") -> None:
        """Called on the worker thread, and on the caller's by start() and pause()."""
        new = FolderState(folder, state, done, total, error)
        now = time.monotonic()
        with self._state_lock:
            if self._states.get(folder) == new:
                return
            self._states[folder] = new
            if (state == "scanning" and total and done < total
                    and now - self._state_sent.get(folder, 0.0) < STATE_EVERY_S):
                return  # a big scan reports its progress a few times a second, not per file
            self._state_sent[folder] = now
            snapshot = [self._states[f] for f in self.folders]
        if self.on_state is not None:
            self.on_state(snapshot)

    def rescan(self) -> None:
        """Ask for a full scan of every folder (e.g. after the settings changed)."""
        with self._lock:
            self._scan_wanted = True
            self._lock.notify_all()

    @property
    def is_paused(self) -> bool:
        return self._paused

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until nothing is pending or being ingested (False on timeout, or while paused with work left)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._busy or self._pending or self._scan_wanted:
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or self._stopping or not self.is_running:
                    return False
                self._lock.wait(0.05 if left is None else min(left, 0.05))
            return True

    def wait_until_seen(self, path: str | os.PathLike, timeout: float | None = None) -> bool:
        """Until a change to `path` is queued; a paused watcher keeps it queued until resume()."""
        path = absolute_path(path)
        with self._lock:
            return self._lock.wait_for(lambda: path in self._pending, timeout)

    # ---------------------------------------------------------------- the events
    def _root_of(self, path: str) -> str | None:
        inside = [f for f in self.folders if path == f or is_inside(path, f)]
        return max(inside, key=len) if inside else None

    def _relevant(self, path: str, is_directory: bool) -> bool:
        root = self._root_of(path)
        if root is None or path == root:
            return False
        if is_directory:
            return not any(skipped_dir(part) for part in os.path.relpath(path, root).split(os.sep))
        return self.ingestor.accepts(path, root)

    def _event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a file inside changed: that file has its own event
        src = os.fsdecode(event.src_path)
        if event.is_directory and event.event_type in ("deleted", "moved") and src in self.folders:
            with self._lock:  # a watched folder itself went away: its watch is dead, look now
                self._check_now = True
                self._lock.notify_all()
            return
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        now = time.monotonic()
        with self._lock:
            if event.event_type == "moved" and dest:
                src_ok, dest_ok = self._relevant(src, event.is_directory), self._relevant(dest, event.is_directory)
                if dest_ok:
                    self._moves.pop(dest, None)
                    self._moves[dest] = src
                for path, ok in ((src, src_ok), (dest, dest_ok)):
                    if ok:
                        self._pending[path] = now
            elif self._relevant(src, event.is_directory):
                self._pending[src] = now
            else:
                return
            self._lock.notify_all()

    # ---------------------------------------------------------------- the worker
    def _run(self) -> None:
        while True:
            with self._lock:
                work = self._next_work()
                if work is None:
                    return
                self._busy = True
            try:
                if work == "scan":
                    self._scan_all()
                elif work == "check":
                    self._check_folders()
                elif isinstance(work, list) and work:
                    self._handle(work)
            except Exception as exc:  # noqa: BLE001 - the loop boundary: recorded, reported, and the next change is read
                if self._stopping or isinstance(exc, VaultClosed):
                    return  # shutting down, or the vault closed under us
                self._failed(exc)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _failed(self, exc: Exception) -> None:
        failure = self.health.failed("watcher", "reading your watched folders", exc)
        self.last_error = failure.error
        if self._scanning is not None:
            self._set_state(self._scanning, "error", error=failure.error)
            self._scanning = None
        if self.on_error is not None:
            self.on_error(exc if isinstance(exc, MemDeskError) else MemDeskError(failure.error))
        with self._lock:  # a pause, so that a failure repeating on every event cannot spin
            self._lock.wait(min(1.0, self.debounce * 2))

    def _next_work(self) -> str | list[tuple[str, str | None]] | None:
        """Under the lock: wait for something to do. None means stop; "scan" a full scan; "check"
        a look at which folders exist; else a batch of (path, move source or None) whose events
        have settled."""
        while not self._stopping:
            now = time.monotonic()
            if self._check_now or now - self._last_check >= self.recheck:
                self._check_now = False
                self._last_check = now
                return "check"
            if self._paused:
                self._lock.wait(min(1.0, self.recheck))
                continue
            if self.rescan_interval is not None and now - self._last_scan >= self.rescan_interval:
                self._scan_wanted = True
            if self._scan_wanted:
                self._scan_wanted = False
                self._pending.clear()  # the scan sees all of it; later events queue again
                self._moves.clear()
                self._last_scan = now
                return "scan"
            ready = [p for p, at in self._pending.items() if now - at >= self.debounce]
            if ready:
                batch: list[tuple[str, str | None]] = []
                for path in ready:
                    del self._pending[path]
                    source = self._moves.pop(path, None)
                    if source is not None:
                        self._pending.pop(source, None)
                    batch.append((path, source))
                return batch
            waits = [self.debounce - (now - at) for at in self._pending.values()]
            waits.append(self.recheck - (now - self._last_check))
            if self.rescan_interval is not None:
                waits.append(self.rescan_interval - (now - self._last_scan))
            self._lock.wait(max(0.01, min(waits)))
        return None

    def _check_folders(self) -> None:
        """A folder that vanished stops being watched (its watch died with it); one that is back
        is watched again and scanned."""
        back = False
        for folder_state in self.states():
            folder, current = folder_state.folder, folder_state.state
            exists = os.path.isdir(folder)
            if not exists and current != "missing":
                self._unwatch(folder)
                self._set_state(folder, "missing")
            elif exists and current == "missing":
                observer = self._observer
                if observer is None:  # stop() let go of the observer while this check ran
                    return
                try:
                    self._watches[folder] = observer.schedule(self._handler, folder, recursive=True)
                except OSError as exc:
                    self._set_state(folder, "error", error=_watch_error([folder], exc))
                    continue
                self._set_state(folder, "paused" if self._paused else "scanning")
                back = True
        if back:
            with self._lock:
                self._scan_wanted = True

    def _unwatch(self, folder: str) -> None:
        watch = self._watches.pop(folder, None)
        if watch is not None and self._observer is not None:
            try:
                self._observer.unschedule(watch)
            except KeyError:
                pass  # already gone with its emitter

    def _should_stop(self) -> bool:
        return self._stopping or self._paused

    def _scan_all(self) -> None:
        for folder in self.folders:
            if self._should_stop():
                break
            if not os.path.isdir(folder):
                continue  # watched again, and scanned, once it is back (_check_folders)

            def progress(done: int, total: int, path: str, folder: str = folder) -> None:
                self._set_state(folder, "scanning", done, total)
                if self.on_progress is not None:
                    self.on_progress(done, total, path)

            self._set_state(folder, "scanning")
            self._scanning = folder  # a failure is this folder's error (_failed)
            try:
                report = self.ingestor.scan(folder, on_progress=progress, should_stop=self._should_stop)
            except Exception as exc:  # noqa: BLE001 - one folder's failure is its state; the others are read
                if self._stopping or isinstance(exc, VaultClosed):
                    raise
                self._failed(exc)
                continue
            self._scanning = None
            if report.interrupted and not self._stopping:
                with self._lock:
                    self._scan_wanted = True  # finished on resume
            if not report.interrupted:
                self._set_state(folder, "watching")
            if self.on_report is not None:
                self.on_report(report)

    def _handle(self, batch: list[tuple[str, str | None]]) -> None:
        started = time.perf_counter()
        report = IngestReport(", ".join(self.folders))
        paths: dict[str, None] = {}
        for path, source in batch:
            if source is not None and not os.path.lexists(source) and os.path.lexists(path):
                for pair in self.ingestor.move(source, path):
                    report.renamed.append(pair)
            if source is not None:
                paths[source] = None
            paths[path] = None
        renamed = {new for _, new in report.renamed}
        for done, path in enumerate(paths, start=1):
            if self._should_stop():
                with self._lock:  # not done: handle it again after resume (which rescans anyway)
                    self._pending.setdefault(path, 0.0)
                continue
            try:
                self._handle_path(path, path in renamed, report)
            except Exception as exc:  # noqa: BLE001 - one file's failure is recorded; the batch goes on
                if self._stopping or isinstance(exc, VaultClosed):
                    raise
                self._failed(exc)
            if self.on_progress is not None:
                self.on_progress(done, len(paths), path)
        report.seconds = time.perf_counter() - started
        if self.on_report is not None and (report.changed or report.skipped):
            self.on_report(report)


    def _handle_path(self, path: str, renamed: bool, report: IngestReport) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            report.merge(self.ingestor.scan(path, should_stop=self._should_stop))
        elif os.path.lexists(path):
            result = self.ingestor.ingest_file(path)
            if renamed and result.action == "unchanged":
                report.files += 1
            else:
                report.record(result)
        else:
            for result in self.ingestor.remove(path):
                report.record(result)


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's observer thread: records the event and returns at once."""

    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._event(event)


def _watch_error(folders: list[str], exc: OSError) -> str:
    return (f"Cannot watch {', '.join(folders)}: {exc.strerror or exc}. On Linux, raise the inotify limit "
            "(sysctl fs.inotify.max_user_watches=524288) or watch fewer folders.")
