"""Time to first token with and without activation memory, through the real Chat code.

    python -m bench.ttft --out ttft.json

For memory prefixes of about 1k, 2k and 4k tokens (pinned memories rendered into the
system turn), on the embedded model:
- cold: no cached state, the model starts empty, so the whole prompt is prefilled;
- warm: the prefix's KV state is restored from the encrypted vault, and only the user
  message is prefilled. warm_ms = restore (read, verify, load) + that prefill.
Each figure is the median of --reps turns; the model is reset before every turn.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from bench.scale import synthetic  # noqa: E402
from memdesk.engine.activation.states import ActivationCache  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.cube import Filters, MemoryType, utcnow  # noqa: E402
from memdesk.engine.llm.registry import load_model  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

QUESTION = "What did Ana and I do in Lisbon?"
NOTE_SENTENCES = 12  # one pinned note is a paragraph of ~250 tokens (the chat takes up to 20 pinned)


def measure(size: int, reps: int, model, workdir: Path) -> dict:
    rng = random.Random(size)
    mem = Memory.open(workdir / str(size), passphrase=lambda confirm: "ttft-bench", background=False,
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    try:
        i = 0
        chat = Chat(mem, model, ChatConfig(max_reply_tokens=8, extract=False, profile="full"))
        while True:
            note = " ".join(synthetic(rng, i * NOTE_SENTENCES + j)[0] + "." for j in range(NOTE_SENTENCES))
            mem.add(note, pinned=True, priority=1)
            i += 1
            pinned = mem.list(Filters(pinned=True), order="priority", limit=20)
            prefix_turn = chat._fit(QUESTION, utcnow(), pinned, [], [], [])[0][0]
            if len(model.tokenize(model.render_chat([prefix_turn], add_generation_prompt=False))) >= size or i >= 20:
                break
        mem.wait_indexed()
        cold_ms, warm_ms, restore_ms, replies = [], [], [], set()
        for _ in range(reps):
            model.reset()
            response = chat.send(QUESTION)
            replies.add(response.text())
            forget_turns(mem)
            cold_ms.append(response.result.stats.prefill_ms)
        cache = ActivationCache(mem.db)
        warm_chat = Chat(mem, model, ChatConfig(max_reply_tokens=8, extract=False, profile="full"), activation=cache)
        stored = warm_chat.send(QUESTION)
        stored.text()
        forget_turns(mem)
        assert stored.result.activation == "stored", stored.result.activation
        prefix_tokens = cache.stats()["models"][0]["tokens"]
        for _ in range(reps):
            model.reset()
            response = warm_chat.send(QUESTION)
            replies.add(response.text())
            forget_turns(mem)
            assert response.result.activation == "hit", response.result.activation
            restore = response.result.timings_ms["activation_ms"]
            restore_ms.append(restore)
            warm_ms.append(restore + response.result.stats.prefill_ms)
        cold, warm = statistics.median(cold_ms), statistics.median(warm_ms)
        return {"prefix_tokens": prefix_tokens, "prompt_tokens": response.result.stats.prompt_tokens,
                "cold_ms": round(cold, 1), "warm_ms": round(warm, 1), "ratio": round(warm / cold, 4),
                "restore_ms": round(statistics.median(restore_ms), 1), "state_bytes": cache.stats()["bytes"],
                "same_reply_cold_and_warm": len(replies) == 1, "pinned_notes": i}
    finally:
        mem.close()


def forget_turns(mem: Memory) -> None:
    """Each measured turn must see the same prompt: drop the chat turns the last one stored
    (otherwise later turns retrieve them and their prompts grow)."""
    for item in mem.list(Filters(memory_types=(MemoryType.RAW_CHAT.value,)), limit=1000):
        mem.purge(item.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", default="1000,2000,4000")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    model = load_model(n_ctx=8192)
    load_s = time.perf_counter() - t0
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="memdesk-ttft-") as tmp:
            for size in (int(s) for s in args.sizes.split(",")):
                rows.append(measure(size, args.reps, model, Path(tmp)))
    finally:
        model.close()
    write_report({"rows": rows, "model": model.info.name, "n_ctx": model.info.n_ctx, "load_s": round(load_s, 2),
                  "reps": args.reps}, args.out, "bench.ttft", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
