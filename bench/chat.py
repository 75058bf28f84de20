"""Chat-turn latency on the embedded model, through the real Chat code.

    python -m bench.chat --out chat.json

A vault with 300 memories; each measured turn retrieves 10 of them into the prompt.
Reported: model load time, time to first token (prefill of the whole prompt, cold: a
new session each turn so no KV prefix is reused), generation speed, the whole turn
(retrieval + prompt + generation + storing both messages), and the turn's own overhead: the
whole turn less the model's prefill and generation (what MemDesk adds around the model).

Then the work one turn does, counted in a second pass over the same questions (a profiler
hook counts the calls, so that pass is not timed): query embeddings, hybrid searches, time
expressions parsed, tokenizations run by llama.cpp, and write transactions committed.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from bench.scale import synthetic  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.llm.registry import load_model  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

QUESTIONS = ("What did Ana and I do in Lisbon?", "When did I last visit Osaka?", "Tell me about the garden shed.",
             "Did I ever bake a birthday cake?", "What happened with the tax return?", "Who came to the concert?",
             "What did I learn in Kyoto?", "Where did I buy running shoes?", "How was the pottery class?",
             "What did Grace and I plan?", "Which podcast episode did I write about?", "When did I fix the tap?")


# (file, function) -> the name it is reported under, per turn
COUNTED = {("engine/search/embed.py", "encode"): "embeddings",
           ("engine/search/retrieval.py", "search"): "hybrid_searches",
           ("engine/search/timeparse.py", "_parse"): "time_parses",
           ("llama_cpp/llama.py", "tokenize"): "tokenizations"}  # llama.cpp's own: real work only


class _Counter:
    """Counts calls to COUNTED functions and committed write transactions, through sys.setprofile."""

    def __init__(self, mem: Memory):
        self.counts = dict.fromkeys([*COUNTED.values(), "write_transactions"], 0)
        self._codes: dict = {}
        mem.db.on_commit.append(self._committed)

    def _committed(self, _changes) -> None:
        self.counts["write_transactions"] += 1

    def _hook(self, frame, event, _arg) -> None:
        if event != "call":
            return
        code = frame.f_code
        name = self._codes.get(code)
        if name is None:
            path = code.co_filename.replace("\\", "/")
            name = next((label for (file, func), label in COUNTED.items()
                         if code.co_name == func and path.endswith(file)), "")
            self._codes[code] = name
        if name:
            self.counts[name] += 1

    def __enter__(self) -> _Counter:
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)


def run(turns: int, max_tokens: int, workdir: Path) -> dict:
    rng = random.Random(11)
    mem = Memory.open(workdir, passphrase=lambda confirm: "chat-bench", background=False,
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    try:
        for i in range(300):
            text, when = synthetic(rng, i)
            mem.add(text, event_time=when)
        mem.wait_indexed()
        t0 = time.perf_counter()
        model = load_model(n_ctx=4096)
        load_s = time.perf_counter() - t0
        # The model writes every reply: quoting memory (the compact profile's personal answers)
        # would leave no prefill or generation to measure.
        chat = Chat(mem, model, ChatConfig(max_reply_tokens=max_tokens, memory_k=10, extract=False,
                                           answer_from_memory=False, acknowledge_telling=False))
        chat.send("warm up").text()
        ttft, tps, turn_ms, overhead_ms, given, prompt_tokens = [], [], [], [], [], []
        for i in range(turns):
            t0 = time.perf_counter()
            response = chat.send(QUESTIONS[i % len(QUESTIONS)])
            response.text()
            turn_ms.append((time.perf_counter() - t0) * 1000)
            stats = response.result.stats
            overhead_ms.append(turn_ms[-1] - stats.total_ms)
            ttft.append(stats.prefill_ms)
            gen_s = (stats.total_ms - stats.prefill_ms) / 1000
            if stats.completion_tokens > 1 and gen_s > 0:
                tps.append((stats.completion_tokens - 1) / gen_s)
            given.append(len(response.result.memory_ids))
            prompt_tokens.append(stats.prompt_tokens)
        counter = _Counter(mem)
        for i in range(turns):
            with counter:
                chat.send(QUESTIONS[i % len(QUESTIONS)]).text()
        model.close()
        per_turn = {name: round(count / turns, 2) for name, count in counter.counts.items()}
        return {"load_s": round(load_s, 3), "ttft_ms_p50": round(statistics.median(ttft), 1),
                "overhead_ms_p50": round(statistics.median(overhead_ms), 1), "per_turn": per_turn,
                "tokens_per_s": round(statistics.median(tps), 1), "turn_ms_p50": round(statistics.median(turn_ms), 1),
                "memories_given_mean": statistics.mean(given), "prompt_tokens_p50": statistics.median(prompt_tokens),
                "turns": turns, "max_reply_tokens": max_tokens, "model": model.info.name,
                "model_fingerprint": model.info.fingerprint}
    finally:
        mem.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memdesk-chat-") as tmp:
        report = run(args.turns, args.max_tokens, Path(tmp))
    write_report(report, args.out, "bench.chat", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
