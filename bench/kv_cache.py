"""The llama.cpp backend's KV cache and micro-batch: what they cost in memory, speed and quality.

    python -m bench.kv_cache --out bench/results/kv_cache.json

For each cache format (16-bit; 8-bit keys, the default; 8-bit keys and values), and for the
default format at a micro-batch of 128 instead of the app's 64, in a fresh process on the same
model (the embedded one unless --model):
- quality: the mean negative log-likelihood of the next token over --tokens tokens of
  docs/design-notes.md, read one token at a time so every prediction sees the cache, and the
  share of positions where a format ranks first the same token as 16-bit;
- speed: prompt reading and generation in tokens per second, median of --runs;
- memory: the process's resident set after loading and after the longest prompt.
The backend is engine.llm.llama_backend.LlamaCppModel itself, with MEMDESK_KV_CACHE choosing
the format ("q8_0" adds flash attention, which 8-bit values need), so what is measured is
what the app runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import write_report

ROOT = Path(__file__).resolve().parent.parent
# (name, MEMDESK_KV_CACHE, micro-batch): the formats at the app's micro-batch, and the default
# format at the 128 tokens the app used before (the compute buffer's share of memory).
VARIANTS = (("f16", "f16", 64), ("k-q8_0", "k-q8_0", 64), ("q8_0", "q8_0", 64), ("k-q8_0 ubatch 128", "k-q8_0", 128))


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(model_path: str | None, n_tokens: int, runs: int, argmax_out: Path, ubatch: int) -> dict:
    """Runs inside the child process, with MEMDESK_KV_CACHE already set."""
    from memdesk.engine.llm.llama_backend import LlamaCppModel
    from memdesk.engine.llm.registry import embedded_model_path

    model = LlamaCppModel(Path(model_path) if model_path else embedded_model_path(), n_ctx=4096, n_ubatch=ubatch)
    llm = model._llm
    out: dict = {"kv_cache": model.info.kv_cache or "f16", "rss_loaded_mb": round(_rss_mb(), 1)}
    text = (ROOT / "docs" / "design-notes.md").read_text(encoding="utf-8")
    tokens = llm.tokenize(text.encode("utf-8"))[: n_tokens + 1]
    llm.reset()
    nll, firsts = 0.0, []
    for i in range(len(tokens) - 1):
        llm.eval([tokens[i]])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm._n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        nll -= shifted[tokens[i + 1]] - np.log(np.exp(shifted).sum())
        firsts.append(int(np.argmax(logits)))
    np.save(argmax_out, np.array(firsts))
    out["mean_nll"] = round(nll / (len(tokens) - 1), 5)
    prompt = tokens[:800]
    reads, writes = [], []
    for _ in range(runs):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        reads.append(len(prompt) / (time.perf_counter() - start))
        start, made = time.perf_counter(), 0
        for _token in llm.generate([], temp=0.0, reset=False):
            made += 1
            if made >= 64:
                break
        writes.append(made / (time.perf_counter() - start))
    out |= {"prompt_tokens": len(prompt), "read_tok_s": round(statistics.median(reads), 1),
            "generate_tok_s": round(statistics.median(writes), 1), "rss_after_prompt_mb": round(_rss_mb(), 1)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", help="a GGUF file (default: the embedded SmolLM2-135M)")
    parser.add_argument("--tokens", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ubatch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--argmax", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_one(args.model, args.tokens, args.runs, args.argmax, args.ubatch)))
        return
    results, firsts = {}, {}
    workdir = args.out.resolve().parent
    for index, (name, fmt, ubatch) in enumerate(VARIANTS):
        argmax = workdir / f".kv_cache_argmax_{index}.npy"
        command = [sys.executable, "-m", "bench.kv_cache", "--out", str(args.out), "--child", "--ubatch", str(ubatch),
                   "--tokens", str(args.tokens), "--runs", str(args.runs), "--argmax", str(argmax)]
        if args.model:
            command += ["--model", args.model]
        done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, MEMDESK_KV_CACHE=fmt), capture_output=True,
                              text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1]) | {"ubatch": ubatch}
        firsts[name] = np.load(argmax)
        argmax.unlink()
    report = {"model": args.model or "embedded SmolLM2-135M-Instruct.Q4_1", "tokens_scored": args.tokens,
              "variants": results,
              "same_first_token_as_f16": {name: round(float((firsts["f16"] == firsts[name]).mean()), 4)
                                          for name, _, _ in VARIANTS[1:]}}
    write_report(report, args.out, "bench.kv_cache", argv)


if __name__ == "__main__":
    main()
