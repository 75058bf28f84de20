"""`memdesk adapter ACTION`: parametric memory (LoRA preference adapters) from the terminal.

    memdesk adapter dataset [--json] [--rebuild]
    memdesk adapter list | activate ID | rollback | off | train [--json] | install

Each action is a function `(args) -> int` in ACTIONS; `register` adds the `adapter` command
with an `action` positional whose choices are ACTIONS' keys, so a new action is one
function, one entry in ACTIONS and, if it needs them, its options in `_options`.
Nothing here sends data anywhere: datasets live encrypted inside the vault.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from memdesk.app import cli_adapter_registry
from memdesk.app.cli_format import dump_json, one_line, terminal_width, truncate


# ------------------------------------------------------------------ dataset
def cmd_dataset(args: argparse.Namespace) -> int:
    """The training dataset: the one stored last or, with --rebuild (or before the first), built now."""
    from memdesk.app.cli import open_memory
    from memdesk.engine.parametric.dataset import build_dataset, list_datasets, load_dataset, save_dataset

    with open_memory(args, embedder=False) as mem:
        stored = list_datasets(mem)
        plan = None
        if args.rebuild or not stored:
            plan = build_dataset(mem)
            dataset = plan.dataset
            if args.rebuild:
                if plan.specs:
                    dataset = _distil(plan, args)
                save_dataset(mem, dataset)
                stored = list_datasets(mem)
        else:
            dataset = load_dataset(mem, stored[0].snapshot)
    saved = next((s for s in stored if s.snapshot == dataset.snapshot), None)
    report = {"snapshot": dataset.snapshot, "stored": saved is not None,
              "stored_at": saved.created_at if saved else None,
              "counts": {"sft": len(dataset.sft), "dpo": len(dataset.dpo), "held_out": len(dataset.held_out)},
              "pending_preferences": [{"memory_id": s.memory_id, "text": s.text} for s in plan.specs]
              if plan is not None and not args.rebuild else [],
              "sft": [_example(e) for e in dataset.sft], "dpo": [_example(e) for e in dataset.dpo],
              "held_out": [_example(e) for e in dataset.held_out]}
    if args.json:
        dump_json(report, sys.stdout)
    else:
        _print_dataset(report, sys.stdout)
    return 0


def _distil(plan, args: argparse.Namespace):
    """The teacher step on the chat model (the nightly job runs the same)."""
    from memdesk.engine.llm.registry import load_model
    from memdesk.engine.parametric.dataset import complete

    model = load_model(Path(args.model) if args.model else None, n_ctx=2048)
    try:
        def progress(fraction: float, message: str) -> None:
            if sys.stderr.isatty():
                sys.stderr.write(f"\r{message} ({fraction:.0%})\033[K")
        dataset = complete(plan, model, max_tokens=args.max_tokens, progress=progress)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return dataset
    finally:
        model.close()


def _example(example) -> dict:
    data = {"prompt": example.prompt, "sources": list(example.sources), "system": example.system}
    if hasattr(example, "reply"):
        data["reply"] = example.reply
    else:
        data.update(chosen=example.chosen, rejected=example.rejected)
    return data


def _print_dataset(report: dict, out: TextIO) -> None:
    counts = report["counts"]
    where = (f"stored {report['stored_at']:%Y-%m-%d %H:%M} UTC, encrypted in the vault" if report["stored"]
             else "built now from the vault, not stored yet: --rebuild stores it")
    out.write(f"Dataset {report['snapshot'][:16]}  ({where})\n")
    out.write(f"{counts['sft']} SFT examples, {counts['dpo']} DPO pairs, {counts['held_out']} held out for the gate\n")
    if not any(counts.values()) and not report["pending_preferences"]:
        out.write("No training data yet: rate replies (thumbs up/down), edit a reply to the version you "
                  "prefer, or state a preference (\"I prefer short answers\").\n")
    width = max(terminal_width() - 6, 40)
    half = max((width - 5) // 2, 20)
    for title, key in (("SFT", "sft"), ("Held out", "held_out")):
        if report[key]:
            out.write(f"\n{title}:\n")
        for e in report[key]:
            out.write(f"  {truncate(one_line(e['prompt']), half)}  ->  {truncate(one_line(e['reply']), half)}\n")
    if report["dpo"]:
        out.write("\nDPO (prompt / chosen / rejected):\n")
    for e in report["dpo"]:
        out.write(f"  {truncate(one_line(e['prompt']), width)}\n"
                  f"    + {truncate(one_line(e['chosen']), width - 4)}\n"
                  f"    - {truncate(one_line(e['rejected']), width - 4)}\n")
    if report["pending_preferences"]:
        out.write("\nPreferences to distil with the chat model (--rebuild or the nightly job):\n")
        for p in report["pending_preferences"]:
            out.write(f"  {p['memory_id'][:8]}  {truncate(one_line(p['text']), width - 10)}\n")


# ------------------------------------------------------------------ the command
ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "dataset": cmd_dataset,
    **cli_adapter_registry.ACTIONS,
}


def cmd_adapter(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args)


def _options(p: argparse.ArgumentParser) -> None:
    """Options of the actions (argparse has one namespace for the subcommand)."""
    p.add_argument("--rebuild", action="store_true",
                   help="dataset: build it from the vault now (distilling stated preferences with the chat "
                        "model) and store it, encrypted, as the one to train on")
    p.add_argument("--model", metavar="PATH", help="the chat model the adapters are for (default: the embedded one)")
    p.add_argument("--max-tokens", type=int, default=128, metavar="N",
                   help="dataset --rebuild: longest distilled reply (default: %(default)s)")


def register(command, json_flag) -> None:
    p = command("adapter", cmd_adapter, "parametric memory: preference adapters, their training data and "
                                        "which one is active")
    p.add_argument("action", choices=list(ACTIONS),
                   help="dataset: show the training data; list: the adapters; activate ID; rollback: back to the "
                        "previous adapter; off: no adapter; train: run the nightly job now; install: add "
                        "what training needs (torch, or MLX on Apple Silicon)")
    _options(p)
    cli_adapter_registry.options(p)
    json_flag(p)
