"""The typed boundaries of parametric memory: examples, datasets, training configuration
and results. Trainers (torch/peft, MLX), the GGUF converter, the gate and the registry
all speak these."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

Progress = Callable[[float, str], None]
"""progress(fraction 0..1, message): called from the training thread."""
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class SftExample:
    """A prompt (the user's message) and the reply the person prefers."""
    prompt: str
    reply: str
    sources: tuple[str, ...] = ()  # memory ids / message ids it was built from
    system: str = ""  # a system turn to render before the prompt, if any


@dataclass(frozen=True)
class DpoExample:
    prompt: str
    chosen: str
    rejected: str
    sources: tuple[str, ...] = ()
    system: str = ""


@dataclass(frozen=True)
class Dataset:
    sft: tuple[SftExample, ...]
    dpo: tuple[DpoExample, ...] = ()
    held_out: tuple[SftExample, ...] = ()  # for the gate's adherence check, never trained on

    def to_json(self) -> str:
        return json.dumps({"sft": [asdict(e) for e in self.sft], "dpo": [asdict(e) for e in self.dpo],
                           "held_out": [asdict(e) for e in self.held_out]}, sort_keys=True, ensure_ascii=False)

    @property
    def snapshot(self) -> str:
        """Identity of the data an adapter was trained on (deterministic given the store)."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Dataset:
        data = json.loads(text)

        def sft(rows):
            return tuple(SftExample(**{**r, "sources": tuple(r.get("sources", ()))}) for r in rows)

        return cls(sft=sft(data.get("sft", [])),
                   dpo=tuple(DpoExample(**{**r, "sources": tuple(r.get("sources", ()))}) for r in data.get("dpo", [])),
                   held_out=sft(data.get("held_out", [])))


@dataclass(frozen=True)
class TrainConfig:
    """Defaults sized for a laptop CPU and a small model; a GPU run raises steps and batch."""
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    learning_rate: float = 2e-4
    steps: int = 60  # optimizer steps (the trainer cycles over the examples)
    batch_size: int = 4
    max_seq_len: int = 256
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    seed: int = 0
    max_seconds: float = 1800.0  # stop (and keep the last checkpoint) after this long
    max_memory_gb: float = 4.0  # refuse to start when the model plus batch would need more
    checkpoint_every: int = 20  # steps between resumable checkpoints
    dpo_beta: float = 0.1  # used when the dataset has DPO triples
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "mps"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# Settings that change the weights a run produces: a checkpoint only resumes a run that agrees on them.
RUN_KEYS = ("rank", "alpha", "dropout", "learning_rate", "steps", "batch_size", "max_seq_len",
            "target_modules", "seed", "dpo_beta")


def check_resume(state: dict, config: TrainConfig, dataset: Dataset) -> None:
    """Refuse a checkpoint made with other weight-affecting settings or other data (both trainers)."""
    from memdesk.engine.errors import InvalidInputError

    mine = config.to_dict()
    theirs = state.get("config", {})
    changed = [k for k in RUN_KEYS if theirs.get(k) != mine[k]]
    if changed or state.get("snapshot") != dataset.snapshot:
        what = f"settings {', '.join(changed)}" if changed else "training data"
        raise InvalidInputError(f"The checkpoint was made with other {what}; it cannot continue this run. "
                                "Discard it and start again.")


@dataclass
class TrainResult:
    adapter_dir: Path  # the trainer's native adapter folder (peft or mlx)
    trainer: str  # "torch" | "mlx"
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100)"
    steps: int
    seconds: float
    examples: int
    losses: list[float] = field(default_factory=list)
    stopped_early: bool = False  # time limit or cancellation; the adapter holds the last checkpoint
