"""Watched-folder ingestion: cold index, unchanged re-scan, incremental re-scan.

    python -m bench.ingest --out bench/results/ingest.json

Generates 1,000 markdown notes (seeded, so every run writes the same bytes: headings,
lists, paragraphs, a few KB each, in a dozen folders, with mtimes spread over the past
year as in a real notes folder) and ingests them into a fresh encrypted vault on disk
with the real embedding model, as the app does. Cold index time runs until every chunk is
stored AND embedded (`wait_indexed`). Then the unchanged folder is scanned again (size and
mtime only, no reads), 10 files get one section edited, and the re-scan re-chunks those
10 and embeds only their changed chunks. Last, 10 files are renamed (memories kept).
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.ingestion.folders import Ingestor  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

FOLDERS = ("journal", "projects", "recipes", "travel", "reading", "work/meetings", "work/notes", "health",
           "garden", "finance", "ideas", "people")
TOPICS = ("sourdough", "the balcony garden", "the quarterly budget", "a trip to Kyoto", "running intervals",
          "the book club", "the kitchen renovation", "learning Portuguese", "the team offsite", "tax paperwork",
          "a birthday dinner", "the bike repair", "the podcast idea", "sleep habits", "the new laptop",
          "a pottery class", "the hiking route", "the dentist appointment", "the chess opening", "a job interview")
PEOPLE = "Ana Ben Chloe Dmitri Elena Farid Grace Hiro Ines Jonas Kemi Luca Maya Nils Omar Priya".split()
VERBS = ("decided to", "forgot to", "want to", "finally managed to", "should not", "agreed to", "tried to")
ACTIONS = ("call the supplier", "book the tickets", "water the tomatoes", "write the summary", "fix the chain",
           "buy more flour", "read two chapters", "send the invoice", "practise verbs", "plan the route",
           "compare the quotes", "clean the filter", "ask for feedback", "update the spreadsheet")
FILLER = ("It rained most of the afternoon, so plans moved indoors.", "The numbers look better than last month.",
          "Worth trying again with a longer rest before baking.", "Nobody remembered who had the keys.",
          "Next time start earlier and bring water.", "The shop on the corner had exactly what we needed.",
          "This took twice as long as expected, mostly waiting.", "A small change, but it made a difference.",
          "I keep coming back to this idea when I walk home.", "Results were mixed; keep a log for a week.")


def paragraph(rng: random.Random) -> str:
    sentences = [f"{rng.choice(PEOPLE)} and I {rng.choice(VERBS)} {rng.choice(ACTIONS)} "
                 f"for {rng.choice(TOPICS)}."]
    sentences += rng.sample(FILLER, rng.randint(2, 5))
    return " ".join(sentences)


def note(rng: random.Random, i: int) -> str:
    topic = rng.choice(TOPICS)
    parts = [f"# {topic.capitalize()} (note {i})", "", paragraph(rng), ""]
    for section in range(rng.randint(2, 5)):
        parts += [f"## {rng.choice(('Plan', 'Log', 'Ideas', 'Questions', 'Summary', 'Next steps'))} {section + 1}", ""]
        if rng.random() < 0.5:
            parts += [f"- {rng.choice(ACTIONS)} ({rng.choice(PEOPLE)})" for _ in range(rng.randint(3, 7))] + [""]
        for _ in range(rng.randint(1, 3)):
            parts += [paragraph(rng), ""]
        if rng.random() < 0.3:
            parts += [f"### Details {section + 1}", "", paragraph(rng), ""]
    return "\n".join(parts)


def generate(folder: Path, n: int, rng: random.Random) -> int:
    total = 0
    now = time.time()
    for i in range(n):
        path = folder / FOLDERS[i % len(FOLDERS)] / f"note-{i:04d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = note(rng, i)
        path.write_text(text, encoding="utf-8")
        when = now - rng.uniform(3600, 365 * 86400)
        os.utime(path, (when, when))
        total += len(text.encode("utf-8"))
    return total


def edit_one_section(path: Path, rng: random.Random) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    at = rng.choice(headings) + 2
    lines.insert(at, f"Edited: {paragraph(rng)}")
    lines.insert(at + 1, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(n: int, workdir: Path, seed: int = 11) -> dict:
    rng = random.Random(seed)
    notes = workdir / "notes"
    t0 = time.perf_counter()
    total_bytes = generate(notes, n, rng)
    generate_s = time.perf_counter() - t0
    mem = Memory.open(workdir / "data", passphrase=lambda confirm: "ingest-bench",
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    try:
        mem.embedder.encode(["warm up"])
        ingestor = Ingestor(mem)
        t0 = time.perf_counter()
        cold = ingestor.scan(notes)
        stored_s = time.perf_counter() - t0
        assert mem.wait_indexed(timeout=3600), "the indexer did not finish"
        cold_s = time.perf_counter() - t0
        assert len(cold.added) == n and not cold.skipped, cold.skipped[:3]

        t0 = time.perf_counter()
        again = ingestor.scan(notes)
        rescan_s = time.perf_counter() - t0
        assert again.unchanged == n and not again.changed

        files = sorted(notes.rglob("*.md"))
        for path in rng.sample(files, 10):
            edit_one_section(path, rng)
        t0 = time.perf_counter()
        changed = ingestor.scan(notes)
        changed_s = time.perf_counter() - t0
        mem.wait_indexed(timeout=600)
        changed_indexed_s = time.perf_counter() - t0
        assert len(changed.updated) == 10, changed.updated

        for path in rng.sample(files, 10):
            path.rename(path.with_name("renamed-" + path.name))
        t0 = time.perf_counter()
        moved = ingestor.scan(notes)
        moved_s = time.perf_counter() - t0
        assert len(moved.renamed) == 10 and moved.chunks_added == 0, moved.to_dict()
        stats = mem.stats()
        return {
            "files": n, "bytes": total_bytes, "chunks": cold.chunks_added,
            "generate_s": round(generate_s, 2),
            "cold_stored_s": round(stored_s, 2), "cold_s": round(cold_s, 2),
            "files_per_s": round(n / cold_s, 1), "files_per_s_text_only": round(n / stored_s, 1),
            "chunks_per_s": round(cold.chunks_added / cold_s, 1),
            "rescan_unchanged_s": round(rescan_s, 3),
            "rescan_10_changed_s": round(changed_s, 3), "rescan_10_changed_indexed_s": round(changed_indexed_s, 3),
            "changed_chunks_added": changed.chunks_added, "changed_chunks_archived": changed.chunks_archived,
            "changed_chunks_kept": changed.chunks_kept,
            "rescan_10_renamed_s": round(moved_s, 3),
            "memories": stats["memories"], "vault_bytes": stats["vault_bytes"],
            "embedder": stats["embedder"],
        }
    finally:
        mem.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="how many notes (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dir", type=Path, help="work here (notes and vault) instead of a temporary folder")
    args = parser.parse_args(argv)
    if args.dir:
        report = run(args.n, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="memdesk-ingest-") as tmp:
            report = run(args.n, Path(tmp))
    write_report(report, args.out, "bench.ingest", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
