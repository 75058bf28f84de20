"""LoCoMo evidence recall through the real Memory API.

    python -m bench.locomo --data ../shared/bench/locomo10.json \
        --audit ../shared/bench/locomo_audit_errors.json --out locomo.json

Every conversation is added as chat messages (one vault, one scope per conversation),
each QA of categories 1-4 is searched in its own conversation's scope, and the retrieved
memories are mapped back to dialog ids through their provenance. Recall@k is the share
of a question's evidence turns found in the top k memories, averaged over questions.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import percentile, write_report  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.cube import ChatMessage, Filters  # noqa: E402
from memdesk.engine.search.retrieval import SearchParams  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

KS = (1, 5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
# The shipped ranking, and the plain baselines it is compared with (no time, no graph).
VARIANTS = {
    "hybrid": SearchParams(),
    "bm25": SearchParams(w_vector=0.0, w_time=0.0, graph=0.0, speaker_boost=0.0),
    "dense": SearchParams(w_keyword=0.0, w_time=0.0, graph=0.0, speaker_boost=0.0),
    "rrf": SearchParams(fusion="rrf", w_keyword=1.0, w_time=0.0, graph=0.0, speaker_boost=0.0),
    "hybrid_no_graph": SearchParams(graph=0.0),
    "hybrid_no_time": SearchParams(w_time=0.0),
    "no_speaker": SearchParams(speaker_boost=0.0),
    "speaker_0.2": SearchParams(speaker_boost=0.2),
    "speaker_1.0": SearchParams(speaker_boost=1.0),
    "session_0.8": SearchParams(session_decay=0.8),
    "feedback_0.5": SearchParams(feedback=0.5),
    "feedback_1.0": SearchParams(feedback=1.0),
    "feedback_1.0_top5": SearchParams(feedback=1.0, feedback_top=5),
    "feedback_2.0": SearchParams(feedback=2.0),
}


def parse_session_time(text: str) -> datetime:
    """LoCoMo writes '1:56 pm on 8 May, 2023'."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def conversation_messages(sample: dict) -> list[ChatMessage]:
    conv = sample["conversation"]
    sessions = sorted((int(m.group(1)), key) for key in conv
                      if (m := re.fullmatch(r"session_(\d+)", key)) and conv[key])
    messages: list[ChatMessage] = []
    for number, key in sessions:
        start = parse_session_time(conv[f"{key}_date_time"])
        for i, turn in enumerate(conv[key]):
            text = turn["text"]
            if turn.get("blip_caption"):
                # An image message reaches a text-only memory as its caption.
                text = f"{text} [shares a photo of {turn['blip_caption']}]"
            messages.append(ChatMessage(speaker=turn["speaker"], text=text,
                                        timestamp=start + timedelta(seconds=30 * i),
                                        message_id=turn["dia_id"], session_id=f"{sample['sample_id']}:{number}"))
    return messages


def last_session_time(sample: dict) -> datetime:
    conv = sample["conversation"]
    times = [parse_session_time(v) for k, v in conv.items() if re.fullmatch(r"session_\d+_date_time", k)]
    return max(times)


def load_corrections(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    return {e["question_id"]: e["correct_evidence"] for e in json.loads(path.read_text())
            if e.get("error_type") == "WRONG_CITATION" and e.get("correct_evidence")}


def extract_conversation(mem: Memory, sample: dict, raw_ids: list[str], model) -> int:
    """Fine extraction over one conversation, a session at a time; returns memories added."""
    from memdesk.engine.reader.memreader import MemReader

    reader = MemReader(mem, model, user_name=None, use_model=model is not None)
    raw = [mem.get(i) for i in dict.fromkeys(raw_ids)]
    added = 0
    window = 8 if model is not None else 200  # the model reads a few turns at a time
    for start in range(0, len(raw), window):
        chunk = raw[start:start + window]
        applied = reader.apply(reader.extract_items(chunk), scope=sample["sample_id"])
        added += sum(a.action in ("added", "conflict") for a in applied)
    return added


def run(data: Path, audit: Path | None, variants: list[str], limit: int | None, workdir: Path,
        extract: str = "none") -> dict:
    samples = json.loads(data.read_text())[:limit]
    corrections = load_corrections(audit)
    mem = Memory.open(workdir, passphrase=lambda confirm: "locomo-bench", background=False,
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    from tokenizers import Tokenizer

    # MiniLM word pieces, untruncated (the embedder's own tokenizer stops at 256).
    tokenizer = Tokenizer.from_file(str(mem.embedder.model_path / "tokenizer.json"))
    tokenizer.no_truncation()
    model = None
    if extract == "model":
        from memdesk.engine.llm.registry import load_model

        model = load_model(n_ctx=2048)
    extracted: dict[str, int] = {}
    try:
        add_times: list[float] = []
        started = time.perf_counter()
        memory_counts: dict[str, int] = {}
        turn_counts: dict[str, int] = {}
        for sample in samples:
            messages = conversation_messages(sample)
            t0 = time.perf_counter()
            results = mem.add_messages(messages, scope=sample["sample_id"])
            add_times.append((time.perf_counter() - t0) * 1000 / max(1, len(messages)))
            turn_counts[sample["sample_id"]] = len(messages)
            memory_counts[sample["sample_id"]] = len({r.id for r in results})
            if extract != "none":
                extracted[sample["sample_id"]] = extract_conversation(mem, sample, [r.id for r in results], model)
        t0 = time.perf_counter()
        mem.wait_indexed()
        index_s = time.perf_counter() - t0
        report: dict = {"conversations": len(samples), "turns": sum(turn_counts.values()),
                        "memories": sum(memory_counts.values()), "memories_per_conversation": memory_counts,
                        "add_ms_per_turn_mean": statistics.mean(add_times), "index_s": index_s,
                        "ingest_s": time.perf_counter() - started, "corrections_applied": 0, "variants": {},
                        "extraction": extract, "extracted_per_conversation": extracted,
                        "turns_per_conversation": turn_counts}
        for variant in variants:
            report["variants"][variant] = evaluate(mem, samples, corrections, VARIANTS[variant], tokenizer)
        report["corrections_applied"] = report["variants"][variants[0]].pop("corrections_applied")
        main = report["variants"][variants[0]]
        for key in ("recall@1", "recall@5", "recall@10", "recall@20", "per_category", "context_tokens@10",
                    "search_ms_p50", "search_ms_p95", "questions"):
            report[key] = main[key]
        return report
    finally:
        if model is not None:
            model.close()
        mem.close()


def evaluate(mem: Memory, samples: list[dict], corrections: dict, params: SearchParams, tokenizer) -> dict:
    recalls = {k: [] for k in KS}
    per_cat = {c: {k: [] for k in KS} for c in CATEGORIES}
    # Conversations 0-4 are where weights are chosen ("tune"), 5-9 where they are reported ("held out").
    halves: dict[str, list[float]] = {"tune": [], "held_out": []}
    multi_halves: dict[str, list[float]] = {"tune": [], "held_out": []}
    latencies: list[float] = []
    context_tokens: list[int] = []
    applied = 0
    for conv_index, sample in enumerate(samples):
        reference = last_session_time(sample) + timedelta(days=1)
        filters = Filters(scope=sample["sample_id"])
        for qa_index, qa in enumerate(sample["qa"]):
            category = qa.get("category")
            if category not in CATEGORIES:
                continue
            evidence = qa.get("evidence") or []
            qid = f"locomo_{conv_index}_qa{qa_index}"
            if qid in corrections:
                evidence = corrections[qid]
                applied += 1
            evidence = {e.strip() for e in evidence if e and e.strip()}
            if not evidence:
                continue
            t0 = time.perf_counter()
            hits = mem.search(str(qa["question"]), k=max(KS), filters=filters, reference_time=reference,
                              params=params)
            latencies.append((time.perf_counter() - t0) * 1000)
            context_tokens.append(sum(len(tokenizer.encode(h.item.memory, add_special_tokens=False).ids)
                                      for h in hits[:10]))
            for k in KS:
                found: set[str] = set()
                for hit in hits[:k]:
                    found.update(s.message_id for s in hit.item.sources if s.message_id)
                value = len(evidence & found) / len(evidence)
                recalls[k].append(value)
                per_cat[category][k].append(value)
                if k == 10:
                    half = "tune" if conv_index < 5 else "held_out"
                    halves[half].append(value)
                    if category == 1:
                        multi_halves[half].append(value)
    out = {f"recall@{k}": round(statistics.mean(v), 4) for k, v in recalls.items()}
    out["per_category"] = {CATEGORIES[c]: {f"recall@{k}": round(statistics.mean(v), 4) for k, v in ks.items()}
                           | {"questions": len(ks[10])} for c, ks in per_cat.items() if ks[10]}
    out["recall@10_by_half"] = {h: round(statistics.mean(v), 4) for h, v in halves.items() if v}
    out["multi_hop_recall@10_by_half"] = {h: round(statistics.mean(v), 4) for h, v in multi_halves.items() if v}
    out["context_tokens@10"] = round(statistics.mean(context_tokens), 1)
    out["search_ms_p50"] = round(percentile(latencies, 50), 2)
    out["search_ms_p95"] = round(percentile(latencies, 95), 2)
    out["questions"] = len(latencies)
    out["corrections_applied"] = applied
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--audit", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, help="only the first N conversations (quick runs)")
    parser.add_argument("--extract", choices=["none", "rules", "model"], default="none",
                        help="run fine extraction after the fast path (rules only, or rules + the chat model)")
    parser.add_argument("--variants", default="hybrid",
                        help=f"comma list of {sorted(VARIANTS)}; the first one fills the top-level keys")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    with tempfile.TemporaryDirectory(prefix="memdesk-locomo-") as tmp:
        report = run(args.data, args.audit, variants, args.limit, Path(tmp), args.extract)
    summary = {k: report[k] for k in ("recall@1", "recall@5", "recall@10", "recall@20", "context_tokens@10",
                                      "search_ms_p50", "search_ms_p95")}
    summary["variants"] = {v: {"recall@10": r["recall@10"], "by_half": r["recall@10_by_half"],
                               "multi_hop": r["per_category"]["multi-hop"]["recall@10"],
                               "multi_hop_by_half": r["multi_hop_recall@10_by_half"]}
                           for v, r in report["variants"].items()}
    write_report(report, args.out, "bench.locomo", argv, show=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

