"""`memdesk adapter list | activate ID | rollback | off | train`: the adapter registry from the terminal.

Adapters are keyed by the base model they were trained for; every action works on the
model the chat uses (`--model PATH`, default: the embedded one), and an adapter for
another base is refused with a message that says so.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memdesk.app.cli_format import dump_json


def _base(args: argparse.Namespace) -> tuple[Path, str]:
    from memdesk.engine.llm.registry import default_model_path
    from memdesk.engine.parametric.loading import base_fingerprint

    path = Path(args.model).expanduser() if args.model else default_model_path()
    return path, base_fingerprint(path)[1]


def _show(args: argparse.Namespace, data, lines: list[str]) -> int:
    if args.json:
        dump_json(data, sys.stdout)
    else:
        print("\n".join(lines))
    return 0


def _line(adapter) -> str:
    gate = adapter.metrics.get("gate", {})
    score = (f"adherence {gate['adherence_before']:.3f}->{gate['adherence_after']:.3f}, "
             f"perplexity {gate['ppl_before']:.2f}->{gate['ppl_after']:.2f}") if gate else "not evaluated"
    return (f"{adapter.id[:8]}  {adapter.status:<9}  {adapter.created_at:%Y-%m-%d %H:%M}  {adapter.trainer:<5}  "
            f"{adapter.size_bytes / 1e6:5.1f} MB  {score}")


def cmd_list(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory

    path, fingerprint = _base(args)
    with open_memory(args, embedder=False) as mem:
        adapters = mem.adapters.list(None if args.all else fingerprint)
    lines = [f"Adapters for {path.name}:" if not args.all else "All adapters:"]
    lines += [_line(a) for a in adapters] or ["  none yet (the nightly job trains one from your preferences "
                                              "and feedback; `memdesk adapter train` runs it now)"]
    return _show(args, {"base_model": str(path), "base_fingerprint": fingerprint,
                        "adapters": [a.to_dict() for a in adapters]}, lines)


def cmd_activate(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory
    from memdesk.engine.errors import InvalidInputError

    if not args.id:
        raise InvalidInputError("Name the adapter to switch on: `memdesk adapter activate ID` (see `adapter list`).")
    _, fingerprint = _base(args)
    with open_memory(args, embedder=False) as mem:
        adapter = mem.adapters.activate(args.id, fingerprint)
    return _show(args, adapter.to_dict(), [f"Adapter {adapter.id[:8]} is active; the chat uses it from the next "
                                           "model load."])


def cmd_rollback(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory

    _, fingerprint = _base(args)
    with open_memory(args, embedder=False) as mem:
        adapter = mem.adapters.rollback(fingerprint)
    text = f"Back to adapter {adapter.id[:8]}." if adapter else "Back to the base model without an adapter."
    return _show(args, {"active": adapter.to_dict() if adapter else None}, [text])


def cmd_off(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory

    _, fingerprint = _base(args)
    with open_memory(args, embedder=False) as mem:
        previous = mem.adapters.deactivate(fingerprint)
    text = f"Adapter {previous.id[:8]} switched off." if previous else "No adapter was active."
    return _show(args, {"switched_off": previous.id if previous else None}, [text])


def cmd_train(args: argparse.Namespace) -> int:
    """The nightly job, now: dataset (with the teacher step), training, GGUF, gate, registry."""
    from dataclasses import replace

    from memdesk.app.cli import open_memory
    from memdesk.engine.llm.registry import load_model
    from memdesk.engine.parametric.nightly import AdapterJob, NightlyConfig
    from memdesk.engine.parametric.types import TrainConfig

    path, _ = _base(args)
    config = NightlyConfig(train=replace(TrainConfig(), steps=args.steps), auto_activate=not args.no_activate)
    with open_memory(args, embedder=False) as mem:
        teacher = load_model(path, n_ctx=2048)
        try:
            def progress(fraction: float, message: str) -> None:
                if not args.json:
                    sys.stderr.write(f"\r{fraction:4.0%} {message[:70]:<70}")
                    sys.stderr.flush()

            report = AdapterJob(mem, path, config=config).run(teacher, progress=progress)
        finally:
            teacher.close()
    if not args.json:
        sys.stderr.write("\n")
    lines = [f"{report.status}: {report.reason}" if report.reason else report.status]
    if report.adapter is not None:
        lines.append(_line(report.adapter))
    return _show(args, report.to_dict(), lines)


def cmd_install(args: argparse.Namespace) -> int:
    """What Settings ▸ Learned preferences ▸ Install does: add torch, transformers and peft (or MLX)."""
    from memdesk.app.training_install import TrainingInstallError, describe, plan, run
    from memdesk.engine.parametric.nightly import missing_training_packages

    path = Path(args.model).expanduser() if args.model else None
    trainer = "mlx" if path is not None and path.is_dir() else "torch"  # as the Learned preferences page does
    if not missing_training_packages(trainer):
        print("The training component is installed.")
        return 0
    install = plan(trainer)
    if isinstance(install, str):
        raise TrainingInstallError(install)
    print(f"Installing the training component ({install.size_note})…", file=sys.stderr)
    run(install, lambda line: (text := describe(line)) and print(text, file=sys.stderr))
    missing = missing_training_packages(trainer)
    if missing:
        raise TrainingInstallError(f"pip finished, but {', '.join(missing)} still cannot be imported; the log has "
                                   "pip's output.")
    print("The training component is installed.")
    return 0


ACTIONS = {"list": cmd_list, "activate": cmd_activate, "rollback": cmd_rollback, "off": cmd_off,
           "train": cmd_train, "install": cmd_install}


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", metavar="ID", help="activate: the adapter id (or a unique prefix)")
    p.add_argument("--all", action="store_true", help="list: adapters of every base model")
    p.add_argument("--steps", type=int, default=TRAIN_STEPS, metavar="N",
                   help="train: optimizer steps (default: %(default)s)")
    p.add_argument("--no-activate", action="store_true", help="train: keep a passing adapter as a candidate")


TRAIN_STEPS = 60
