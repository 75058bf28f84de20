"""Drives the chat model for the main window: load, send (streamed), stop, close.

The wiring mirrors the terminal REPL (app/cli_chat.py): one Chat with the persisted job
queue and activation memory, a Preparer that hooks the scheduler's triggers, and a
MemReader for fine extraction. Everything that touches the model runs on the TaskRunner's
model lane; a user's turn runs inside `scheduler.foreground()`, so background prefill
gives the model back within one chunk. Text pieces reach the window as task progress,
in order, on the GUI thread.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.api import Memory
from memdesk.engine.chat.turn import Chat, ChatConfig, TurnResult
from memdesk.engine.errors import MemDeskError
from memdesk.engine.llm.base import ChatModel
from memdesk.engine.llm.registry import load_model as load_plain_model
from memdesk.engine.parametric.loading import load_chat_model
from memdesk.engine.parametric.registry import Adapter
from memdesk.engine.reader.jobs import EXTRACT_JOB
from memdesk.engine.scheduler.memscheduler import MemScheduler
from memdesk.engine.scheduler.next_scene import Preparer
from memdesk.engine.scheduler.queue import JobQueue
from memdesk.engine.vault.feedback import ReplyFeedback
from memdesk.ui.chat_window import MainWindow
from memdesk.ui.settings_endpoint import EndpointFields
from memdesk.ui.tasks import TaskRunner, weakly
from memdesk.ui.transcript import THINKING, info_from_stats

if TYPE_CHECKING:
    from memdesk.engine.llm.endpoint import EndpointConfig

log = logging.getLogger(__name__)

SCHEDULER_POLL_MS = 500
EXERCISE_TEXT = "What should I pack for the Gerês weekend?"
_TASK_WORDS = {"prefix_build": "preparing next turn", "next_scene": "predicting next turn",
               EXTRACT_JOB: "reading new memories", "nightly": "nightly training"}


def describe_scheduler(status: dict) -> str:
    """MemScheduler.status() in a few words for the status line."""
    running = [status["running"]] if status.get("running") else []
    running += [kind for kind, counts in status.get("jobs", {}).items() if counts.get("running")]
    queued = sum(status.get("pending", {}).values())
    parts = [_TASK_WORDS.get(kind, kind.replace("_", " ")) for kind in dict.fromkeys(running)]
    if queued:
        parts.append(f"{queued} queued")
    return " · ".join(parts) or "idle"


def wire_endpoint_fields(fields: EndpointFields, runner: TaskRunner) -> None:
    """Settings ▸ Model with a server: its address checked by the engine's rule, and "List models"
    asked of the server on a worker (a server that does not answer takes seconds to time out)."""
    from memdesk.app.settings_store import validate_endpoint_url
    from memdesk.engine.llm.endpoint import list_models

    fields.validate = validate_endpoint_url

    def listed(url: str) -> None:
        runner.read(lambda: [model.id for model in list_models(url)], on_done=weakly(fields.show_models),
                    on_error=weakly(fields.show_error_of))

    fields.listRequested.connect(listed)


@dataclass
class _Wiring:
    model: ChatModel
    owned: bool  # the controller loaded it, so the controller closes it
    chat: Chat
    preparer: Preparer
    jobs: JobQueue
    extract: Callable = field(repr=False)


@dataclass
class _Turn:
    """What the model lane hands back when a reply ends."""
    result: TurnResult
    stopped: bool
    pieces: int
    ttft_ms: float
    total_ms: float


class ChatController(QObject):
    modelReady = Signal(str)  # the model's name
    modelFailed = Signal(str)  # what went wrong and how to fix it
    replyFinished = Signal(str)  # the reply's session id

    def __init__(self, mem: Memory, runner: TaskRunner, window: MainWindow, scheduler: MemScheduler,
                 model_path: str | Path | None = None, backend: str = "auto", *, config: ChatConfig | None = None,
                 n_ctx: int = 4096, endpoint: EndpointConfig | None = None, parent: QObject | None = None):
        super().__init__(parent if parent is not None else window)
        self.mem = mem
        self.runner = runner
        self.window = window
        self.scheduler = scheduler
        self.model_path = Path(model_path) if model_path else None
        self.backend = backend
        self.endpoint = endpoint  # a local server runs the model instead (then model_path is not used)
        self.config = config or ChatConfig()
        self.n_ctx = n_ctx
        self.ready = False
        self.adapter: Adapter | None = None  # the preference adapter loaded with the model, if any
        self.error = ""  # the last load error (empty once a model is ready)
        self.busy = False  # a reply is being written
        self.pieces_received = 0  # over the controller's life; the smoke check compares before/after
        self._wiring: _Wiring | None = None
        self._loading = False
        self._generation = 0  # of load requests: a load that finishes after a newer request (or close) is undone
        self._stop = threading.Event()
        self._exercise: dict | None = None
        window.sendRequested.connect(self.send)
        window.stopRequested.connect(self.stop)
        window.sessionSelected.connect(self.session_opened)
        window.rateRequested.connect(self.rate_reply)
        window.editReplyRequested.connect(self.edit_reply)
        self._polling = False
        self._poll = QTimer(self)
        self._poll.setInterval(SCHEDULER_POLL_MS)
        self._poll.timeout.connect(self._poll_scheduler)
        self._poll.start()

    # ------------------------------------------------------------ the model
    def load_model(self) -> None:
        """Load `model_path` (default: the embedded model) with its active preference adapter, if
        any, on the model lane; the status line follows. With `endpoint`, connect to that server:
        no adapter (it needs a model in this process), and Chat skips activation memory by itself."""
        path, backend, n_ctx, mem, endpoint = self.model_path, self.backend, self.n_ctx, self.mem, self.endpoint
        if endpoint is not None:
            def connect() -> _Wiring:
                self.adapter = None
                return self._wire(load_plain_model(endpoint=endpoint, n_ctx=n_ctx), owned=True)

            self._start(f"Model: connecting to {endpoint.url}…", connect)
            return

        def load() -> _Wiring:
            model, adapter = load_chat_model(mem, path, backend=backend, n_ctx=n_ctx)
            self.adapter = adapter
            return self._wire(model, owned=True)

        self._start(f"Model: loading {path.name if path else 'the embedded model'}…", load)

    def use_model(self, model: ChatModel, owned: bool = False) -> None:
        """Chat with a model loaded elsewhere (tests, the smoke run); `owned` = close it on close()."""
        self._start(f"Model: starting {model.info.name}…", lambda: self._wire(model, owned=owned))

    def _start(self, status: str, make: Callable[[], _Wiring]) -> None:
        self._loading, self.ready, self.error = True, False, ""
        self.window.set_model_status("loading", status)
        if not self._poll.isActive():  # started again after close()
            self._poll.start()
        self._generation += 1
        generation = self._generation
        old, self._wiring = self._wiring, None

        def work() -> _Wiring:
            if old is not None:
                self._unwire(old)  # after any reply still running: the model lane is one thread
            return make()

        self.runner.model(work, on_done=lambda wiring: self._attached(generation, wiring),
                          on_error=lambda exc: self._load_failed(generation, exc))

    def set_model(self, model_path: str | Path | None, backend: str = "auto",
                  endpoint: EndpointConfig | None = None) -> None:
        """Settings changed the model: load the new one (the old one is closed first, on the model lane)."""
        self.model_path = Path(model_path) if model_path else None
        self.backend = backend
        self.endpoint = endpoint
        self.load_model()

    @property
    def model(self) -> ChatModel | None:
        return self._wiring.model if self._wiring is not None else None

    def model_name(self) -> str:
        return self._wiring.model.info.name if self._wiring is not None else ""

    @property
    def in_process_only_note(self) -> str:
        """Why activation memory and learned preferences are off ("" when they are not)."""
        from memdesk.engine.llm.endpoint import IN_PROCESS_ONLY

        return IN_PROCESS_ONLY if self.endpoint is not None else ""

    def _wire(self, model: ChatModel, owned: bool) -> _Wiring:
        """Runs on the model lane (JobQueue and the hooks touch the vault); as `memdesk` on a terminal does."""
        from memdesk.engine.reader.memreader import MemReader

        ok = False
        try:
            jobs = self.scheduler.jobs
            if jobs is None:  # the scheduler's executor is what runs extraction: give it the queue
                jobs = self.scheduler.jobs = JobQueue(self.mem.db, health=self.mem.health)
            # The scheduler runs persisted jobs under its model lock, so extraction never
            # runs on the model during a user's turn.
            extract = MemReader(self.mem, model, user_name=self.config.user_name).handle_job
            jobs.handlers[EXTRACT_JOB] = extract
            activation = ActivationCache(self.mem.db)
            chat = Chat(self.mem, model, self.config, jobs=jobs, activation=activation)
            wiring = _Wiring(model, owned, chat, Preparer(chat, self.scheduler, activation), jobs, extract)
            ok = True
            return wiring
        finally:
            if not ok and owned:
                model.close()

    def _unwire(self, wiring: _Wiring) -> None:
        """Model lane: detach the triggers, give extraction a model-free reader, close the model."""
        preparer = wiring.preparer
        for hooks, hook in ((wiring.chat.on_reply, preparer.reply_finished),
                            (self.mem.on_added, preparer.memories_added),
                            (self.mem.on_changed, preparer.memories_changed)):
            if hook in hooks:
                hooks.remove(hook)
        self.scheduler.cancel(kind="prefix_build")
        if wiring.jobs.handlers.get(EXTRACT_JOB) is wiring.extract:
            from memdesk.engine.reader.memreader import MemReader

            # Queued extraction keeps working (rules only) until the next model is ready.
            wiring.jobs.handlers[EXTRACT_JOB] = MemReader(self.mem, None, user_name=self.config.user_name).handle_job
        if wiring.owned:
            with self.scheduler.foreground():  # wait for a background prefill to give the model back
                wiring.model.close()

    def _attached(self, generation: int, wiring: _Wiring) -> None:
        if generation != self._generation:
            self.runner.model(lambda: self._unwire(wiring))  # a newer model was asked for meanwhile
            return
        self._wiring, self._loading, self.ready, self.error = wiring, False, True, ""
        info = wiring.model.info
        learned = " + your preferences adapter" if self.adapter is not None else ""
        if self.endpoint is not None:
            learned = f" at {info.path} · {self.in_process_only_note}"
        self.window.set_model_status("ready", f"Model: {info.name} ({info.backend}){learned}")
        self.modelReady.emit(info.name)
        self.session_opened(self.window.current_session_id())  # prepare the open chat's next turn
        if self._exercise is not None and not self._exercise["sent"]:
            self._exercise_send()

    def _load_failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self._loading, self.ready = False, False
        self.error = str(exc) if isinstance(exc, MemDeskError) else (
            f"The model could not be loaded ({type(exc).__name__}: {exc}). Choose another model in Settings.")
        self.window.set_model_status("error", self.error)
        self.modelFailed.emit(self.error)

    # ------------------------------------------------------------ a turn
    def send(self, text: str, session_id: str = "") -> None:
        wiring = self._wiring
        if wiring is None:
            self.window.fail_reply(self.error or "The model is still loading; send again once the status line "
                                                 "says it is ready.")
            return
        if self.busy:
            self.window.show_error("A reply is still being written; wait for it or press Esc to stop it.")
            return
        self.busy = True
        self._stop.clear()
        chat, scheduler, stop = wiring.chat, self.scheduler, self._stop

        def work(progress: Callable[[object], None]) -> _Turn:
            started = time.perf_counter()
            first, count, stopped = 0.0, 0, False
            with scheduler.foreground():
                response = chat.send(text, session_id or None)
                progress(("begin", response.result.session_id))
                pieces = iter(response)
                try:
                    for piece in pieces:
                        count += 1
                        first = first or time.perf_counter()
                        progress(("piece", piece))
                        if stop.is_set():
                            stopped = True
                            break
                finally:
                    pieces.close()  # a stopped reply ends the model's stream here, not at garbage collection
                    stopped = stopped or stop.is_set()  # a server's stream interrupted while it was silent
                    if stopped:
                        response.stop()  # the partial reply is stored
            ended = time.perf_counter()
            return _Turn(response.result, stopped, count, ((first or ended) - started) * 1000, (ended - started) * 1000)

        self.runner.model(work, on_done=self._reply_done, on_error=self._reply_failed, on_progress=self._progress)

    def stop(self) -> None:
        """The Stop button: the model lane stops at the next piece and stores what was written. A
        server's stream is also cut now, for a server that is silent (prefilling, or stalled)."""
        self._stop.set()
        interrupt = getattr(self.model, "interrupt", None)
        if self.busy and interrupt is not None:
            interrupt()

    def _progress(self, value: tuple[str, str]) -> None:
        kind, payload = value
        if kind == "piece":
            self.pieces_received += 1
            self.window.append_reply_text(payload)
            return
        self.window.begin_reply(payload)
        self.window.reload_sessions()  # a new chat appears; a continued one moves to the top
        if self.window.current_session_id() == payload:
            self.window.select_session(payload)

    def _reply_done(self, turn: _Turn) -> None:
        result = turn.result
        stats = result.stats
        info = info_from_stats({"completion_tokens": stats.completion_tokens or turn.pieces,
                                "ttft_ms": stats.prefill_ms or turn.ttft_ms,
                                "total_ms": stats.total_ms or turn.total_ms})
        info.update(activation=result.activation, stopped=turn.stopped)
        if result.answered_from_memory:  # no model ran: tokens and a first-token time would mislead
            info = {"from_memory": True, "stopped": turn.stopped}
        # The memories the turn gave the model, as it gave them: nothing to read again.
        given = {m.id: m.memory for m in result.memories + result.preferences}
        reply_id = result.reply_message.id if result.reply_message is not None else ""
        self.busy = False
        self.window.finish_reply(list(given.items()), info, reply_id)
        self.replyFinished.emit(result.session_id)

    def _reply_failed(self, exc: BaseException) -> None:
        self.busy = False
        message = str(exc) if isinstance(exc, MemDeskError) else (
            f"The reply failed ({type(exc).__name__}: {exc}). Try again; if it keeps failing, choose another "
            "model in Settings.")
        self.window.fail_reply(message)

    # ------------------------------------------------------------ feedback on replies
    def rate_reply(self, message_id: str, rating: int) -> None:
        """Thumbs up / down (0 = undone) on a reply, stored on the write lane; the bubble follows."""
        feedback = self.mem.feedback
        self.runner.write(lambda: feedback.rate(message_id, rating), on_done=self._feedback_stored,
                          on_error=self._feedback_failed)

    def edit_reply(self, message_id: str, text: str) -> None:
        """The person's preferred version of a reply: training data for the nightly adapter."""
        feedback = self.mem.feedback
        self.runner.write(lambda: feedback.edit(message_id, text), on_done=self._feedback_stored,
                          on_error=self._feedback_failed)

    def _feedback_stored(self, row: ReplyFeedback) -> None:
        self.window.show_feedback(row.message_id, row.rating, row.edited_text)

    def _feedback_failed(self, exc: BaseException) -> None:
        self.window.show_error(str(exc) if isinstance(exc, MemDeskError) else
                               f"The feedback was not saved ({type(exc).__name__}: {exc}). Try again.")

    # ------------------------------------------------------------ the scheduler
    def session_opened(self, session_id: str) -> None:
        """Session-opened trigger: the scheduler builds that chat's memory prefix in the background."""
        wiring = self._wiring
        if session_id and wiring is not None:
            wiring.preparer.session_opened(session_id, predict_first=session_id not in wiring.chat.predicted)

    def _poll_scheduler(self) -> None:
        if self._polling:
            return
        self._polling = True

        def shown(status: dict) -> None:
            self._polling = False
            self.window.set_scheduler_status(describe_scheduler(status))
            self.window.status_line.set_failures(status.get("failures", []))

        def failed(exc: BaseException) -> None:
            self._polling = False
            self.window.set_scheduler_status(f"status unavailable ({exc})")

        # status() counts persisted jobs in the vault: a read, so not on the GUI thread.
        self.runner.read(self.scheduler.status, on_done=shown, on_error=failed)

    # ------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop any reply and release the model (on the model lane, after the reply's last piece)."""
        self._poll.stop()
        self._stop.set()
        self._generation += 1
        wiring, self._wiring = self._wiring, None
        self.ready = self._loading = False
        if wiring is not None:
            self.runner.model(lambda: self._unwire(wiring))

    # ------------------------------------------------------------ `memdesk gui --smoke`
    def exercise(self) -> None:
        """Start a new chat and send one message (once the model is ready)."""
        self._exercise = {"sent": False, "pieces": self.pieces_received}
        if self._wiring is not None:
            self._exercise_send()
        elif not self._loading:
            self.load_model()

    def _exercise_send(self) -> None:
        assert self._exercise is not None
        self._exercise["sent"] = True
        self.window.new_session()
        self.window.input.setPlainText(EXERCISE_TEXT)
        self.window.send_current()

    def check_exercised(self) -> None:
        if self.error:
            raise AssertionError(f"the chat model did not load: {self.error}")
        if self._exercise is None or not self._exercise["sent"]:
            raise AssertionError("exercise() did not send a message (was the model ready?)")
        if self.busy:
            raise AssertionError("the reply is still being written")
        if self.pieces_received <= self._exercise["pieces"]:
            raise AssertionError("no streamed text reached the window")
        bubbles = self.window.transcript.bubbles()
        if len(bubbles) < 2 or bubbles[-2].role != "user" or bubbles[-2].text != EXERCISE_TEXT:
            raise AssertionError(f"the transcript does not show the message sent: {[b.text for b in bubbles]}")
        reply = bubbles[-1]
        if reply.role != "assistant" or not reply.text.strip() or reply.text == THINKING:
            raise AssertionError(f"the transcript does not show the reply (last bubble: {reply.role}: {reply.text!r})")
        if not reply.message_id or reply.feedback is None:
            raise AssertionError("the finished reply has no feedback buttons (its message id did not reach it)")
        session_id = self.window.current_session_id()
        if not session_id:
            raise AssertionError("the new chat did not become a session")
        if session_id not in self.window.sessions.session_ids():
            raise AssertionError("the new chat is not in the session list")
