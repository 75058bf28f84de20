"""Add and search latency at scale, through the real Memory API and embedding model.

    python -m bench.scale --n 10000 --out scale10k.json

Synthetic memories (seeded, so every run stores the same text) are added one at a time
through the fast path while the background indexer embeds them, as in the app. Add
latency is the time until `add()` returns (committed, keyword-searchable). Once every
vector is stored, searches run with filters off; their latency includes embedding the
query. The vault is on disk and encrypted, as a user's would be.
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import percentile, write_report  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

PEOPLE = "Ana Ben Chloe Dmitri Elena Farid Grace Hiro Ines Jonas Kemi Luca Maya Nils Omar Priya".split()
PLACES = "Lisbon Porto Berlin Osaka Lima Nairobi Oslo Denver Hanoi Quito Seville Tartu Kyoto Accra".split()
VERBS = ("cooked", "visited", "painted", "repaired", "planned", "booked", "read about", "argued about",
         "practised", "bought", "sold", "learned", "wrote about", "photographed", "cleaned", "measured")
THINGS = ("a sourdough loaf", "the old bicycle", "a watercolour of the harbour", "the garden shed",
          "a trip to the mountains", "concert tickets", "Japanese verbs", "the tax return", "a birthday cake",
          "the kitchen tap", "a chess opening", "running shoes", "a pottery class", "the quarterly budget",
          "a podcast episode", "the balcony plants", "a train timetable", "a dentist appointment")
MOODS = ("and loved it", "but it rained", "with mixed feelings", "and want to do it again", "for the first time",
         "after a long week", "as a surprise", "to relax", "because it was cheap", "and it took all day")


def synthetic(rng: random.Random, i: int) -> tuple[str, datetime]:
    when = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(6 * 365 * 24))
    text = (f"{rng.choice(PEOPLE)} and I {rng.choice(VERBS)} {rng.choice(THINGS)} in {rng.choice(PLACES)} "
            f"{rng.choice(MOODS)} (note {i})")
    return text, when


def queries(rng: random.Random, n: int) -> list[str]:
    forms = ("when did I {v} {t}?", "what did {p} and I do in {pl}?", "{t} with {p}", "did I ever {v} {t} in {pl}?")
    return [rng.choice(forms).format(v=rng.choice(VERBS), t=rng.choice(THINGS), p=rng.choice(PEOPLE),
                                     pl=rng.choice(PLACES)) for _ in range(n)]


def pct(values: list[float], q: float) -> float:
    return round(percentile(values, q), 3)


def run(n: int, n_queries: int, workdir: Path, seed: int = 7) -> dict:
    rng = random.Random(seed)
    mem = Memory.open(workdir, passphrase=lambda confirm: "scale-bench",
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    try:
        mem.embedder.encode(["warm up"])
        add_ms: list[float] = []
        t_start = time.perf_counter()
        for i in range(n):
            text, when = synthetic(rng, i)
            t0 = time.perf_counter()
            mem.add(text, event_time=when, tags=[f"t{i % 50}"])
            add_ms.append((time.perf_counter() - t0) * 1000)
        adds_s = time.perf_counter() - t_start
        t0 = time.perf_counter()
        mem.wait_indexed()
        index_wait_s = time.perf_counter() - t0
        # Fast path, second half: from add() returning to the vector being stored and searchable.
        vector_ms: list[float] = []
        for i in range(20):
            text, when = synthetic(rng, n + i)
            t0 = time.perf_counter()
            mem.add(text, event_time=when)
            mem.wait_indexed()
            vector_ms.append((time.perf_counter() - t0) * 1000)
        qs = queries(rng, n_queries)
        for q in qs[:5]:
            mem.search(q)  # first searches fill the reader's page cache
        search_ms: list[float] = []
        for q in qs:
            t0 = time.perf_counter()
            hits = mem.search(q, k=10)
            search_ms.append((time.perf_counter() - t0) * 1000)
            assert hits, q
        embed_ms: list[float] = []
        for q in qs[:50]:
            t0 = time.perf_counter()
            mem.embedder.encode([q])
            embed_ms.append((time.perf_counter() - t0) * 1000)
        stats = mem.stats()
        return {
            "n": n, "queries": n_queries,
            "add_ms_p50": pct(add_ms, 50), "add_ms_p95": pct(add_ms, 95), "add_ms_max": round(max(add_ms), 3),
            "search_ms_p50": pct(search_ms, 50), "search_ms_p95": pct(search_ms, 95),
            "query_embed_ms_p50": pct(embed_ms, 50),
            "add_to_vector_ms_p50": pct(vector_ms, 50), "add_to_vector_ms_max": round(max(vector_ms), 3),
            "adds_total_s": round(adds_s, 2), "index_wait_after_adds_s": round(index_wait_s, 2),
            "vault_bytes": stats["vault_bytes"], "memories": stats["memories"],
            "pending_embeddings": stats["pending_embeddings"],
        }
    finally:
        mem.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dir", type=Path, help="keep the vault here instead of a temporary folder")
    args = parser.parse_args(argv)
    if args.dir:
        report = run(args.n, args.queries, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="memdesk-scale-") as tmp:
            report = run(args.n, args.queries, Path(tmp))
    write_report(report, args.out, "bench.scale", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

