"""llama.cpp backend (llama-cpp-python) for GGUF models: the default outside Apple Silicon."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from memdesk.engine.errors import ModelError, Preempted
from memdesk.engine.llm.base import ChatTurn, GenerationConfig, GenerationStats, ModelInfo, check_gguf, fingerprint_file

# The KV cache's format (ModelInfo.kv_cache): "k-q8_0" (the default: 8-bit keys, 16-bit values),
# "f16" (llama.cpp's own, for a build where 8-bit keys misbehave), or "q8_0" (8-bit keys and
# values with flash attention: half the cache, worth it where flash attention is fast, on a GPU).
KV_CACHE_ENV = "MEMDESK_KV_CACHE"
KV_FORMATS = ("k-q8_0", "f16", "q8_0")
_CHUNK = 128  # tokens per prefill step of a background build: ~0.5 s here, the longest a user waits
_UBATCH = 64  # tokens llama.cpp computes at once; its compute buffer grows with this


class LlamaCppModel:
    def __init__(self, path: Path, *, n_ctx: int = 4096, n_threads: int | None = None,
                 lora_path: Path | None = None, n_ubatch: int = _UBATCH):
        check_gguf(path)
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError("llama-cpp-python is not installed: `pip install llama-cpp-python`.") from exc
        self._llama_cpp = llama_cpp
        threads = n_threads or max(1, os.cpu_count() or 1)
        try:
            self._llm, kv_cache = self._load(path, n_ctx, threads, lora_path, n_ubatch)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}. The file may be damaged "
                             "or use an architecture this llama.cpp build does not know.") from exc
        metadata = self._llm.metadata or {}
        self._template = metadata.get("tokenizer.chat_template")
        n_ctx_train = int(metadata.get(f"{metadata.get('general.architecture', 'llama')}.context_length", n_ctx))
        # The file name, not general.name: that is often a training-run label ("Smollm2 135M 8k Lc100K Mix1 Ep2").
        self.info = ModelInfo(name=path.stem, backend="llama.cpp", path=str(path),
                              fingerprint=fingerprint_file(path), n_ctx=min(n_ctx, n_ctx_train),
                              adapter=fingerprint_file(lora_path) if lora_path else None,
                              n_params=int(self._llm._model.n_params()), kv_cache=kv_cache)
        self._turn_openers: dict[int, float] | None = None
        self._last_tokenized: tuple[str, bool, tuple[int, ...]] = ("", True, ())
        # Tokens whose KV state save_state/load_state put in the context on purpose (activation
        # memory); the next prompt may continue from them. Anything else in the context is left
        # over from an earlier generation, and a prompt is never continued from that (stream()).
        self._prefix: tuple[int, ...] = ()

    def _load(self, path: Path, n_ctx: int, threads: int, lora_path: Path | None, n_ubatch: int):
        """The model with 8-bit keys in its KV cache, unless MEMDESK_KV_CACHE says otherwise.

        8-bit keys take a quarter off the cache (24 MB resident for the embedded model's 4,096
        tokens, hundreds of MB for a 3B model) with the same next-token likelihoods, prompts read
        as fast and replies written faster here. 8-bit values as well would save as much again,
        but need flash attention, which read prompts a fifth slower on this CPU
        (`python -m bench.kv_cache`, docs/benchmarks.md). Micro-batches of _UBATCH tokens: on a
        CPU a prompt is read as fast as in llama.cpp's default 512, and the compute buffer,
        sized by them, is 12 MB instead of 100 MB for the embedded model.
        """
        llama_cpp = self._llama_cpp
        common = dict(model_path=str(path), n_ctx=n_ctx, n_batch=_CHUNK, n_ubatch=n_ubatch, n_threads=threads,
                      n_threads_batch=threads, lora_path=str(lora_path) if lora_path else None, verbose=False)
        chosen = os.environ.get(KV_CACHE_ENV, "").strip().lower() or KV_FORMATS[0]
        if chosen not in KV_FORMATS:
            raise ModelError(f"{KV_CACHE_ENV}={chosen!r} is not a KV cache format; use one of {', '.join(KV_FORMATS)}.")
        if chosen == "f16":
            return llama_cpp.Llama(**common), ""
        q8 = llama_cpp.GGML_TYPE_Q8_0
        if chosen == "q8_0":
            return llama_cpp.Llama(**common, flash_attn=True, type_k=q8, type_v=q8), chosen
        return llama_cpp.Llama(**common, type_k=q8), chosen

    # -------------------------------------------------------------- tokens
    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        # A chat turn counts its prompt, then streams that same prompt: the second call is free.
        last = self._last_tokenized  # one read: another thread may tokenize meanwhile
        if last[0] == text and last[1] == special:
            return list(last[2])
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        self._last_tokenized = (text, special, tuple(tokens))
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def _token_text(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def render_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool = True) -> str:
        if not self._template:
            # No template in the file: a plain, widely understood layout.
            body = "".join(f"{t.role.capitalize()}: {t.content}\n" for t in turns)
            return body + ("Assistant:" if add_generation_prompt else "")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(
            template=self._template, eos_token=self._token_text(self._llm.token_eos()),
            bos_token=self._token_text(self._llm.token_bos()), add_generation_prompt=add_generation_prompt)
        return formatter(messages=[{"role": t.role, "content": t.content} for t in turns]).prompt

    # ---------------------------------------------------------- generation
    def stream(self, prompt: str, config: GenerationConfig, stats: GenerationStats | None = None) -> Iterator[str]:
        stats = stats if stats is not None else GenerationStats()
        started = time.perf_counter()
        grammar = self._llama_cpp.LlamaGrammar.from_string(config.grammar, verbose=False) if config.grammar else None
        prompt_tokens = self.tokenize(prompt)
        if len(prompt_tokens) + config.max_tokens > self.info.n_ctx:
            raise ModelError(f"The prompt ({len(prompt_tokens)} tokens) plus the reply ({config.max_tokens}) "
                             f"exceed the model's context of {self.info.n_ctx} tokens.")
        stats.prompt_tokens = len(prompt_tokens)
        # llama-cpp-python reuses whatever prefix of the prompt is still in the context, so the
        # same prompt sent twice had its last token evaluated alone the second time. A batch of
        # one takes another matmul path in ggml than a full prompt; the logits differ in the last
        # bits and greedy decoding picked another token at near-ties ("Name three colours."
        # gave two different replies). A reply now depends only on the prompt and on the prefix
        # state restored on purpose, never on what the model generated before.
        prefix = self._prefix
        self._prefix = ()
        if not (prefix and tuple(prompt_tokens[:len(prefix)]) == prefix):
            self._llm.reset()
        chunks = self._llm.create_completion(
            prompt_tokens, max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p,
            stop=list(config.stop) or None, seed=config.seed, grammar=grammar, stream=True,
            repeat_penalty=config.repeat_penalty, logit_bias=self._no_turn_openers())
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = choice.get("text", "")
            if text:
                if stats.completion_tokens == 0:
                    stats.prefill_ms = (time.perf_counter() - started) * 1000
                stats.completion_tokens += 1
                yield text
            if choice.get("finish_reason"):
                stats.stopped_by = choice["finish_reason"]
        stats.total_ms = (time.perf_counter() - started) * 1000

    def _no_turn_openers(self) -> dict[int, float]:
        """Control tokens other than end-of-turn ("<|im_start|>") may not be generated: llama.cpp
        streams them as empty text, so a stop string cannot catch a turn the model starts with
        one, and the reply would run on into an invented user turn."""
        if self._turn_openers is None:
            llama_cpp, vocab = self._llama_cpp, self._llm._model.vocab
            self._turn_openers = {
                t: float("-inf") for t in range(self._llm.n_vocab())
                if llama_cpp.llama_vocab_is_control(vocab, t) and not llama_cpp.llama_vocab_is_eog(vocab, t)}
        return self._turn_openers

    def reset(self) -> None:
        """Forget every evaluated token (the next prompt is prefilled from scratch)."""
        self._prefix = ()
        self._llm.reset()

    # ------------------------------------------------------ activation memory
    def save_state(self, tokens: Sequence[int], should_stop: Callable[[], bool] | None = None) -> bytes:
        """Prefill `tokens` and return only their KV cache (llama.cpp's per-sequence state).

        The whole-context state (`Llama.save_state`) also carries logits for every prefix
        token, about 6x larger; a restore needs only the KV data. Prefill runs in chunks so
        that a background build can give way to a user's turn (`should_stop` -> Preempted)."""
        import ctypes

        llama_cpp = self._llama_cpp
        self.reset()
        tokens = list(tokens)
        for start in range(0, len(tokens), _CHUNK):
            if should_stop is not None and should_stop():
                self.reset()
                raise Preempted("prefill stopped to make way for a chat turn")
            self._llm.eval(tokens[start:start + _CHUNK])
        self._prefix = tuple(tokens)
        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        if written != size:
            raise ModelError(f"llama.cpp wrote {written} of {size} state bytes; the state was not saved.")
        return bytes(buffer)

    def load_state(self, state: bytes, tokens: Sequence[int]) -> None:
        """Restore a state saved for exactly `tokens`; the next prompt that starts with them
        only prefills what follows. The caller checks that the state belongs to this model."""
        import ctypes

        tokens = list(tokens)
        self.reset()
        source = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)  # a copy: never mutate the cache
        if self._llama_cpp.llama_state_seq_set_data(self._llm._ctx.ctx, source, len(state), 0) != len(state):
            raise ModelError("llama.cpp rejected the saved state (another model or context size?).")
        self._llm.input_ids[: len(tokens)] = tokens
        self._llm.n_tokens = len(tokens)
        self._llm._requires_eval = True  # no logits were restored: a prompt equal to `tokens` must be evaluated
        self._prefix = tuple(tokens)

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()
