"""The evaluation gate: a new adapter is switched on only if it helps and does no harm.

- Adherence: on held-out preference examples (never trained on), the mean per-token
  log-probability of the preferred reply must rise with the adapter. Log-probabilities
  judge any stated preference without a second model to grade generated text.
- General ability: perplexity on a fixed general English text (resources/eval/general.txt)
  may rise by at most `max_ppl_increase` (10% by default), so the adapter does not buy the
  preference with the rest of the model.
Both are measured with the same scorer type on the same base weights, with and without
the adapter (torch/peft for GGUF bases, MLX for MLX folders).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from memdesk.engine.parametric.types import SftExample
from memdesk.engine.resources import text as resource_text


class Scorer(Protocol):
    def score(self, prompt: str, continuation: str, system: str = "") -> tuple[float, int]: ...

    def perplexity(self, text: str) -> float: ...


@dataclass(frozen=True)
class GateConfig:
    min_adherence_gain: float = 0.0  # nats per token the held-out replies must gain (strictly more than this)
    max_ppl_increase: float = 0.10  # relative rise allowed on the general text


@dataclass
class GateResult:
    passed: bool
    adherence_before: float  # mean log-prob per token of the held-out preferred replies
    adherence_after: float
    ppl_before: float
    ppl_after: float
    held_out: int
    reasons: list[str] = field(default_factory=list)

    @property
    def adherence_gain(self) -> float:
        return self.adherence_after - self.adherence_before

    @property
    def ppl_change(self) -> float:
        return self.ppl_after / self.ppl_before - 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "adherence_gain": round(self.adherence_gain, 4),
                "ppl_change": round(self.ppl_change, 4)}


def general_text() -> str:
    return resource_text("eval/general.txt")


def adherence(scorer: Scorer, examples: Sequence[SftExample]) -> float:
    """Mean over examples of the reply's mean per-token log-probability."""
    values = []
    for example in examples:
        total, tokens = scorer.score(example.prompt, example.reply, example.system)
        if tokens:
            values.append(total / tokens)
    return sum(values) / len(values) if values else 0.0


def evaluate(base: Scorer, tuned: Scorer, held_out: Sequence[SftExample], config: GateConfig = GateConfig(),
             text: str | None = None) -> GateResult:
    text = text or general_text()
    before, after = adherence(base, held_out), adherence(tuned, held_out)
    ppl_before, ppl_after = base.perplexity(text), tuned.perplexity(text)
    result = GateResult(False, before, after, ppl_before, ppl_after, len(held_out))
    if not held_out:
        result.reasons.append("no held-out examples to measure adherence on; more feedback or preferences are needed")
    elif result.adherence_gain <= config.min_adherence_gain:
        result.reasons.append(f"adherence did not improve ({before:.3f} -> {after:.3f} nats/token)")
    if result.ppl_change > config.max_ppl_increase:
        result.reasons.append(f"general perplexity rose {result.ppl_change:.1%} ({ppl_before:.2f} -> {ppl_after:.2f}), "
                              f"more than the {config.max_ppl_increase:.0%} allowed")
    result.passed = not result.reasons
    return result
