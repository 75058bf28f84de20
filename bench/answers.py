"""Answers that use what MemDesk remembers: end to end, through the real chat turn.

    python -m bench.answers --out bench/results/answers.json            # both parts, embedded model
    python -m bench.answers --part facts --out facts.json --model ~/models/qwen2.5-3b.gguf

Part 1, personal facts (bench/data/personal_facts.json, half "dev", half "test"): one
vault, one persona. Every item's facts are told through `Chat.send` in earlier sessions
(filler chats in between, the later value of a changed fact weeks after the first),
extraction runs after each session as the app runs it (the persisted job queue, MemReader
with the chat model), then each question is asked in a new session. Per item:
- given: every `needed` piece reached the model inside a memory it was given;
- answered: the reply holds an accepted answer (and, for preferences, nothing to avoid);
- stale: a superseded value was given as current (without the new one) or answered;
- abstain: a never-told question answered with "I don't know" or the like;
- reply length for requests made after asking for short answers.
Part 2, LoCoMo QA: a seeded sample of categories 1-4; the token F1 of the reply against
the gold answer (the LoCoMo paper's metric) with no memory, with MemDesk's turn, and with
the gold evidence turns given directly (this model's ceiling). Both parts run in one
process so their figures compare.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import string
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import percentile, write_report  # noqa: E402
from bench.locomo import CATEGORIES, conversation_messages, last_session_time, load_corrections  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.reader.jobs import EXTRACT_JOB  # noqa: E402
from memdesk.engine.reader.memreader import MemReader  # noqa: E402
from memdesk.engine.scheduler.queue import JobQueue  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

DATA = Path(__file__).parent / "data" / "personal_facts.json"
FAST_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)


def _progress(text: str) -> None:
    print(f"[bench.answers {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ part 1: personal facts
def _found(pieces: list[str], texts: list[str]) -> bool:
    blob = " ".join(texts).lower()
    return all(p.lower() in blob for p in pieces)


def _any(pieces: list[str], text: str) -> bool:
    low = text.lower()
    return any(p.lower() in low for p in pieces)


def _given_texts(mem: Memory, result) -> list[str]:
    items = list(getattr(result, "memories", ())) + list(getattr(result, "preferences", ()))
    if not items:  # results of a chat turn that does not carry its memories
        items = [mem.get(i) for i in (*result.memory_ids, *result.preference_ids)]
    return [i.memory for i in items]


def score_item(item: dict, reply: str, given: list[str], brief: bool) -> dict:
    category = item["category"]
    out = {"given": None, "answered": None, "stale": None, "abstained": None}
    if category == "never_told":
        out["abstained"] = _any(item["accept"], reply)
        return out
    out["given"] = _found(item["needed"], given) or (category == "brevity" and brief)
    if category == "brevity":
        out["answered"] = len(reply.split()) <= 50
    else:
        out["answered"] = _any(item["accept"], reply) and not _any(item.get("avoid", []), reply)
    if item.get("stale"):
        given_stale = any(_any(item["stale"], t) and not _any(item["accept"], t) for t in given)
        answered_stale = _any(item["stale"], reply) and not _any(item["accept"], reply)
        out["stale"] = given_stale or answered_stale
    return out


def _rate(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 3) if values else None


def summarise(rows: list[dict]) -> dict:
    out: dict = {"items": len(rows)}
    for metric, key in (("given_rate", "given"), ("answered_rate", "answered"), ("stale_rate", "stale"),
                        ("abstain_rate", "abstained")):
        value = _rate([r[key] for r in rows])
        if value is not None:
            out[metric] = value
    out["prompt_tokens_p50"] = percentile([r["prompt_tokens"] for r in rows], 50)
    out["ttft_ms_p50"] = round(percentile([r["ttft_ms"] for r in rows], 50), 1)
    return out


def run_facts(model, workdir: Path, data_path: Path, seed: int, tell_tokens: int, config: ChatConfig) -> dict:
    data = json.loads(data_path.read_text())
    rng = random.Random(seed)
    items = data["items"]
    mem = Memory.open(workdir, passphrase=lambda confirm: "answers-bench", kdf=FAST_KDF)
    try:
        jobs = JobQueue(mem.db)
        jobs.handlers[EXTRACT_JOB] = MemReader(mem, model, user_name=config.user_name).handle_job
        chat = Chat(mem, model, config, jobs=jobs)
        teller = Chat(mem, model, ChatConfig(**{**config.__dict__, "max_reply_tokens": tell_tokens}), jobs=jobs)
        # First statements in a shuffled order with filler chats between them, then every later
        # statement (the changed values), weeks after.
        first = [(it, 0) for it in items if it["tell"]]
        rng.shuffle(first)
        later = [(it, i) for it in items for i in range(1, len(it["tell"]))]
        fillers = list(data.get("fillers", []))
        schedule: list[list[str]] = []
        for n, (it, i) in enumerate(first):
            schedule.append(it["tell"][i])
            if fillers and n % 3 == 2:
                schedule.append([fillers[(n // 3) % len(fillers)]])
        schedule += [it["tell"][i] for it, i in later]
        when = NOW - timedelta(days=90)
        step = timedelta(days=85) / max(1, len(schedule))
        t0 = time.perf_counter()
        for n, messages in enumerate(schedule):
            if n % 20 == 0:
                _progress(f"telling: session {n + 1} of {len(schedule)}")
            session = None
            for text in messages:
                response = teller.send(text, session, now=when)
                response.text()
                session = response.result.session_id
            jobs.drain()  # the app's scheduler extracts between chats
            when += step
        mem.wait_indexed()
        tell_s = time.perf_counter() - t0
        questions = list(items)
        rng.shuffle(questions)
        rows = []
        t0 = time.perf_counter()
        for n, item in enumerate(questions):
            if n % 20 == 0:
                _progress(f"asking: question {n + 1} of {len(questions)}")
            asked = NOW + timedelta(minutes=10 * n)
            response = chat.send(item["question"], now=asked)
            reply = response.text()
            result = response.result
            given = _given_texts(mem, result)
            row = {"id": item["id"], "category": item["category"], "split": item["split"],
                   "question": item["question"], "reply": reply, "given_memories": given,
                   "prompt_tokens": result.stats.prompt_tokens, "ttft_ms": result.stats.prefill_ms,
                   "reply_words": len(reply.split()), "completion_tokens": result.stats.completion_tokens}
            row.update(score_item(item, reply, given, bool(getattr(result, "brief", False))))
            rows.append(row)
            jobs.drain()
            mem.wait_indexed()
        ask_s = time.perf_counter() - t0
        report: dict = {"items": len(items), "tell_sessions": len(schedule), "tell_s": round(tell_s, 1),
                        "ask_s": round(ask_s, 1), "memories": mem.stats().get("memories")}
        for split in ("dev", "test", "all"):
            chosen = [r for r in rows if split == "all" or r["split"] == split]
            by_cat: dict = {}
            for category in dict.fromkeys(r["category"] for r in rows):
                by_cat[category] = summarise([r for r in chosen if r["category"] == category])
            changed = [r for r in chosen if r["category"].startswith("changed")]
            report[split] = {"overall": summarise(chosen), "per_category": by_cat,
                             "changed": summarise(changed),
                             "brevity_reply_words_mean": round(statistics.mean(
                                 [r["reply_words"] for r in chosen if r["category"] == "brevity"] or [0]), 1),
                             "other_open_reply_words_mean": round(statistics.mean(
                                 [r["reply_words"] for r in chosen if r["category"] == "preference"] or [0]), 1)}
        report["rows"] = rows
        return report
    finally:
        mem.close()


# ----------------------------------------------------------------------- part 2: LoCoMo
def normalise_answer(text: str) -> list[str]:
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return text.split()


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalise_answer(prediction), normalise_answer(gold)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if not pred or not ref or same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


class _GoldChat(Chat):
    """The same turn, given the question's gold evidence turns instead of what recall finds."""

    gold: list = []

    def recall(self, text, session_id, now):
        from memdesk.engine.search.recall import Recalled

        found = super().recall(text, session_id, now)
        found.memories = [Recalled(item, 1.0, 1.0, 1.0) for item in self.gold]
        found.preferences = []
        return found


def sample_questions(samples: list[dict], corrections: dict, n: int, seed: int) -> list[tuple]:
    pool = []
    for conv_index, sample in enumerate(samples):
        for qa_index, qa in enumerate(sample["qa"]):
            if qa.get("category") not in CATEGORIES or "answer" not in qa:
                continue
            evidence = corrections.get(f"locomo_{conv_index}_qa{qa_index}", qa.get("evidence") or [])
            evidence = [e.strip() for e in evidence if e and e.strip()]
            if evidence:
                pool.append((sample, qa, evidence))
    random.Random(seed).shuffle(pool)
    return pool[:n]


def run_locomo(model, workdir: Path, data_path: Path, audit: Path | None, n: int, seed: int, max_tokens: int,
               config: ChatConfig) -> dict:
    samples = json.loads(data_path.read_text())
    chosen = sample_questions(samples, load_corrections(audit), n, seed)
    mem = Memory.open(workdir, passphrase=lambda confirm: "answers-locomo", kdf=FAST_KDF)
    try:
        by_dialog: dict[tuple[str, str], str] = {}
        for sample in {id(s): s for s, _, _ in chosen}.values():
            messages = conversation_messages(sample)
            for message, result in zip(messages, mem.add_messages(messages, scope=sample["sample_id"])):
                by_dialog[(sample["sample_id"], message.message_id)] = result.id
        mem.wait_indexed()
        base = {**config.__dict__, "max_reply_tokens": max_tokens, "extract": False}
        rows = []
        t0 = time.perf_counter()
        for n, (sample, qa, evidence) in enumerate(chosen):
            if n % 20 == 0:
                _progress(f"LoCoMo: question {n + 1} of {len(chosen)}")
            question, gold = str(qa["question"]), str(qa["answer"])
            when = last_session_time(sample) + timedelta(days=1)
            sid = sample["sample_id"]
            row = {"category": CATEGORIES[qa["category"]], "question": question, "gold": gold}
            for condition, chat in (
                    ("no_memory", Chat(mem, model, ChatConfig(**{**base, "scope": "__no_memory__"}))),
                    ("memdesk", Chat(mem, model, ChatConfig(**{**base, "scope": sid}))),
                    ("gold_evidence", _GoldChat(mem, model, ChatConfig(**{**base, "scope": sid})))):
                if isinstance(chat, _GoldChat):
                    chat.gold = [mem.get(by_dialog[(sid, e)]) for e in evidence if (sid, e) in by_dialog]
                response = chat.send(question, now=when)
                reply = response.text()
                row[condition] = round(token_f1(reply, gold), 4)
                row[f"{condition}_reply"] = reply
                row[f"{condition}_prompt_tokens"] = response.result.stats.prompt_tokens
            rows.append(row)
        conditions = ("no_memory", "memdesk", "gold_evidence")
        report: dict = {"questions": len(rows), "seed": seed, "max_reply_tokens": max_tokens,
                        "run_s": round(time.perf_counter() - t0, 1)}
        report["f1"] = {c: round(statistics.mean(r[c] for r in rows), 4) for c in conditions}
        report["prompt_tokens_p50"] = {c: percentile([r[f"{c}_prompt_tokens"] for r in rows], 50) for c in conditions}
        per_cat: dict = defaultdict(dict)
        for category in CATEGORIES.values():
            picked = [r for r in rows if r["category"] == category]
            if picked:
                per_cat[category] = {c: round(statistics.mean(r[c] for r in picked), 4) for c in conditions}
                per_cat[category]["questions"] = len(picked)
        report["per_category"] = dict(per_cat)
        report["rows"] = rows
        return report
    finally:
        mem.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--part", choices=["facts", "locomo", "all"], default="all")
    parser.add_argument("--model", type=Path, help="a GGUF file or MLX folder (default: the embedded model)")
    parser.add_argument("--backend", default="auto", choices=["auto", "llama.cpp", "mlx"])
    parser.add_argument("--endpoint", metavar="URL", help="a local OpenAI-compatible server instead of --model")
    parser.add_argument("--endpoint-model", metavar="NAME", default="", help="that server's model (default: its first)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--profile", default="auto", choices=["auto", "compact", "full"])
    parser.add_argument("--facts", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tell-tokens", type=int, default=64, help="reply length while facts are being told")
    parser.add_argument("--locomo", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/bench/locomo10.json")
    parser.add_argument("--audit", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/bench/locomo_audit_errors.json")
    parser.add_argument("--locomo-n", type=int, default=200)
    parser.add_argument("--locomo-tokens", type=int, default=48, help="reply length for LoCoMo questions")
    args = parser.parse_args(argv)
    from memdesk.engine.llm.endpoint import EndpointConfig
    from memdesk.engine.llm.registry import load_model

    t0 = time.perf_counter()
    endpoint = EndpointConfig(args.endpoint, args.endpoint_model) if args.endpoint else None
    model = load_model(args.model, backend=args.backend, n_ctx=args.n_ctx, endpoint=endpoint)
    # Only the fields this version of ChatConfig has, so the same bench measures an older commit too.
    known = set(ChatConfig.__dataclass_fields__)
    config = ChatConfig(**{k: v for k, v in {"profile": args.profile}.items() if k in known})
    report: dict = {"model": model.info.name, "model_fingerprint": model.info.fingerprint,
                    "n_params": getattr(model.info, "n_params", None), "n_ctx": model.info.n_ctx,
                    "profile_setting": args.profile}
    try:
        with tempfile.TemporaryDirectory(prefix="memdesk-answers-") as tmp:
            if args.part in ("facts", "all"):
                report["facts"] = run_facts(model, Path(tmp) / "facts", args.facts, args.seed, args.tell_tokens, config)
            if args.part in ("locomo", "all"):
                report["locomo"] = run_locomo(model, Path(tmp) / "locomo", args.locomo,
                                              args.audit if args.audit.exists() else None, args.locomo_n, args.seed,
                                              args.locomo_tokens, config)
    finally:
        model.close()
    report["total_s"] = round(time.perf_counter() - t0, 1)
    show = {k: v for k, v in report.items() if k not in ("facts", "locomo")}
    if "facts" in report:
        show["facts"] = {s: report["facts"][s]["overall"] | {"changed": report["facts"][s]["changed"]}
                         for s in ("dev", "test")}
        show["facts_per_category_test"] = report["facts"]["test"]["per_category"]
    if "locomo" in report:
        show["locomo"] = {k: report["locomo"][k] for k in ("f1", "per_category", "questions")}
    write_report(report, args.out, "bench.answers", argv, show=show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
