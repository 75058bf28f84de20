"""Parametric memory end to end on the embedded model, through the real nightly job.

    python -m bench.adapter --out bench/results/adapter.json

A fresh vault gets chat turns answered by the embedded model; the person "edits" each
reply to sign off with a fixed phrase (the feedback path: an edited reply is the
preferred version). Then `AdapterJob.run` builds the dataset, trains the LoRA (torch +
peft on the HF export; CUDA when present, else CPU), writes the GGUF LoRA, runs the gate
and registers the adapter. Reported: training time per 100 examples, adapter sizes, the
gate's adherence and perplexity before/after, how many held-out prompts llama.cpp signs
off on with and without the adapter, and generation speed with and without it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.llm.registry import embedded_model_path, load_model  # noqa: E402
from memdesk.engine.parametric.dataset import generic_prompts  # noqa: E402
from memdesk.engine.parametric.nightly import AdapterJob, NightlyConfig  # noqa: E402
from memdesk.engine.parametric.registry import AdapterRegistry  # noqa: E402
from memdesk.engine.parametric.types import TrainConfig  # noqa: E402
from memdesk.engine.vault.feedback import Feedback  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

SIGN_OFF = "— Cheers, MemDesk"
HELD_OUT = ("How do I keep basil alive on a windowsill?", "What is a good stretch after running?",
            "How can I sleep better before an exam?", "What should I bring to a picnic?")


def signs_off(mem: Memory, model, prompts, max_tokens: int) -> tuple[int, float]:
    """Through the real chat turn (system prompt, memories): (replies with the sign-off, tokens/s)."""
    chat = Chat(mem, model, ChatConfig(max_reply_tokens=max_tokens, extract=False))
    hits, speeds = 0, []
    for prompt in prompts:
        response = chat.send(prompt)
        hits += "Cheers, MemDesk" in response.text()
        stats = response.result.stats
        gen_s = (stats.total_ms - stats.prefill_ms) / 1000
        if stats.completion_tokens > 1 and gen_s > 0:
            speeds.append((stats.completion_tokens - 1) / gen_s)
    return hits, round(statistics.median(speeds), 1) if speeds else 0.0


def run(turns: int, steps: int, lr: float, workdir: Path) -> dict:
    mem = Memory.open(workdir / "data", passphrase=lambda confirm: "adapter-bench", background=False,
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    try:
        model = load_model(embedded_model_path(), n_ctx=2048)
        chat = Chat(mem, model, ChatConfig(max_reply_tokens=48, extract=False))
        feedback = Feedback(mem.db)
        for prompt in generic_prompts()[:turns]:
            response = chat.send(prompt)
            reply = response.text().strip()
            feedback.edit(response.result.reply_message.id, f"{reply.rstrip('.')}.\n\n{SIGN_OFF}")
        model.close()
        config = NightlyConfig(train=replace(TrainConfig(), steps=steps, rank=8, learning_rate=lr,
                                             max_seq_len=160, batch_size=4))
        job = AdapterJob(mem, embedded_model_path(), cache_dir=workdir / "models", config=config)
        started = time.perf_counter()
        report = job.run(None, progress=lambda f, m: None)
        job_s = time.perf_counter() - started
        if report.adapter is None:
            raise SystemExit(f"the nightly job did not produce an adapter: {report.status}: {report.reason}")
        metrics = report.metrics
        examples_seen = metrics["steps"] * config.train.batch_size
        base = load_model(embedded_model_path(), n_ctx=2048)
        base_hits, base_tps = signs_off(mem, base, HELD_OUT, 64)
        base.close()
        # The trained adapter whatever the gate said (the gate's verdict is reported beside it).
        with AdapterRegistry(mem.db).materialise(report.adapter.id) as lora:
            tuned = load_model(embedded_model_path(), n_ctx=2048, lora_path=lora)
        tuned_hits, tuned_tps = signs_off(mem, tuned, HELD_OUT, 64)
        tuned.close()
        active = AdapterRegistry(mem.db).active(report.adapter.base_fingerprint)
        adapter = report.adapter
        return {
            "status": report.status, "device": metrics["device"], "turns_with_feedback": turns,
            "examples": metrics["examples"], "steps": metrics["steps"], "batch_size": config.train.batch_size,
            "train_s": metrics["train_seconds"],
            "train_s_per_100_examples": round(metrics["train_seconds"] / examples_seen * 100, 1),
            "nightly_job_s": round(job_s, 1), "loss_first": metrics["loss_first"], "loss_last": metrics["loss_last"],
            "adapter_bytes_stored": adapter.size_bytes, "adapter_active": active is not None,
            "learning_rate": lr,
            "gate": metrics["gate"],
            "held_out_sign_off": {"base": f"{base_hits}/{len(HELD_OUT)}", "adapter": f"{tuned_hits}/{len(HELD_OUT)}"},
            "tokens_per_s": {"base": base_tps, "adapter": tuned_tps,
                             "ratio": round(tuned_tps / base_tps, 3) if base_tps else None},
        }
    finally:
        mem.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--turns", type=int, default=16, help="chat turns whose replies get the edited sign-off")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memdesk-adapter-bench-") as tmp:
        report = run(args.turns, args.steps, args.lr, Path(tmp))
    write_report(report, args.out, "bench.adapter", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
