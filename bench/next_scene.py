"""Next-scene prediction hit rate: replay LoCoMo turn by turn.

    python -m bench.next_scene --data ../shared/bench/locomo10.json --out next_scene.json

Each conversation is replayed session by session. Before a session starts, the vault holds
every earlier session's turns. Within the session, after each turn the real predictor
(`engine.scheduler.next_scene.predict`, on the transcript so far) picks the memories for the next
turn's prefix; then the next turn's own retrieval runs (what `Chat.send` does: top 10).
Reported: the share of retrieved memories that were already predicted (memory hit rate)
and the share of turns whose best memory was predicted (top-1 hit rate).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from bench.locomo import conversation_messages  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.chat.turn import Chat  # noqa: E402
from memdesk.engine.llm.fake import FakeModel  # noqa: E402
from memdesk.engine.scheduler.next_scene import predict  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402


def replay(mem: Memory, sample: dict, k: int, predict_k: int) -> tuple[list[float], list[float]]:
    chat = Chat(mem, FakeModel())
    scope_hits, top1 = [], []
    messages = conversation_messages(sample)
    sessions: dict[str, list] = {}
    for message in messages:
        sessions.setdefault(message.session_id, []).append(message)
    for number, (session_key, turns) in enumerate(sessions.items()):
        if number > 0:
            session = chat.sessions.create(session_key)
            for i, turn in enumerate(turns):
                if i >= 1:
                    predicted = {m.id for m in predict(chat, session.id, k=predict_k)}
                    hits = [h.item.id for h in mem.search(turn.text, k=k)]
                    if hits:
                        scope_hits.append(len(predicted & set(hits)) / len(hits))
                        top1.append(1.0 if hits[0] in predicted else 0.0)
                chat.sessions.append(session.id, "user" if i % 2 == 0 else "assistant", f"{turn.speaker}: {turn.text}")
        mem.add_messages(turns)  # the session becomes memory once it is over
        mem.wait_indexed()
    return scope_hits, top1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, help="only the first N conversations")
    parser.add_argument("--k", type=int, default=10, help="memories a turn retrieves")
    parser.add_argument("--predict-k", type=int, default=12, help="memories predicted into the prefix")
    args = parser.parse_args(argv)
    samples = json.loads(args.data.read_text())[: args.limit]
    memory_rates, top1_rates, per_conversation = [], [], {}
    for sample in samples:
        with tempfile.TemporaryDirectory(prefix="memdesk-next-scene-") as tmp:
            mem = Memory.open(Path(tmp), passphrase=lambda confirm: "bench", background=False,
                              kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
            try:
                rates, top1 = replay(mem, sample, args.k, args.predict_k)
            finally:
                mem.close()
        memory_rates += rates
        top1_rates += top1
        per_conversation[sample["sample_id"]] = {"turns": len(rates),
                                                 "memory_hit_rate": round(statistics.mean(rates), 4),
                                                 "top1_hit_rate": round(statistics.mean(top1), 4)}
    report = {"memory_hit_rate": round(statistics.mean(memory_rates), 4),
              "top1_hit_rate": round(statistics.mean(top1_rates), 4), "turns": len(memory_rates),
              "k": args.k, "predict_k": args.predict_k, "per_conversation": per_conversation}
    write_report(report, args.out, "bench.next_scene", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
