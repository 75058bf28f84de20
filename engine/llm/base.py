"""One interface for every chat-model backend (llama.cpp, MLX, a local OpenAI-compatible server, fake).

Backends are created by `engine.llm.registry.load_model`, which imports the heavy
library only when that backend is asked for.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

GGUF_MAGIC = b"GGUF"

# GGUF keeps the header, metadata and tokenizer at the start of the file; 16 MiB covers
# them for the models we target, and hashing the whole multi-GB file would take seconds.
_FINGERPRINT_BYTES = 16 << 20


def fingerprint_file(path: Path) -> str:
    """Identity of a model file: its size plus a hash of its header and metadata."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()[:24]


def check_gguf(path: Path) -> Path:
    """Fail early, naming the file, instead of letting llama.cpp abort with a C-level message."""
    from memdesk.engine.errors import ModelError

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"The model file {path} does not exist. Choose a GGUF file in Settings, "
                         "or reinstall MemDesk to restore the embedded model.")
    if not path.is_file():
        raise ModelError(f"{path} is a folder; a .gguf file is needed here "
                         "(an MLX model folder needs the MLX backend).")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"Cannot read the model file {path}: {exc.strerror}. Check its permissions.") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF model (it does not start with 'GGUF'); it may be "
                         "damaged or another format. Choose a .gguf file.")
    return path


def fingerprint_folder(path: Path) -> str:
    """Identity of a model folder (MLX / Hugging Face layout): config, tokenizer and weight headers."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(file.name.encode() + str(file.stat().st_size).encode())
        if file.suffix in (".json", ".txt", ".model") or file.name.startswith("tokenizer"):
            digest.update(file.read_bytes())
        else:
            with file.open("rb") as fh:
                digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    backend: str  # "llama.cpp" | "mlx" | "endpoint" | "fake"
    path: str
    fingerprint: str
    n_ctx: int
    adapter: str | None = None  # fingerprint of a loaded LoRA adapter, if any
    n_params: int = 0  # parameters of the model, 0 when the backend cannot tell (context profiles use it)
    kv_cache: str = ""  # the KV cache's number format where the backend chose one ("q8_0"), else ""

    @property
    def state_key(self) -> str:
        """What a saved KV state (activation memory) is valid for besides the context size: the
        weights, the adapter (a LoRA changes every layer's keys and values) and the cache format."""
        parts = [self.fingerprint]
        if self.adapter:
            parts.append(f"lora={self.adapter}")
        if self.kv_cache:
            parts.append(f"kv={self.kv_cache}")
        return "+".join(parts)


@dataclass(frozen=True)
class GenerationConfig:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy, reproducible
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int = 0
    repeat_penalty: float = 1.0  # > 1 discourages repeating the last 64 tokens (1.0 = off)
    grammar: str | None = None  # GBNF; backends without grammar support ignore it and say so


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_ms: float = 0.0  # time to first token
    total_ms: float = 0.0
    stopped_by: str = ""  # "stop" | "length" | "eos"
    extra: dict = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    info: ModelInfo

    def tokenize(self, text: str, *, special: bool = True) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def render_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for these turns in the model's own chat template."""
        ...

    def stream(self, prompt: str, config: GenerationConfig, stats: GenerationStats | None = None) -> Iterator[str]:
        """Yield text pieces as they are generated; fills `stats` when given."""
        ...

    def close(self) -> None: ...


def turn_markers(model: ChatModel) -> tuple[str, ...]:
    """The text the chat template writes between turns ("<|im_end|>", "<|im_start|>user", ...).

    Found by rendering a probe conversation, so it holds for any template. A reply must end
    where one of them starts: a small model otherwise goes on to write the user's next turn."""
    a, b, c = "\x01first\x01", "\x01second\x01", "\x01third\x01"
    try:
        text = model.render_chat([ChatTurn("user", a), ChatTurn("assistant", b), ChatTurn("user", c)],
                                 add_generation_prompt=False)
    except _template_errors():  # a template that refuses this probe just gives no markers
        return ()
    if a not in text or b not in text or c not in text:
        return ()
    between = text[text.index(a) + len(a):text.index(b)] + "\n" + text[text.index(b) + len(b):text.index(c)]
    markers: dict[str, None] = {}
    for line in between.splitlines():
        line = line.strip()
        if len(line) >= 2:
            markers.setdefault(line, None)
            head = re.match(r"<[^<>\s]{1,40}>|\[/?[A-Z_]{2,12}\]", line)
            if head:
                markers.setdefault(head.group(), None)
    return tuple(markers)


def _template_errors() -> tuple[type[BaseException], ...]:
    from memdesk.engine.errors import ModelError

    errors: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, IndexError, ModelError)
    try:
        from jinja2 import TemplateError
    except ImportError:
        return errors
    return errors + (TemplateError,)


@runtime_checkable
class StatefulModel(ChatModel, Protocol):
    """Backends that can save and restore the KV state of a prompt prefix (activation memory)."""

    def save_state(self, tokens: Sequence[int], should_stop=None) -> bytes: ...

    def load_state(self, state: bytes, tokens: Sequence[int]) -> None: ...
