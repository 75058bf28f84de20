"""Chat-model backend on MLX (`mlx_lm`), for Hugging Face / MLX model folders.

Apple silicon is the main target; on Linux it runs on the CPU with ``mlx[cpu]``. A GGUF
can be turned into such a folder with `engine.llm.export.export_gguf_to_hf`.

mlx and mlx_lm are imported when a model is opened, never at module import, so this
module can be imported (and the registry can list it) on machines without MLX.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memdesk.engine.errors import InvalidInputError, ModelError
from memdesk.engine.llm.base import ChatTurn, GenerationConfig, GenerationStats, ModelInfo, fingerprint_folder

MAX_CTX = 8192  # cap on the context we advertise, whatever the config allows


def _hold_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


def estimate_params(config: dict) -> int:
    """Parameters of a transformer from its config (the weights may be quantised, so counting
    their elements would undercount): attention and MLP per layer plus the embeddings."""
    try:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        mlp = int(config.get("intermediate_size") or 4 * hidden)
        vocab = int(config.get("vocab_size") or 0)
    except (KeyError, TypeError, ValueError):
        return 0
    return layers * (4 * hidden * hidden + 3 * hidden * mlp) + vocab * hidden


class MlxModel:
    """`engine.llm.base.ChatModel` on an MLX / HF model folder (config.json, *.safetensors, tokenizer)."""

    def __init__(self, path: Path, *, name: str | None = None, n_ctx: int | None = None,
                 adapter_path: Path | None = None) -> None:
        path = Path(path).expanduser().absolute()
        if not path.is_dir():
            raise ModelError(
                f"MLX model folder not found: {path}. Export one with "
                "`memdesk model export-mlx OUT`, or pick another model in settings."
            )
        config_file = path / "config.json"
        if not config_file.is_file() or not any(path.glob("*.safetensors")):
            raise ModelError(
                f"{path} is not an MLX / Hugging Face model folder (needs config.json and *.safetensors). "
                "Export one with `memdesk model export-mlx OUT`."
            )
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"Cannot read {config_file}: {exc}. Export the model folder again.") from exc

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder path must never turn into a hub download
        try:
            import mlx.core as mx
            import mlx_lm
        except ImportError as exc:
            raise ModelError(
                f"The MLX backend needs mlx and mlx-lm ({exc}): `pip install mlx mlx-lm` "
                "(on Linux: `pip install \"mlx[cpu]\" mlx-lm`), or choose a GGUF model."
            ) from exc
        try:
            model, tokenizer, *_ = mlx_lm.load(str(path), adapter_path=str(adapter_path) if adapter_path else None)
        except Exception as exc:  # mlx_lm raises ValueError/FileNotFoundError/KeyError for bad folders
            raise ModelError(
                f"Cannot load the MLX model in {path}: {type(exc).__name__}: {exc}. "
                "The folder may be incomplete or use an architecture mlx-lm does not support; export it again."
            ) from exc

        self._mx = mx
        self._mlx_lm = mlx_lm
        self._model: Any = model  # None once closed
        self._tokenizer: Any = tokenizer
        # (prefix tokens, prompt cache) from load_state, used by the next stream
        self._restored: tuple[list[int], list] | None = None
        self.config = config
        ctx = int(config.get("max_position_embeddings") or MAX_CTX)
        ctx = min(ctx, MAX_CTX)
        if n_ctx is not None:
            ctx = min(ctx, int(n_ctx))
        self.info = ModelInfo(
            name=name or path.name,
            backend="mlx",
            path=str(path),
            fingerprint=fingerprint_folder(path),
            n_ctx=ctx,
            adapter=fingerprint_folder(Path(adapter_path)) if adapter_path else None,
            n_params=estimate_params(config),
        )

    # -- tokens -------------------------------------------------------------------------

    def _require_open(self):
        if self._model is None:
            raise ModelError(f"The MLX model {self.info.path} has been closed; load it again.")
        return self._model, self._tokenizer

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Token ids of `text`; with special=False, special-token text is not parsed as such.

        No BOS or other special token is added: chat templates write their own.
        """
        _, tok = self._require_open()
        hf = getattr(tok, "_tokenizer", tok)  # mlx_lm TokenizerWrapper -> the HF tokenizer
        if special:
            return list(hf.encode(text, add_special_tokens=False))
        return list(hf.encode(text, add_special_tokens=False, split_special_tokens=True))

    def detokenize(self, tokens: Sequence[int]) -> str:
        _, tok = self._require_open()
        return tok.decode([int(t) for t in tokens])

    def render_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool = True) -> str:
        _, tok = self._require_open()
        if not getattr(tok, "chat_template", None):
            raise ModelError(
                f"The model in {self.info.path} has no chat template; use an instruct/chat model."
            )
        messages = [{"role": t.role, "content": t.content} for t in turns]
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    # -- generation ---------------------------------------------------------------------

    def stream(self, prompt: str, config: GenerationConfig, stats: GenerationStats | None = None) -> Iterator[str]:
        """Yield text pieces; honours max_tokens, temperature/top_p/seed and stop strings.

        GBNF grammars are not supported by MLX: `config.grammar` is ignored and
        ``stats.extra["grammar"]`` says "unsupported".
        """
        model, tok = self._require_open()
        mx, mlx_lm = self._mx, self._mlx_lm
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        if stats is None:
            stats = GenerationStats()
        start = time.perf_counter()
        stats.extra["backend"] = "mlx"
        if config.grammar:
            stats.extra["grammar"] = "unsupported"

        tokens = self.tokenize(prompt)
        stats.prompt_tokens = len(tokens)
        if not tokens:
            raise InvalidInputError("The prompt is empty; nothing to generate from.")
        room = self.info.n_ctx - len(tokens)
        if room <= 0:
            raise InvalidInputError(
                f"The prompt has {len(tokens)} tokens but the model's context is {self.info.n_ctx}; "
                "shorten the conversation or retrieve fewer memories."
            )
        max_tokens = min(config.max_tokens, room)
        if max_tokens <= 0:
            stats.stopped_by = "length"
            stats.total_ms = (time.perf_counter() - start) * 1000
            return

        if config.temperature > 0:
            mx.random.seed(int(config.seed))
            top_p = config.top_p if 0 < config.top_p < 1 else 0.0
            sampler = make_sampler(temp=float(config.temperature), top_p=top_p)
        else:
            sampler = make_sampler(temp=0.0)  # argmax: greedy and reproducible

        stops = tuple(s for s in config.stop if s)
        pending = ""  # generated text not yet yielded (may hold the start of a stop string)
        stopped_by = "length"
        completion = 0
        first = True
        extra = {}
        if config.repeat_penalty != 1.0:  # same window as llama.cpp's default (last 64 tokens)
            extra["logits_processors"] = make_logits_processors(repetition_penalty=config.repeat_penalty,
                                                                repetition_context_size=64)
        restored, self._restored = self._restored, None  # a restored state serves one prompt only
        if restored is not None and tokens[: len(restored[0])] == restored[0] and len(tokens) > len(restored[0]):
            extra["prompt_cache"] = restored[1]
            tokens = tokens[len(restored[0]):]
        gen = mlx_lm.stream_generate(model, tok, tokens, max_tokens=max_tokens, sampler=sampler, **extra)
        try:
            for resp in gen:
                if first:
                    stats.prefill_ms = (time.perf_counter() - start) * 1000
                    first = False
                if resp.finish_reason is None:
                    completion = resp.generation_tokens
                else:
                    # The last response carries the tail of the text; on EOS its token is
                    # the EOS itself, which is not part of the completion.
                    completion = resp.generation_tokens - (1 if resp.finish_reason == "stop" else 0)
                    stopped_by = "eos" if resp.finish_reason == "stop" else "length"
                pending += resp.text
                if stops:
                    hits = [i for i in (pending.find(s) for s in stops) if i >= 0]
                    if hits:
                        piece = pending[: min(hits)]
                        pending = ""
                        stopped_by = "stop"
                        if piece:
                            yield piece
                        break
                    keep = _hold_back(pending, stops)
                    piece, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                else:
                    piece, pending = pending, ""
                if piece:
                    yield piece
            if pending:  # a held-back partial stop string that never completed
                yield pending
        finally:
            gen.close()
            stats.completion_tokens = completion
            stats.stopped_by = stopped_by
            stats.total_ms = (time.perf_counter() - start) * 1000
            if first:
                stats.prefill_ms = stats.total_ms

    # -- logits (parity checks, activation experiments) ---------------------------------

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Next-token logits at every position of `tokens`, shape (len(tokens), vocab), float32."""
        model, _ = self._require_open()
        mx = self._mx
        if not tokens:
            raise InvalidInputError("No tokens given.")
        out = model(mx.array([[int(t) for t in tokens]]))
        out = out[0].astype(mx.float32)
        mx.eval(out)
        return np.array(out, copy=True)

    def next_token_logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits for the token that follows `tokens`, shape (vocab,), float32."""
        return self.logits(tokens)[-1]

    # -- activation memory (KV state of a prompt prefix) ------------------------------
    def reset(self) -> None:
        self._restored = None

    def save_state(self, tokens: Sequence[int], should_stop=None) -> bytes:
        """Prefill `tokens` into a fresh prompt cache and return its keys/values (npz bytes)."""
        import io

        from mlx_lm.models.cache import make_prompt_cache

        from memdesk.engine.errors import Preempted

        model, _ = self._require_open()
        mx = self._mx
        cache = make_prompt_cache(model)
        tokens = [int(t) for t in tokens]
        for start in range(0, len(tokens), 128):
            if should_stop is not None and should_stop():
                raise Preempted("prefill stopped to make way for a chat turn")
            model(mx.array([tokens[start:start + 128]]), cache=cache)
            mx.eval([c.state for c in cache])
        arrays: dict[str, Any] = {}  # Any: numpy's stubs read **arrays as savez's allow_pickle: bool
        for i, layer in enumerate(cache):
            n = layer.offset  # the buffers are allocated in steps; keep only what was filled
            arrays[f"k{i}"] = np.array(layer.keys[..., :n, :].astype(mx.float32)).astype(np.float16)
            arrays[f"v{i}"] = np.array(layer.values[..., :n, :].astype(mx.float32)).astype(np.float16)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    def load_state(self, state: bytes, tokens: Sequence[int]) -> None:
        """Rebuild the prompt cache from saved bytes (a fresh copy each time) for the next prompt."""
        import io

        from mlx_lm.models.cache import make_prompt_cache

        model, _ = self._require_open()
        mx = self._mx
        try:
            data = np.load(io.BytesIO(state))
            cache = make_prompt_cache(model)
            for i, layer in enumerate(cache):
                layer.keys = mx.array(data[f"k{i}"])
                layer.values = mx.array(data[f"v{i}"])
                layer.offset = layer.keys.shape[2]
        except (KeyError, ValueError, OSError) as exc:
            raise ModelError(f"The saved MLX state does not fit this model ({exc}).") from exc
        self._restored = ([int(t) for t in tokens], cache)

    def close(self) -> None:
        if self._model is None:
            return
        self._model = None
        self._tokenizer = None
        try:
            self._mx.clear_cache()
        except Exception:  # older mlx names it differently; freeing is best effort
            pass

    def __enter__(self) -> MlxModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
