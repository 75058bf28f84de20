"""Preferences that govern indirect requests: extraction, search and the chat turn.

    python -m bench.preferences --out bench/results/preferences.json

bench/data/preferences.json holds 360 stated preferences over 12 life areas, said in six
ways (explicit, dislike, constraint, identity, implicit choice, habit), each with a later
request it governs that shares (almost) no words with it, plus 120 filler chats and 50
requests no preference governs. Half is "dev" (what anything was tuned on), half "test".

One vault, as a user would build it: every statement is said in its own chat session
through `Chat.send`, with a filler chat after every third, and fine extraction runs after
each session (MemReader, rules: the embedded model adds nothing to them, see
docs/benchmarks.md, and would take hours here). The assistant's replies come from a
scripted model: they are stored but never given as facts, so they do not change what is
measured. Reported per split:
- extraction recall: statements that left a live PreferenceMemory drawn from them;
- search hit@1 / hit@5: the governing statement (its turn or the preference drawn from
  it) among the first results, for the shipped preference search and, in the same run,
  plain dense over raw turns, plain BM25, and the hybrid `Memory.search`;
- the chat turn (embedded model's compact profile, and the full profile): how often it
  gives the governing preference, and how many preferences it gives per turn;
- requests no preference governs: preferences given per turn.
Then, in the shape of the outside set the issue describes, up to --isolated-n preferences per
split told alone: each in its own vault, in its own chat among 12 filler chats, then its
request (extraction, preference search hit@1/@5, plain dense hit@5, and the chat turn).

    python -m bench.preferences --data bench/data/preferences_holdout.json --out bench/results/preferences_holdout.json

bench/data/preferences_holdout.json (192 preferences, written apart from this code and
never tuned on, with fillers that tell one-off events in the first person) has one split,
"holdout": the figure that generalises.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import percentile, write_report  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.cube import Filters, MemoryItem, MemoryType  # noqa: E402
from memdesk.engine.llm.fake import FakeModel  # noqa: E402
from memdesk.engine.reader.jobs import EXTRACT_JOB  # noqa: E402
from memdesk.engine.reader.memreader import MemReader  # noqa: E402
from memdesk.engine.scheduler.queue import JobQueue  # noqa: E402
from memdesk.engine.search.retrieval import SearchParams  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

DATA = Path(__file__).parent / "data" / "preferences.json"
FAST_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
KS = (1, 5)
ISOLATED_FILLERS = 12  # filler chats around a preference told alone (the outside set's shape)
# Baselines over raw turns only, in one run with the shipped search.
BASELINES = {
    "dense_raw": SearchParams(w_keyword=0.0, w_time=0.0, graph=0.0),
    "bm25_raw": SearchParams(w_vector=0.0, w_time=0.0, graph=0.0),
    "hybrid": SearchParams(),
}


def _progress(text: str) -> None:
    import sys

    print(f"[bench.preferences {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def tell(mem: Memory, data: dict, seed: int) -> dict[str, str]:
    """Every statement in its own session, fillers between; returns preference id -> message id."""
    jobs = JobQueue(mem.db)
    jobs.handlers[EXTRACT_JOB] = MemReader(mem, None).handle_job
    model = FakeModel(default_reply="Thanks, noted.")
    chat = Chat(mem, model, ChatConfig(profile="compact"), jobs=jobs)
    items = list(data["preferences"])
    random.Random(seed).shuffle(items)
    fillers = data["fillers"]
    when = NOW - timedelta(days=120)
    step = timedelta(days=110) / (len(items) * 4 // 3 + 1)
    said: dict[str, str] = {}
    for n, pref in enumerate(items):
        if n % 60 == 0:
            _progress(f"telling {n + 1} of {len(items)}")
        response = chat.send(pref["statement"], now=when)
        response.text()
        said[pref["id"]] = response.result.user_message.id
        jobs.drain()
        when += step
        if n % 3 == 2:
            chat.send(fillers[(n // 3) % len(fillers)], now=when).text()
            jobs.drain()
            when += step
    mem.wait_indexed()
    return said


def _from(item: MemoryItem, message_id: str) -> bool:
    return any(s.message_id == message_id for s in item.sources)


def evaluate(mem: Memory, data: dict, said: dict[str, str], split: str) -> dict:
    prefs = [p for p in data["preferences"] if split == "all" or p["split"] == split]
    live_prefs = mem.list(Filters(memory_types=(MemoryType.PREFERENCE.value,)), limit=100_000)
    out: dict = {"preferences": len(prefs)}
    out["extraction_recall"] = round(sum(any(_from(m, said[p["id"]]) for m in live_prefs) for p in prefs)
                                     / len(prefs), 3)
    searches: dict[str, dict] = {}
    raw_only = Filters(memory_types=(MemoryType.RAW_CHAT.value,))
    variants = {"shipped": lambda q, k: [p.item for p in mem.search_preferences(q, k=k)],
                "preferences_by_meaning": lambda q, k: [p.item for p in mem.search_preferences(q, k=k, bridge=False)]}
    for name, params in BASELINES.items():
        filters = Filters() if name == "hybrid" else raw_only
        variants[name] = lambda q, k, params=params, filters=filters: [
            h.item for h in mem.search(q, k=k, filters=filters, params=params)]
    for name, search in variants.items():
        hits = {k: 0 for k in KS}
        took = []
        for p in prefs:
            t0 = time.perf_counter()
            found = search(p["request"], max(KS))
            took.append((time.perf_counter() - t0) * 1000)
            for k in KS:
                hits[k] += any(_from(item, said[p["id"]]) for item in found[:k])
        searches[name] = {f"hit@{k}": round(v / len(prefs), 3) for k, v in hits.items()} | {
            "search_ms_p50": round(percentile(took, 50), 1), "search_ms_p95": round(percentile(took, 95), 1)}
    out["search"] = searches
    out["chat"] = {}
    for profile in ("compact", "full"):
        chat = Chat(mem, FakeModel(), ChatConfig(profile=profile, extract=False))
        gave, per_turn = 0, []
        for n, p in enumerate(prefs):
            response = chat.send(p["request"], now=NOW + timedelta(minutes=n))
            response.text()
            given = list(response.result.preferences) + list(response.result.memories)
            gave += any(_from(item, said[p["id"]]) for item in given)
            per_turn.append(len(response.result.preferences))
        ungoverned = []
        for n, u in enumerate(data["ungoverned"]):
            response = chat.send(u["request"], now=NOW + timedelta(hours=5, minutes=n))
            response.text()
            ungoverned.append(len(response.result.preferences))
        out["chat"][profile] = {"gives_governing": round(gave / len(prefs), 3),
                                "preferences_per_turn": round(statistics.mean(per_turn), 2),
                                "preferences_per_ungoverned_turn": round(statistics.mean(ungoverned), 2)}
    return out


def isolated(data: dict, split: str, n: int, seed: int, workdir: Path) -> dict:
    """The outside set's shape: each preference told alone, in its own chat among filler chats,
    in its own vault; then its request, through the chat turn of both profiles."""
    prefs = [p for p in data["preferences"] if p["split"] == split]
    prefs = random.Random(seed).sample(prefs, min(n, len(prefs)))
    fillers, embedder = data["fillers"], None
    counts = {"extracted": 0, "hit@1": 0, "hit@5": 0, "dense_hit@5": 0}
    gave = {"compact": 0, "full": 0}
    per_turn: dict[str, list[int]] = {"compact": [], "full": []}
    for i, pref in enumerate(prefs):
        mem = Memory.open(workdir / f"{split}-{i}", passphrase=lambda confirm: "prefs-bench", kdf=FAST_KDF,
                          embedder=embedder or True)
        embedder = mem.embedder
        try:
            jobs = JobQueue(mem.db)
            jobs.handlers[EXTRACT_JOB] = MemReader(mem, None).handle_job
            chat = Chat(mem, FakeModel(default_reply="Thanks, noted."), ChatConfig(profile="compact"), jobs=jobs)
            rng = random.Random(f"{seed}-{pref['id']}")
            around = rng.sample(fillers, min(ISOLATED_FILLERS, len(fillers)))
            when = NOW - timedelta(days=30)
            said = ""
            for j, text in enumerate(around[:len(around) // 2] + [pref["statement"]] + around[len(around) // 2:]):
                response = chat.send(text, now=when + timedelta(hours=j))
                response.text()
                jobs.drain()
                if text == pref["statement"]:
                    said = response.result.user_message.id
            mem.wait_indexed()
            live = mem.list(Filters(memory_types=(MemoryType.PREFERENCE.value,)), limit=1000)
            counts["extracted"] += any(_from(m, said) for m in live)
            found = [p.item for p in mem.search_preferences(pref["request"], k=5)]
            counts["hit@1"] += any(_from(item, said) for item in found[:1])
            counts["hit@5"] += any(_from(item, said) for item in found[:5])
            dense = mem.search(pref["request"], k=5, filters=Filters(memory_types=(MemoryType.RAW_CHAT.value,)),
                               params=BASELINES["dense_raw"])
            counts["dense_hit@5"] += any(_from(h.item, said) for h in dense)
            for profile in ("compact", "full"):
                response = Chat(mem, FakeModel(), ChatConfig(profile=profile, extract=False)).send(
                    pref["request"], now=NOW)
                response.text()
                given = list(response.result.preferences) + list(response.result.memories)
                gave[profile] += any(_from(item, said) for item in given)
                per_turn[profile].append(len(response.result.preferences))
        finally:
            mem.close()
        shutil.rmtree(workdir / f"{split}-{i}", ignore_errors=True)
    out = {"preferences": len(prefs), "fillers_each": ISOLATED_FILLERS}
    out |= {k: round(v / len(prefs), 3) for k, v in counts.items()}
    out["chat"] = {profile: {"gives_governing": round(gave[profile] / len(prefs), 3),
                             "preferences_per_turn": round(statistics.mean(per_turn[profile]), 2)}
                   for profile in gave}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--isolated-n", type=int, default=60,
                        help="preferences per split also told alone, each in its own vault (0: skip)")
    args = parser.parse_args(argv)
    data = json.loads(args.data.read_text())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memdesk-prefs-") as tmp:
        told = Path(tmp) / "told"
        mem = Memory.open(told, passphrase=lambda confirm: "prefs-bench", kdf=FAST_KDF)
        try:
            said = tell(mem, data, args.seed)
            report: dict = {"statements": len(said), "tell_s": round(time.perf_counter() - t0, 1),
                            "memories": mem.stats().get("memories")}
        finally:
            mem.close()
        splits = sorted({p["split"] for p in data["preferences"]})
        for split in splits:
            # Each split on its own copy: the requests asked are stored as chat turns, and one
            # split's requests must not become the other's memories.
            _progress(f"evaluating {split}")
            shutil.copytree(told, Path(tmp) / split)
            mem = Memory.open(Path(tmp) / split, passphrase=lambda confirm: "prefs-bench", kdf=FAST_KDF)
            try:
                report[split] = evaluate(mem, data, said, split)
            finally:
                mem.close()
        if args.isolated_n:
            report["isolated"] = {}
            for split in splits:
                _progress(f"each preference alone: {split}")
                report["isolated"][split] = isolated(data, split, args.isolated_n, args.seed, Path(tmp) / "alone")
    report["total_s"] = round(time.perf_counter() - t0, 1)
    write_report(report, args.out, "bench.preferences", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
