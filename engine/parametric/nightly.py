"""The nightly adapter job: store -> dataset -> LoRA -> (GGUF) -> gate -> registry.

Runs as a scheduler task in the nightly window (`MemScheduler.add_nightly`), under the
model lock, so it never shares the model with a chat turn; `should_stop` is checked at
every training step, so a person's message or quitting the app stops it within a step.
A stopped run keeps its checkpoint in the vault (encrypted) and resumes the next time on
the same data; a run whose data changed meanwhile starts over and the stale one is marked
failed. Training works in a private temporary folder (in RAM where the system has
/dev/shm) that is removed afterwards; what is kept goes into the vault.

Trainers: torch + peft on the HF export of a GGUF base (CUDA when present, else CPU), the
adapter then written as a GGUF LoRA for llama.cpp; mlx-lm for an MLX model folder.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path

from memdesk.engine.api import Memory
from memdesk.engine.errors import InvalidInputError, MemDeskError
from memdesk.engine.llm.base import ChatModel
from memdesk.engine.llm.registry import default_model_path
from memdesk.engine.parametric import dataset as datasets
from memdesk.engine.parametric.gate import GateConfig, evaluate
from memdesk.engine.parametric.loading import base_fingerprint
from memdesk.engine.parametric.registry import Adapter
from memdesk.engine.parametric.types import Dataset, Progress, ShouldStop, TrainConfig
from memdesk.engine.vault.scratch import private_scratch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NightlyConfig:
    train: TrainConfig = TrainConfig()
    gate: GateConfig = GateConfig()
    min_examples: int = 4  # fewer SFT examples than this: nothing worth learning yet
    auto_activate: bool = True  # switch a candidate on when it passes the gate


def missing_training_packages(trainer: str) -> list[str]:
    """The packages LoRA training needs that this install lacks ([] when it can train)."""
    needed = ("mlx", "mlx_lm") if trainer == "mlx" else ("torch", "transformers", "peft")
    return [name for name in needed if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install, or a module set to None in sys.modules
        return False


@dataclass
class NightlyReport:
    status: str  # "activated" | "candidate" | "rejected" | "interrupted" | "skipped"
    reason: str = ""
    adapter: Adapter | None = None
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "metrics": self.metrics,
                "adapter": self.adapter.to_dict() if self.adapter else None}


def _scratch():
    """Training's work folder: decrypted checkpoints and weights, in RAM where possible."""
    return private_scratch("train")


class AdapterJob:
    def __init__(self, mem: Memory, model_path: Path | None = None, *, backend: str = "auto",
                 cache_dir: Path | None = None, config: NightlyConfig = NightlyConfig()):
        self.mem = mem
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.backend = backend
        # The HF export of a GGUF holds only the public base weights: a plain cache is fine.
        self.cache_dir = Path(cache_dir) if cache_dir else mem.paths.data_dir / "models"
        self.config = config
        self.registry = mem.adapters

    # ------------------------------------------------------------ pieces
    def hf_folder(self, fingerprint: str) -> Path:
        """The trainable (HF format) copy of a GGUF base, exported once and cached."""
        from memdesk.engine.llm.export import export_gguf_to_hf

        folder = self.cache_dir / f"{fingerprint[:16]}-hf"
        if not (folder / "config.json").is_file():
            export_gguf_to_hf(self.model_path, folder, overwrite=True)
        return folder

    def build(self, teacher: ChatModel | None, should_stop: ShouldStop, progress: Progress) -> Dataset:
        self.mem.feedback.prune()  # feedback on replies of deleted chats goes with them
        plan = datasets.build_dataset(self.mem)
        if teacher is None or not plan.specs:
            return plan.dataset
        return datasets.complete(plan, teacher, should_stop=should_stop,
                                 progress=lambda f, m: progress(0.2 * f, f"preparing examples: {m}"))

    # ------------------------------------------------------------ the run
    def run(self, teacher: ChatModel | None = None, *, should_stop: ShouldStop = lambda: False,
            progress: Progress = lambda fraction, message: None) -> NightlyReport:
        started = time.monotonic()
        trainer_backend, fingerprint = base_fingerprint(self.model_path, self.backend)
        trainer = "mlx" if trainer_backend == "mlx" else "torch"
        missing = missing_training_packages(trainer)
        if missing:
            # The torch-free install: everything else works; this job waits, saying what it needs.
            return NightlyReport("skipped", f"learning preferences needs the optional training component "
                                 f"({', '.join(missing)} not installed): install MemDesk with its training "
                                 "extra, `pip install 'memdesk[train]'`; everything else works without it")
        progress(0.0, "building the dataset from your preferences and feedback")
        dataset = self.build(teacher, should_stop, progress)
        if len(dataset.sft) < self.config.min_examples:
            return NightlyReport("skipped", f"{len(dataset.sft)} training examples; at least "
                                 f"{self.config.min_examples} are needed (state preferences or rate replies)")
        snapshot = datasets.save_dataset(self.mem, dataset)
        earlier = [a for a in self.registry.list(fingerprint) if a.data_snapshot == snapshot]
        if any(a.status in ("candidate", "active", "retired", "rejected") for a in earlier):
            return NightlyReport("skipped", "no new preferences or feedback since the last adapter")
        resumable = next((a for a in earlier if a.status == "training"), None)
        for stale in self.registry.list(fingerprint):
            if stale.status == "training" and stale is not resumable and stale.data_snapshot != snapshot:
                self.registry.set_status(stale.id, "failed", metrics={"reason": "the data changed before it finished"})
        train_config = self.config.train
        adapter = resumable or self.registry.create(
            base_fingerprint=fingerprint, base_name=self.model_path.name, trainer=trainer,
            data_snapshot=snapshot, config=train_config.to_dict())
        try:
            return self._train_and_gate(adapter, trainer, fingerprint, dataset, train_config,
                                        should_stop, progress, started)
        except MemDeskError as exc:
            self.registry.set_status(adapter.id, "failed", metrics={"error": str(exc)})
            raise

    def _train_and_gate(self, adapter: Adapter, trainer: str, fingerprint: str, dataset: Dataset,
                        train_config: TrainConfig, should_stop: ShouldStop, progress: Progress,
                        started: float) -> NightlyReport:
        with _scratch() as tmp:
            work = Path(tmp)
            resume = self.registry.checkpoint(adapter.id, work / "resume")

            def train_progress(fraction: float, message: str) -> None:
                progress(0.2 + 0.65 * fraction, f"training: {message}")

            if trainer == "torch":
                from memdesk.engine.parametric import train_torch as backend

                model_dir = self.hf_folder(fingerprint)
            else:
                from memdesk.engine.parametric import train_mlx as backend

                model_dir = self.model_path
            try:
                result = backend.train(model_dir, dataset, work / "run", train_config, progress=train_progress,
                                       should_stop=should_stop, resume_from=resume)
            except InvalidInputError:
                if resume is None:
                    raise
                # The checkpoint was made with other settings (e.g. more steps asked for): start over.
                log.info("adapter %s: checkpoint does not fit this run; starting again", adapter.id[:8])
                result = backend.train(model_dir, dataset, work / "run", train_config, progress=train_progress,
                                       should_stop=should_stop)
            if result.stopped_early:  # cancelled, or the time limit: continue from here next time
                self.registry.save_checkpoint(adapter.id, work / "run" / "checkpoint")
                return NightlyReport("interrupted", f"stopped at step {result.steps}; it resumes next time",
                                     self.registry.get(adapter.id))
            progress(0.86, "checking the adapter against held-out examples")
            gguf_path = None
            if trainer == "torch":
                from memdesk.engine.parametric.gguf_lora import convert

                gguf_path = convert(result.adapter_dir, self.model_path, work / "adapter.gguf")
            gate = evaluate(*self._scorers(trainer, model_dir, result.adapter_dir), dataset.held_out,
                            self.config.gate)
            metrics = {"gate": gate.to_dict(), "train_seconds": round(result.seconds, 1), "steps": result.steps,
                       "device": result.device, "examples": {"sft": len(dataset.sft), "dpo": len(dataset.dpo),
                                                             "held_out": len(dataset.held_out)},
                       "loss_first": result.losses[0] if result.losses else None,
                       "loss_last": result.losses[-1] if result.losses else None,
                       "stopped_early": result.stopped_early,
                       "total_seconds": round(time.monotonic() - started, 1)}
            self.registry.store_weights(adapter.id, native_dir=result.adapter_dir, gguf_path=gguf_path)
        if not gate.passed:
            adapter = self.registry.set_status(adapter.id, "rejected", metrics=metrics)
            return NightlyReport("rejected", "; ".join(gate.reasons), adapter, metrics)
        adapter = self.registry.set_status(adapter.id, "candidate", metrics=metrics)
        if self.config.auto_activate:
            adapter = self.registry.activate(adapter.id, fingerprint)
            progress(1.0, "a new adapter is active")
            return NightlyReport("activated", "", adapter, metrics)
        progress(1.0, "a new adapter is ready to switch on")
        return NightlyReport("candidate", "", adapter, metrics)

    def _scorers(self, trainer: str, model_dir: Path, adapter_dir: Path):
        if trainer == "torch":
            from memdesk.engine.parametric.train_torch import TorchScorer

            return TorchScorer(model_dir), TorchScorer(model_dir, adapter_dir)
        from memdesk.engine.parametric.train_mlx import MlxScorer

        return MlxScorer(model_dir), MlxScorer(model_dir, adapter_dir)


def quick_config(steps: int = 30) -> NightlyConfig:
    """A short run (tests, the bench, a first night on a laptop)."""
    return NightlyConfig(train=replace(TrainConfig(), steps=steps, max_seq_len=160, learning_rate=1e-3))

