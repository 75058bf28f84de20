"""A scripted chat model for logic tests: replies are queued with `enqueue()`.

Tokenisation is one token per whitespace-separated word, so budgets are easy to reason
about in tests. Every prompt it was given is kept in `prompts`.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence

from memdesk.engine.llm.base import ChatTurn, GenerationConfig, GenerationStats, ModelInfo


class FakeModel:
    def __init__(self, n_ctx: int = 2048, default_reply: str = "OK."):
        self.info = ModelInfo(name="fake", backend="fake", path="", fingerprint="fake-model", n_ctx=n_ctx)
        self.default_reply = default_reply
        self.prompts: list[str] = []
        self.configs: list[GenerationConfig] = []
        self._replies: deque[str] = deque()

    def enqueue(self, *replies: str) -> None:
        self._replies.extend(replies)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return [hash(word) & 0xFFFF for word in text.split()]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return " ".join(f"t{t}" for t in tokens)

    def render_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool = True) -> str:
        body = "".join(f"<|{t.role}|>\n{t.content}\n" for t in turns)
        return body + ("<|assistant|>\n" if add_generation_prompt else "")

    def stream(self, prompt: str, config: GenerationConfig, stats: GenerationStats | None = None) -> Iterator[str]:
        started = time.perf_counter()
        self.prompts.append(prompt)
        self.configs.append(config)
        reply = self._replies.popleft() if self._replies else self.default_reply
        words = reply.split(" ")[: config.max_tokens]
        for stop in config.stop:
            text = " ".join(words)
            if stop in text:
                words = text[: text.index(stop)].split(" ")
        if stats is not None:
            stats.prompt_tokens = len(self.tokenize(prompt))
            stats.completion_tokens = len(words)
            stats.stopped_by = "eos"
        for i, word in enumerate(words):
            if stats is not None and i == 0:
                stats.prefill_ms = (time.perf_counter() - started) * 1000
            yield word if i == 0 else " " + word
        if stats is not None:
            stats.total_ms = (time.perf_counter() - started) * 1000

    def close(self) -> None:
        pass
