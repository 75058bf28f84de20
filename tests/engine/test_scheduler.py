"""MemScheduler: bounded, prioritised, deduplicated queue; pre-emption; next-scene prefix builds."""
from __future__ import annotations

import threading
import time

import pytest

from memdesk.engine.errors import InvalidInputError, Preempted
from memdesk.engine.scheduler.memscheduler import MemScheduler
from memdesk.engine.scheduler.queue import JobQueue


def recorder(log, name):
    return lambda should_stop: log.append(name)


def wait_until(condition, timeout: float = 30.0) -> bool:
    """Wait for a flag another thread raises (checked after each short wait, so no step relies on timing)."""
    ready = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        ready.wait(0.001)
    return True


def test_priority_order_and_one_pending_task_per_key():
    scheduler, log = MemScheduler(), []
    scheduler.submit("prefix_build", recorder(log, "old prefix"), key="prefix:s1")
    scheduler.submit("prefix_build", recorder(log, "new prefix"), key="prefix:s1")  # replaces the old one
    scheduler.submit("extract", recorder(log, "extract"))
    scheduler.submit("other", recorder(log, "low"), priority=-1)
    assert scheduler.status()["pending"] == {"prefix_build": 1, "extract": 1, "other": 1}
    assert scheduler.run_pending() == 3
    assert log == ["extract", "new prefix", "low"]
    assert scheduler.status()["completed"] == {"extract": 1, "prefix_build": 1, "other": 1}


def test_the_queue_is_bounded_and_drops_the_least_important():
    scheduler, log = MemScheduler(max_pending=2), []
    assert scheduler.submit("a", recorder(log, "a"), priority=1)
    assert scheduler.submit("b", recorder(log, "b"), priority=3)
    assert scheduler.submit("c", recorder(log, "c"), priority=2)  # evicts "a"
    assert not scheduler.submit("d", recorder(log, "d"), priority=0)  # least important: refused
    scheduler.run_pending()
    assert log == ["b", "c"] and scheduler.dropped == 2


def test_cancel_by_kind():
    scheduler, log = MemScheduler(), []
    scheduler.submit("prefix_build", recorder(log, "p"), key="prefix:s1")
    scheduler.submit("extract", recorder(log, "e"))
    assert scheduler.cancel(kind="prefix_build") == 1
    scheduler.run_pending()
    assert log == ["e"]


def test_a_user_turn_preempts_background_prefill_which_is_retried_after():
    scheduler = MemScheduler()
    started, chunks, runs = threading.Event(), [], []

    def prefill(should_stop):
        runs.append(1)
        for chunk in range(200):
            if should_stop():
                raise Preempted("user turn")
            chunks.append(chunk)
            started.set()
            if len(runs) == 1 and chunk >= 2:  # the first run keeps going only until a turn arrives
                assert wait_until(should_stop), "the user turn never raised should_stop()"

    scheduler.submit("prefix_build", prefill, key="prefix:s1")
    worker = threading.Thread(target=scheduler.run_pending)
    worker.start()
    assert started.wait(5)
    with scheduler.foreground():  # gets the model only once the prefill has given way
        stopped_at = len(chunks)
        assert scheduler.status()["pending"] == {"prefix_build": 1}  # requeued
    worker.join(5)
    assert stopped_at < 200
    assert scheduler.run_pending() == 1 and len(runs) == 2


def test_failures_are_reported_in_status_and_persisted_jobs_run_too(kw_mem):
    jobs = JobQueue(kw_mem.db)
    ran = []
    jobs.handlers["extract"] = lambda job, progress: ran.append(job.payload["n"])
    jobs.enqueue("extract", {"n": 1})
    scheduler = MemScheduler(jobs)

    def broken(should_stop):
        raise InvalidInputError("bad task")

    scheduler.submit("prefix_build", broken)
    assert scheduler.run_pending() == 2
    status = scheduler.status()
    assert ran == [1] and status["last_errors"][0]["error"] == "bad task"
    assert status["jobs"]["extract"] == {"done": 1}


@pytest.mark.slow
def test_after_a_reply_the_next_turns_prefix_is_ready_and_restored(mem, llama_model):
    from memdesk.engine.activation.states import ActivationCache
    from memdesk.engine.chat.turn import Chat, ChatConfig
    from memdesk.engine.scheduler.next_scene import Preparer

    mem.add("The user's sister Ana lives in Porto and works as a nurse.")
    mem.add("The user is training for the Lisbon half marathon in October.")
    mem.wait_indexed()
    model = llama_model
    model.reset()
    scheduler, cache = MemScheduler(), ActivationCache(mem.db)
    chat = Chat(mem, model, ChatConfig(max_reply_tokens=12, extract=False, profile="full"), activation=cache)
    preparer = Preparer(chat, scheduler, cache)
    with scheduler.foreground():
        first = chat.send("How is my sister doing in Porto?")
        first.text()
    session = first.result.session_id
    assert scheduler.status()["pending"] == {"prefix_build": 1}
    assert scheduler.run_pending() == 1  # the background build
    predicted = {m.id for m in chat.predicted[session]}
    assert any("Ana" in m.memory for m in chat.predicted[session])
    with scheduler.foreground():
        second = chat.send("And what does she do for work?", session)
        second.text()
    assert second.result.activation == "hit"
    assert predicted & set(second.result.memory_ids)
    # A memory inside the prefix changes: the state goes and a rebuild is queued.
    sister = next(m for m in chat.predicted[session] if "Ana" in m.memory)
    scheduler.run_pending()
    with mem.db.read() as conn:
        assert conn.execute("SELECT count(*) FROM kv_state_memories WHERE memory_id = ?",
                            (sister.id,)).fetchone()[0] >= 1
    mem.update(sister.id, memory="The user's sister Ana lives in Braga and works as a nurse.")
    with mem.db.read() as conn:
        assert conn.execute("SELECT count(*) FROM kv_state_memories WHERE memory_id = ?",
                            (sister.id,)).fetchone()[0] == 0
    assert session in preparer.prefix_ids and scheduler.status()["pending"] == {"prefix_build": 1}
    scheduler.cancel(kind="prefix_build")
    preparer.idle()  # the idle trigger queues one build per recent session
    assert scheduler.status()["pending"] == {"prefix_build": 1}


def test_the_nightly_window_queues_its_tasks_once_a_night():
    from datetime import datetime

    scheduler, log = MemScheduler(), []
    scheduler.add_nightly("adapter", recorder(log, "train"))
    assert scheduler.tick(datetime(2026, 11, 21, 14, 0)) == []  # afternoon: closed
    assert scheduler.tick(datetime(2026, 11, 22, 2, 30)) == ["adapter"]
    assert scheduler.tick(datetime(2026, 11, 22, 3, 30)) == []  # same night
    assert scheduler.status()["pending"] == {"adapter": 1}
    scheduler.run_pending()
    assert log == ["train"]
    assert scheduler.tick(datetime(2026, 11, 23, 2, 5)) == ["adapter"]  # the next night


def test_a_window_across_midnight_counts_as_one_night():
    from datetime import datetime

    from memdesk.engine.scheduler.memscheduler import NightlyWindow

    scheduler = MemScheduler()
    scheduler.window = NightlyWindow(23, 4)
    scheduler.add_nightly("adapter", lambda should_stop: None)
    assert scheduler.tick(datetime(2026, 11, 21, 23, 30)) == ["adapter"]
    assert scheduler.tick(datetime(2026, 11, 22, 1, 0)) == []
    assert scheduler.tick(datetime(2026, 11, 22, 12, 0)) == []
    assert scheduler.tick(datetime(2026, 11, 22, 23, 1)) == ["adapter"]


@pytest.mark.slow
def test_the_whole_chain_on_the_background_thread_under_load(mem, llama_model):
    """The executor thread builds prefixes while user turns keep arriving and a CPU hog runs:
    every turn pre-empts, nothing deadlocks, and the later turns restore a prepared prefix."""
    from memdesk.engine.activation.states import ActivationCache
    from memdesk.engine.chat.turn import Chat, ChatConfig
    from memdesk.engine.scheduler.next_scene import Preparer

    mem.add("The user's sister Ana lives in Porto and works as a nurse.")
    mem.add("The user prefers short answers.", memory_type="PreferenceMemory")
    mem.wait_indexed()
    llama_model.reset()
    scheduler, cache = MemScheduler(), ActivationCache(mem.db)
    chat = Chat(mem, llama_model, ChatConfig(max_reply_tokens=8, extract=False, profile="full"), activation=cache)
    preparer = Preparer(chat, scheduler, cache)
    stop_hog = threading.Event()

    def hog():
        while not stop_hog.is_set():
            sum(i * i for i in range(20000))

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(2)]
    for thread in hogs:
        thread.start()
    scheduler.start()
    try:
        session, activations = None, []
        for question in ("How is Ana?", "Where does she live?", "What is her job?"):
            with scheduler.foreground():
                reply = chat.send(question, session)
                reply.text()
            session = reply.result.session_id
            activations.append(reply.result.activation)
            assert scheduler.wait_idle(300)  # the background build is done before the next turn
        # A new preference is a standing memory of every prefix: the added trigger rebuilds it.
        mem.add("The user likes replies that end with a question.", memory_type="PreferenceMemory")
        assert scheduler.wait_idle(300)
        with scheduler.foreground():
            last = chat.send("Anything else about her?", session)
            last.text()
    finally:
        scheduler.stop()
        stop_hog.set()
    assert activations[1:] == ["hit", "hit"]
    assert last.result.activation == "hit"
    assert scheduler.status()["last_errors"] == []
    assert scheduler.status()["completed"]["prefix_build"] >= 4
    assert session in preparer.prefix_ids


def test_a_task_that_raises_anything_is_recorded_and_the_loop_goes_on():
    scheduler = MemScheduler()
    after = threading.Event()

    def broken(should_stop):
        raise ValueError("not a MemDeskError")

    scheduler.start()
    try:
        scheduler.submit("prefix_build", broken, key="prefix:s1")
        scheduler.submit("other", lambda should_stop: after.set(), priority=-1)  # runs after the broken one
        assert after.wait(30), "the executor loop died on the failing task"
        assert scheduler.wait_idle(30)
    finally:
        scheduler.stop()
    status = scheduler.status()
    assert status["last_errors"][0]["kind"] == "prefix_build" and "ValueError" in status["last_errors"][0]["error"]
    assert [(f["source"], f["kind"]) for f in status["failures"]] == [("scheduler", "ValueError")]
    assert "not a MemDeskError" in status["failures"][0]["error"]


def test_unticking_preparation_stops_only_preparation_and_the_executor_restarts_after_stop(kw_mem):
    """Settings' "Prepare the next reply in the background": off refuses prefix builds and
    next-scene work; extraction (persisted jobs) and the nightly tasks still run. A stopped
    executor serves again when started again (it stayed dead until a restart)."""
    jobs = JobQueue(kw_mem.db)
    extracted, built, nightly = threading.Event(), threading.Event(), threading.Event()
    jobs.handlers["extract"] = lambda job, progress: extracted.set()
    scheduler = MemScheduler(jobs)
    scheduler.add_nightly("adapter", lambda should_stop: nightly.set())
    scheduler.set_preparation(False)
    assert not scheduler.submit("prefix_build", lambda should_stop: built.set(), key="prefix:s1")
    scheduler.start()
    try:
        jobs.enqueue("extract", {"n": 1})  # wakes the executor: no 5 s poll to wait for
        assert extracted.wait(30)
        from datetime import datetime

        assert scheduler.tick(datetime(2026, 11, 22, 2, 30)) == ["adapter"]
        assert nightly.wait(30)
    finally:
        scheduler.stop()
    scheduler.set_preparation(True)
    scheduler.allow_restart()  # what SchedulerThread.start() does
    worker = threading.Thread(target=scheduler.serve)
    worker.start()
    try:
        assert scheduler.submit("prefix_build", lambda should_stop: built.set(), key="prefix:s1")
        assert built.wait(30), "the executor stayed dead after stop() and a new start"
    finally:
        scheduler.stop()
        worker.join(30)
    assert scheduler.status()["completed"]["prefix_build"] == 1
