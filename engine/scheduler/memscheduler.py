"""MemScheduler: prepares what the next turn will need, without ever delaying a user.

Triggers (user message, reply finished, session opened, memory changed, ...) put tasks
on a monitoring queue that is bounded, prioritised and deduplicated by key (one pending
prefix build per session: a newer request replaces the older). Work that must survive a
restart (fine extraction) lives in the persisted JobQueue; prefix builds are cheap to
redo and stay in memory. The executor is pure Python: `run_pending()` runs what is
queued (the app calls it from a QThread; `start()` runs it on a thread of its own).
A user's turn runs inside `foreground()`: background prefill stops at its next chunk,
gives the model back, and is retried afterwards.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from memdesk.engine.errors import Preempted
from memdesk.engine.scheduler.health import Health
from memdesk.engine.scheduler.queue import JobQueue
from memdesk.engine.vault.database import VaultClosed

log = logging.getLogger(__name__)

PRIORITY = {"extract": 10, "prefix_build": 5, "next_scene": 6, "nightly": 1}
MAX_PENDING = 64
# What Settings' "Prepare the next reply in the background" turns off. Extraction (persisted
# jobs) and the nightly tasks are not preparation: they run either way.
PREPARATION = frozenset({"prefix_build", "next_scene"})
RETRY_AFTER_S = 1.0  # the executor's pause after its own loop failed, so a repeating failure cannot spin

TaskRun = Callable[[Callable[[], bool]], None]
"""A task body; it is passed `should_stop()` and must return early (or raise Preempted) when true."""


@dataclass(frozen=True)
class NightlyWindow:
    """Local hours in which heavy, deferrable work (adapter training) may start."""
    start_hour: int = 2
    end_hour: int = 5

    def is_open(self, now: datetime) -> bool:
        if self.start_hour <= self.end_hour:
            return self.start_hour <= now.hour < self.end_hour
        return now.hour >= self.start_hour or now.hour < self.end_hour  # e.g. 23:00-04:00


@dataclass(order=True)
class _Task:
    sort: tuple[int, int]
    kind: str = field(compare=False)
    key: str | None = field(compare=False)
    run: TaskRun = field(compare=False)
    cancelled: bool = field(default=False, compare=False)
    attempts: int = field(default=0, compare=False)


class MemScheduler:
    def __init__(self, jobs: JobQueue | None = None, max_pending: int = MAX_PENDING, *,
                 health: Health | None = None):
        self.health = health or (jobs.health if jobs is not None else Health())
        self.max_pending = max_pending
        self.preparation = True  # see PREPARATION
        self.model_lock = threading.RLock()  # whoever runs the model holds it
        self._heap: list[_Task] = []
        self._by_key: dict[str, _Task] = {}
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._foreground = 0
        self._running: str | None = None
        self._busy = False  # run_pending() is under way on the executor
        self._jobs_waiting = False  # a job was enqueued since the executor last looked
        self._jobs: JobQueue | None = None
        self.jobs = jobs
        self._errors: deque[dict] = deque(maxlen=10)
        self.completed: Counter[str] = Counter()
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.window = NightlyWindow()
        self._nightly: dict[str, TaskRun] = {}
        self._nightly_done_on: date | None = None

    @property
    def jobs(self) -> JobQueue | None:
        return self._jobs

    @jobs.setter
    def jobs(self, queue: JobQueue | None) -> None:
        """The persisted queue this executor runs; an enqueue there wakes the executor."""
        if self._jobs is not None and self._job_enqueued in self._jobs.on_enqueued:
            self._jobs.on_enqueued.remove(self._job_enqueued)
        self._jobs = queue
        if queue is not None:
            queue.on_enqueued.append(self._job_enqueued)

    def _job_enqueued(self) -> None:
        with self._cv:
            self._jobs_waiting = True
            self._cv.notify_all()

    def set_preparation(self, enabled: bool) -> None:
        """Settings: prepare the next reply in the background (prefix builds, next-scene
        prediction) or not. Extraction and nightly tasks are not affected."""
        self.preparation = enabled
        if not enabled:
            for kind in PREPARATION:
                self.cancel(kind=kind)

    # ------------------------------------------------------------ the queue
    def submit(self, kind: str, run: TaskRun, *, key: str | None = None, priority: int | None = None) -> bool:
        """Queue a task; an equal `key` replaces the pending one. False when the queue was full
        and this task was the least important, or when it prepares and preparation is off."""
        prio = PRIORITY.get(kind, 0) if priority is None else priority
        if kind in PREPARATION and not self.preparation:
            return False
        with self._cv:
            if key is not None and key in self._by_key:
                self._by_key.pop(key).cancelled = True
            task = _Task((-prio, next(self._seq)), kind, key, run)
            live = [t for t in self._heap if not t.cancelled]
            if len(live) >= self.max_pending:
                worst = max(live)  # lowest priority, newest
                if worst.sort <= task.sort:
                    self.dropped += 1
                    return False
                worst.cancelled = True
                if worst.key is not None:
                    self._by_key.pop(worst.key, None)
                self.dropped += 1
            heapq.heappush(self._heap, task)
            if key is not None:
                self._by_key[key] = task
            self._cv.notify()
        return True

    def cancel(self, *, key: str | None = None, kind: str | None = None) -> int:
        with self._cv:
            count = 0
            for task in self._heap:
                if not task.cancelled and (key is None or task.key == key) and (kind is None or task.kind == kind):
                    task.cancelled = True
                    count += 1
                    if task.key is not None:
                        self._by_key.pop(task.key, None)
            return count

    def _pop(self) -> _Task | None:
        with self._cv:
            while self._heap:
                task = heapq.heappop(self._heap)
                if task.cancelled:
                    continue
                if task.key is not None:
                    self._by_key.pop(task.key, None)
                return task
        return None

    # ------------------------------------------------------------ the nightly trigger
    def add_nightly(self, kind: str, run: TaskRun) -> None:
        """Run `run` once a night, when the window opens (see `tick`)."""
        self._nightly[kind] = run

    def tick(self, now: datetime | None = None) -> list[str]:
        """Time trigger: queue the nightly tasks once per night while the window is open.
        Returns the kinds it queued. The executor loop calls it; so may an app timer."""
        now = now or datetime.now()
        night = (now.date() if now.hour >= self.window.start_hour else date.fromordinal(now.toordinal() - 1))
        if not self._nightly or not self.window.is_open(now) or self._nightly_done_on == night:
            return []
        self._nightly_done_on = night
        for kind, run in self._nightly.items():
            self.submit(kind, run, key=f"nightly:{kind}", priority=PRIORITY["nightly"])
        return list(self._nightly)

    # ------------------------------------------------------------ executing
    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Wrap a user's turn: background work yields the model within one prefill chunk."""
        with self._cv:
            self._foreground += 1
        try:
            with self.model_lock:
                yield
        finally:
            with self._cv:
                self._foreground -= 1
                self._cv.notify()

    def should_stop(self) -> bool:
        return self._foreground > 0 or self._stop.is_set()

    def run_pending(self, max_tasks: int | None = None) -> int:
        """Run queued tasks (then persisted jobs) while no user turn is waiting."""
        done = 0
        while (max_tasks is None or done < max_tasks) and not self.should_stop():
            task = self._pop()
            if task is None:
                if self.jobs is not None and self._run_job():
                    done += 1
                    continue
                break
            self._execute(task)
            done += 1
        return done

    def _run_job(self) -> bool:
        # Extraction may run the model: it takes the model lock like any background task.
        if self.jobs is None:
            return False
        with self.model_lock:
            return self.jobs.run_one()

    def _execute(self, task: _Task) -> None:
        self._running = task.kind
        started = time.perf_counter()
        try:
            with self.model_lock:
                task.run(self.should_stop)
            self.completed[task.kind] += 1
        except Preempted:
            task.attempts += 1
            if task.attempts < 5:  # retried once the user's turn is over
                self.submit(task.kind, task.run, key=task.key, priority=-task.sort[0])
        except VaultClosed:
            raise  # not the task's fault: the loop ends (serve)
        except Exception as exc:  # noqa: BLE001 - the executor's loop boundary: recorded, and the next task runs
            failure = self.health.failed("scheduler", f"{task.kind} task", exc)
            self._errors.append({"kind": task.kind, "error": failure.error, "at": failure.at})
        finally:
            self._running = None
            log.debug("%s task took %.0f ms", task.kind, (time.perf_counter() - started) * 1000)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.serve, name="memdesk-scheduler", daemon=True)
            self._thread.start()

    def allow_restart(self) -> None:
        """Undo `stop()` so that `serve()` runs again (the app's QThread is started anew)."""
        self._stop.clear()

    def _has_work(self) -> bool:
        return self._foreground == 0 and (self._jobs_waiting or any(not t.cancelled for t in self._heap))

    def serve(self) -> None:
        """The executor loop, until `stop()`: the app calls it from its QThread, `start()` from a thread.
        It never ends on a failure: each is recorded in `health` and the loop goes on."""
        try:
            while not self._stop.is_set():
                with self._cv:
                    self._cv.wait_for(lambda: self._stop.is_set() or self._has_work(), timeout=5.0)
                    self._jobs_waiting = False
                    self._busy = True
                try:
                    self.tick()
                    self.run_pending()  # also renews the job queue's lease while idle (JobQueue.claim)
                except Exception as exc:  # noqa: BLE001 - the loop boundary: recorded, paused, and on again
                    if self._stop.is_set() or isinstance(exc, VaultClosed):
                        return  # shutting down, or the vault closed under us: nothing left to do
                    self.health.failed("scheduler", "background work", exc)
                    self._stop.wait(RETRY_AFTER_S)
                finally:
                    with self._cv:
                        self._busy = False
                        self._cv.notify_all()
        finally:
            self._release_jobs()

    def _release_jobs(self) -> None:
        if self.jobs is None:
            return
        try:
            self.jobs.release()
        except VaultClosed:
            pass  # the lease lapses with this process
        except Exception as exc:  # noqa: BLE001 - the loop is ending; the lease then lapses on its own
            self.health.failed("scheduler", "giving the job queue back", exc)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until the executor loop has nothing queued in memory and is not running anything
        (persisted jobs are not waited for). False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._busy and not self._jobs_waiting
                                     and not any(not t.cancelled for t in self._heap), timeout)

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def status(self) -> dict:
        """Read-only (a status query never changes the queue): in-memory tasks, persisted jobs and
        the failures the vault's background loops recorded (`health`)."""
        with self._cv:
            pending = Counter(t.kind for t in self._heap if not t.cancelled)
        jobs = self.jobs.status() if self.jobs is not None else {"counts": {}, "last_errors": [], "owner": None}
        for kind, counts in jobs["counts"].items():
            pending[kind] += counts.get("pending", 0)
        return {"pending": dict(pending), "running": self._running, "completed": dict(self.completed),
                "dropped": self.dropped, "last_errors": list(self._errors) + jobs["last_errors"],
                "jobs": jobs["counts"], "owner": jobs.get("owner"), "preparation": self.preparation,
                "failures": [f.to_dict() for f in self.health.failures()]}
