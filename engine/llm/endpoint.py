"""Chat models that an OpenAI-compatible server on this computer runs: Ollama, LM Studio,
llama.cpp's llama-server, Jan, llama-cpp-python's server.

    model = EndpointModel(EndpointConfig("http://127.0.0.1:11434", "qwen2.5:7b"))
    list_models("http://127.0.0.1:1234")          # what a server offers

How it differs from a model MemDesk runs itself, and why:

- Turns travel as messages (/v1/chat/completions) and the server applies the model's chat
  template, which only it knows. So `render_chat()` returns the turns serialised as JSON
  (an "envelope", `{"memdesk.messages": [...]}`) and `stream()` parses it back. Text after
  the envelope is the opening of the reply (engine.chat.turn's grounding guard): it is sent as a
  final assistant message, which llama-server and Ollama continue. A prompt that is not an
  envelope is sent as-is to /v1/completions.
- `tokenize()` is an estimate: the server's tokenizer is not ours to call per piece of a
  budget (engine.chat.turn counts dozens of pieces a turn), and the envelope is not the text the
  server will tokenize anyway. The estimate errs high (see `estimate_tokens`), so a prompt
  laid out within the budget fits the server's context.
- No KV state (there is no save_state/load_state, so engine.llm.base.StatefulModel does
  not match and activation memory is skipped) and no LoRA adapter: both need a model in
  this process.
- Only servers on this computer: the prompt carries the person's memories, and MemDesk
  promises they never leave the machine.
"""
from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from memdesk.engine.errors import EndpointError, EndpointUnavailableError, InvalidInputError, ModelError
from memdesk.engine.llm.base import ChatTurn, GenerationConfig, GenerationStats, ModelInfo

log = logging.getLogger(__name__)

BACKEND = "endpoint"
ENVELOPE_KEY = "memdesk.messages"
_ENVELOPE_START = '{"' + ENVELOPE_KEY + '"'
# What the app says wherever an endpoint is in use (status line, CLI, Settings).
IN_PROCESS_ONLY = ("Activation memory (KV prefixes) and learned preferences are off: both need a model "
                   "MemDesk runs itself, not a server.")
# The usual ports of the servers people run, to name the one that is not answering.
_KNOWN_SERVERS = {11434: "Ollama", 1234: "LM Studio", 8080: "llama-server", 1337: "Jan",
                  8000: "the llama-cpp-python server"}
_MAX_ERROR_BODY = 4096
# Pieces of text that cost at least a token each: an ASCII word with the space before it, a digit
# (several tokenizers split numbers into digits), a non-ASCII character, a space before a digit
# or a mark, any other mark, a run of spaces.
_PIECES = re.compile(r"\s?[A-Za-z]+|\d|[^\x00-\x7f]|\s+(?=[^A-Za-z\s])|\S|\s+")


@dataclass(frozen=True)
class EndpointConfig:
    """Where the server is and which of its models to chat with ("" = the first it lists)."""

    url: str
    model: str = ""


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0  # nothing on loopback takes this long to accept a connection
    listing_s: float = 10.0
    # Until the first piece: the server may be loading the model from disk, then prefilling a long prompt.
    first_piece_s: float = 300.0
    between_pieces_s: float = 60.0  # a server silent this long mid-reply has stalled


@dataclass(frozen=True)
class ServedModel:
    """One model a server lists; n_params and n_ctx_train where the server says (llama-server does)."""

    id: str
    n_params: int = 0
    n_ctx_train: int = 0


def estimate_tokens(text: str) -> int:
    """More tokens than a prompt is likely to take in the tokenizers we know.

    The larger of one token per 3 bytes of UTF-8 (BPE vocabularies average about 4 bytes of
    English a token) and one per piece of `_PIECES`, a non-ASCII character counting one less
    than its UTF-8 bytes (small vocabularies spend about two tokens on a CJK character, three
    on an emoji). On LoCoMo's conversations it counts about 1.5 times SmolLM2's tokens: a rare
    word split in three is paid for by the common ones."""
    pieces = sum(max(1, len(p.encode("utf-8")) - 1) if len(p) == 1 and ord(p) > 127 else 1
                 for p in _PIECES.findall(text))
    return max(-(-len(text.encode("utf-8")) // 3), pieces)


def normalise_url(url: str) -> str:
    """`localhost:11434`, `http://127.0.0.1:1234/v1/` -> `http://localhost:11434`, `http://127.0.0.1:1234`.

    Raises InvalidInputError for anything that is not an http(s) address on this computer."""
    text = url.strip()
    if not text:
        raise InvalidInputError("No server address given: enter one such as http://127.0.0.1:11434 (Ollama) "
                                "or http://127.0.0.1:1234 (LM Studio).")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"{url!r} is not a server address ({exc}); use one such as "
                                "http://127.0.0.1:11434.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{url!r} is not an http address; use one such as http://127.0.0.1:11434.")
    if not _is_loopback(parts.hostname):
        raise InvalidInputError(
            f"{parts.hostname} is not this computer. MemDesk sends your memories only to a model server on "
            "this computer: use http://127.0.0.1:PORT or http://localhost:PORT.")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it could resolve anywhere
        return False


def list_models(url: str, timeouts: Timeouts = Timeouts()) -> list[ServedModel]:
    """The models the server at `url` offers (GET /v1/models)."""
    return _Client(normalise_url(url), timeouts).models()


class _Client:
    """HTTP to one server, every failure turned into an EndpointError that says what to do."""

    def __init__(self, base: str, timeouts: Timeouts):
        self.base = base
        self.timeouts = timeouts
        parts = urlsplit(base)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path  # e.g. a server behind a path ("/api")

    def server_name(self) -> str:
        return _KNOWN_SERVERS.get(self.port, "the model server")

    def server_title(self) -> str:
        """The name to start a sentence with ("LM Studio", "The model server")."""
        name = self.server_name()
        return name[:1].upper() + name[1:]

    def not_answering(self, detail: str = "") -> EndpointUnavailableError:
        name = self.server_name()
        return EndpointUnavailableError(
            f"Nothing answers at {self.base}{detail} — is {name} running? Start it, or choose another model "
            "in Settings.")

    def broke_off(self) -> EndpointError:
        return EndpointError(
            f"{self.server_title()} at {self.base} broke off the reply: it stopped, or failed on this prompt (its "
            "log says which; a prompt longer than the context it was started with is a common cause). Try again, "
            "or choose another model in Settings.")

    def connect(self, method: str, path: str, payload: dict | None, timeout: float,
                stream: _Stream | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request; returns the connection and the response (status checked by the caller).
        `stream` gets the socket as soon as it is connected, so that a Stop can cut it from then on
        (http.client itself lets go of it for a response that ends with the connection)."""
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeouts.connect_s)
        body = json.dumps(payload).encode("utf-8") if payload is not None else None
        headers = {"Accept": "application/json, text/event-stream"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.connect()
            conn.sock.settimeout(timeout)
            if stream is not None:
                stream.attach(conn.sock)
            conn.request(method, self.prefix + path, body=body, headers=headers)
            return conn, conn.getresponse()
        except TimeoutError as exc:
            conn.close()
            raise self.not_answering(f" (no answer within {timeout:g} s)") from exc
        except (ConnectionError, socket.gaierror) as exc:  # refused, reset, or the name did not resolve
            conn.close()
            raise self.not_answering() from exc
        except http.client.HTTPException as exc:
            conn.close()
            raise EndpointError(f"{self.base} did not answer in HTTP ({exc!r}); is that the address of a model "
                                "server? Check it in Settings.") from exc
        except OSError as exc:  # e.g. no route: reported with the system's own words
            conn.close()
            raise self.not_answering(f" ({exc.strerror or exc})") from exc

    def get_json(self, path: str, timeout: float) -> object:
        conn, response = self.connect("GET", path, None, timeout)
        try:
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self.not_answering(f" (the answer to {path} broke off)") from exc
        finally:
            conn.close()
        if response.status >= 400:
            raise self.http_error(response.status, body, path)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise EndpointError(f"{self.base}{path} did not answer with JSON; is that an OpenAI-compatible "
                                "server (Ollama, LM Studio, llama-server)? Check the address in Settings.") from exc

    def http_error(self, status: int, body: bytes, path: str, model: str = "") -> EndpointError:
        said = _error_text(body)
        if status == 404 and path.endswith("/models"):
            return EndpointError(f"{self.base} has no /v1/models: it does not look like an OpenAI-compatible "
                                 "server. Check the address in Settings (Ollama: http://127.0.0.1:11434).")
        if status == 404 and model:
            return EndpointError(f"{self.server_title()} at {self.base} has no model {model!r} "
                                 f"({said}). Choose one it lists in Settings ▸ Model ▸ List models.")
        if re.search(r"context|too long|exceed", said, re.IGNORECASE):
            return EndpointError(f"The prompt is too long for the server's context ({said}). Start the server "
                                 "with a larger context (llama-server -c, Ollama num_ctx), or give `memdesk chat` "
                                 "a smaller --n-ctx.")
        return EndpointError(f"{self.base} answered HTTP {status} to {path}: {said or 'no details'}. Check the "
                             "server's log, or choose another model in Settings.")

    def models(self) -> list[ServedModel]:
        data = self.get_json("/v1/models", self.timeouts.listing_s)
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise EndpointError(f"{self.base}/v1/models did not list models; is that an OpenAI-compatible server? "
                                "Check the address in Settings.")
        out = []
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
                meta = entry.get("meta")
                if not isinstance(meta, dict):
                    meta = {}
                out.append(ServedModel(entry["id"], _int(meta.get("n_params")), _int(meta.get("n_ctx_train"))))
        return out

    def served_context(self) -> int:
        """The context llama-server was started with (GET /props); 0 where the server does not say."""
        try:
            data = self.get_json("/props", self.timeouts.listing_s)
        except EndpointUnavailableError:
            raise
        except EndpointError:  # other servers have no /props
            return 0
        if not isinstance(data, dict):
            return 0
        settings = data.get("default_generation_settings")
        return _int(settings.get("n_ctx")) if isinstance(settings, dict) else _int(data.get("n_ctx"))


class EndpointModel:
    """A ChatModel on a server: streaming, stop (close() of the stream, or interrupt() from another
    thread), errors that name the server and say what to do."""

    def __init__(self, config: EndpointConfig, *, n_ctx: int = 4096, timeouts: Timeouts = Timeouts()):
        self._client = _Client(normalise_url(config.url), timeouts)
        self.timeouts = timeouts
        served = self._client.models()  # also the check that something answers there
        if not served:
            raise EndpointError(f"{self._client.server_title()} at {self._client.base} offers no model. "
                                "Load or pull one there (LM Studio: load a model; Ollama: `ollama pull NAME`), "
                                "then try again.")
        chosen = next((m for m in served if m.id == config.model), None) if config.model else served[0]
        if chosen is None:
            names = ", ".join(m.id for m in served[:8]) + (", …" if len(served) > 8 else "")
            raise EndpointError(f"{self._client.server_title()} at {self._client.base} has no model "
                                f"{config.model!r}; it offers {names}. Choose one in Settings ▸ Model ▸ List models.")
        self.model_id = chosen.id
        # The context the server really serves when it says (llama-server); else the caller's, no larger
        # than what the model was trained for.
        context = self._client.served_context() or min(n_ctx, chosen.n_ctx_train or n_ctx)
        name = PurePosixPath(chosen.id).stem if chosen.id.endswith(".gguf") else chosen.id
        fingerprint = hashlib.sha256(f"{self._client.base}\n{chosen.id}".encode()).hexdigest()[:24]
        self.info = ModelInfo(name=name, backend=BACKEND, path=self._client.base, fingerprint=fingerprint,
                              n_ctx=context, n_params=chosen.n_params)
        self._lock = threading.Lock()
        self._active: _Stream | None = None
        self._said_grammar = False

    # -------------------------------------------------------------- tokens
    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """As many placeholder ids as `estimate_tokens` counts: the budget needs only the count."""
        return [0] * estimate_tokens(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        raise ModelError("A model server does not share its tokenizer, so tokens cannot be turned back into text.")

    def render_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool = True) -> str:
        """The envelope stream() reads back (the server adds the generation prompt itself)."""
        messages = [{"role": t.role, "content": t.content} for t in turns]
        return json.dumps({ENVELOPE_KEY: messages}, ensure_ascii=False)

    # ---------------------------------------------------------- generation
    def stream(self, prompt: str, config: GenerationConfig, stats: GenerationStats | None = None) -> Iterator[str]:
        stats = stats if stats is not None else GenerationStats()
        path, payload = self._request(prompt, config)
        started = time.perf_counter()
        stream = _Stream()
        with self._lock:
            self._active = stream
        try:
            conn, response = self._client.connect("POST", path, payload, self.timeouts.first_piece_s, stream)
        except EndpointError:
            with self._lock:
                if self._active is stream:
                    self._active = None
            if stream.interrupted:  # stopped before the server answered: whatever broke, it was the Stop
                return
            raise
        try:
            if response.status >= 400:
                raise self._client.http_error(response.status, _read_some(response), path, self.model_id)
            for event in self._events(response, stream):
                text, finish = _piece(event)
                if text:
                    if stats.completion_tokens == 0:
                        stats.prefill_ms = (time.perf_counter() - started) * 1000
                        assert stream.sock is not None  # attached by connect() before it returned
                        stream.sock.settimeout(self.timeouts.between_pieces_s)
                    stats.completion_tokens += 1
                    yield text
                if finish:
                    stats.stopped_by = "stop" if finish in ("stop", "eos") else finish
                usage = event.get("usage")
                if isinstance(usage, dict):
                    stats.prompt_tokens = _int(usage.get("prompt_tokens")) or stats.prompt_tokens
                    stats.completion_tokens = _int(usage.get("completion_tokens")) or stats.completion_tokens
        finally:
            with self._lock:
                if self._active is stream:
                    self._active = None
            response.close()  # also what a Stop does (GeneratorExit at the yield): the server sees it and stops
            conn.close()
            stats.total_ms = (time.perf_counter() - started) * 1000

    def interrupt(self) -> None:
        """End the reply being read now, from any thread (a Stop button while the server is silent:
        the reading thread is blocked in the socket and cannot be asked). The stream ends quietly."""
        with self._lock:
            stream = self._active
        if stream is not None:
            stream.interrupt()

    def close(self) -> None:
        self.interrupt()

    # ------------------------------------------------------------ private
    def _request(self, prompt: str, config: GenerationConfig) -> tuple[str, dict]:
        if config.grammar and not self._said_grammar:
            self._said_grammar = True
            log.info("grammar-constrained generation is not available through a model server; replies are free text")
        payload: dict = {"model": self.model_id, "stream": True, "max_tokens": config.max_tokens,
                         "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed}
        if config.stop:
            payload["stop"] = list(config.stop)
        if config.repeat_penalty != 1.0:  # llama.cpp-based servers honour it; others ignore unknown fields
            payload["repeat_penalty"] = config.repeat_penalty
        if not prompt.startswith(_ENVELOPE_START):
            return "/v1/completions", {**payload, "prompt": prompt}
        try:
            envelope, end = json.JSONDecoder().raw_decode(prompt)
            messages = list(envelope[ENVELOPE_KEY])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError("The prompt given to the model server is damaged (its message list does not "
                             "parse). This is a bug in MemDesk; please report it.") from exc
        opening = prompt[end:]
        if opening:
            messages.append({"role": "assistant", "content": opening})
        return "/v1/chat/completions", {**payload, "messages": messages}

    def _events(self, response: http.client.HTTPResponse, stream: _Stream) -> Iterator[dict]:
        """The JSON payloads of a server-sent event stream (or the one body of a server that does not stream)."""
        try:
            if "text/event-stream" not in (response.getheader("Content-Type") or ""):
                yield _json_event(response.read(), self._client.base)
                return
            data: list[str] = []
            finished = False
            while True:
                raw = response.readline()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif not line and data:  # a blank line (or the end of the stream) ends one event
                    text, data = "\n".join(data), []
                    if text.strip() == "[DONE]":
                        return
                    event = _json_event(text.encode("utf-8"), self._client.base)
                    finished = finished or bool(_piece(event)[1])
                    yield event
                if not raw:
                    # Some servers close the stream after the last chunk instead of sending [DONE].
                    if stream.interrupted or finished:
                        return
                    raise self._client.broke_off()
        except TimeoutError as exc:
            if stream.interrupted:
                return
            raise EndpointUnavailableError(
                f"{self._client.server_title()} at {self._client.base} stopped answering in the middle "
                "of the reply. Try again; if it keeps happening, restart the server or choose another model in "
                "Settings.") from exc
        except (OSError, http.client.HTTPException) as exc:
            if stream.interrupted:
                return
            raise self._client.broke_off() from exc


class _Stream:
    """One reply being read; `interrupt()` may come from another thread at any point, even
    before the socket is connected (then it is cut the moment it is)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.interrupted = False
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self.sock = sock
            if self.interrupted:
                _cut(sock)

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            if self.sock is not None:
                _cut(self.sock)


def _cut(sock: socket.socket) -> None:
    """Both directions shut: a read blocked in another thread returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the reading thread: nothing left to cut


def _piece(event: dict) -> tuple[str, str]:
    """(text, finish reason) of one streamed chunk, chat (`delta.content`) or completion (`text`)."""
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", ""
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    finish = choice.get("finish_reason")
    return (text if isinstance(text, str) else ""), (finish if isinstance(finish, str) else "")


def _json_event(body: bytes, base: str) -> dict:
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise EndpointError(f"{base} sent a reply that is not JSON; is that an OpenAI-compatible server? "
                            "Check the address in Settings.") from exc
    if not isinstance(event, dict):
        raise EndpointError(f"{base} sent a reply MemDesk does not understand; check the address in Settings.")
    if "error" in event:
        raise EndpointError(f"The model server at {base} failed: {_error_text(json.dumps(event).encode())}. "
                            "Check the server's log, or choose another model in Settings.")
    return event


def _read_some(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read(_MAX_ERROR_BODY)
    except (OSError, http.client.HTTPException):
        return b""


def _error_text(body: bytes) -> str:
    """The message in an error body ({"error": {"message"}}, {"error": "..."}, {"detail": ...}, or text)."""
    text = body[:_MAX_ERROR_BODY].decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)[:300]
    return text[:300]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
