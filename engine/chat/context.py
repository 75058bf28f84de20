"""Context profiles: how one turn's memories are laid out for a given model.

Measured on the embedded SmolLM2-135M (docs/benchmarks.md, bench.answers): the same
model that ignores a fact buried in a long system prompt answers it when a few notes
sit right above the question in the user's turn. Large models read the full layout
well and benefit from its cacheable prefix. So the layout is chosen per model:

- compact (small models, under ~2B parameters): a one-line system prompt; at most a
  few notes, relevant ones only, in the second person, inside the user's turn above the
  question. Nothing sits in a stable memory prefix, so activation memory has nothing
  worth caching and is off for this profile. A personal question with no relevant note
  is answered "I don't know" (the grounding guard): prompts alone got the 135M model to
  say so 4 times in 10; it invents an answer otherwise. A personal question that relevant
  notes do answer ("What's my dog's name?") is answered from them, quoted: given the one
  right note, the 135M model still answered something else about half the time
  (docs/benchmarks.md). Requests ("suggest a dinner") always go to the model, notes above.
- full (larger models): the system turn carries pinned memories and standing
  preferences (the cacheable prefix, restored from activation memory), the retrieved
  memories go in a second system block right before the user's message.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memdesk.engine.errors import InvalidInputError
from memdesk.engine.llm.base import ModelInfo

PROFILES = ("auto", "compact", "full")
# Below this many parameters a model is "small" (SmolLM2, Qwen2.5-0.5B/1.5B, Llama-3.2-1B).
SMALL_MODEL_PARAMS = 2_000_000_000


@dataclass(frozen=True)
class ContextProfile:
    name: str
    max_notes: int  # memories given at most
    max_preferences: int
    relevant_only: bool  # give only memories that pass engine.search.recall's relevance test
    notes_in_user_turn: bool
    second_person: bool
    cacheable_prefix: bool  # pinned memories and standing preferences in a stable first system turn
    history_turns: int  # messages of this session kept at most
    guard_unknown: bool  # a personal question with no relevant note is answered "I don't know"
    answer_from_memory: bool  # a personal question is answered with the notes that answer it


COMPACT = ContextProfile("compact", max_notes=4, max_preferences=2, relevant_only=True, notes_in_user_turn=True,
                         second_person=True, cacheable_prefix=False, history_turns=6, guard_unknown=True,
                         answer_from_memory=True)
FULL = ContextProfile("full", max_notes=10, max_preferences=5, relevant_only=False, notes_in_user_turn=False,
                      second_person=False, cacheable_prefix=True, history_turns=20, guard_unknown=False,
                      answer_from_memory=False)


def choose_profile(info: ModelInfo, setting: str = "auto") -> ContextProfile:
    """`setting` is "auto" (by the model's size), "compact" or "full" (Settings overrides)."""
    if setting not in PROFILES:
        raise InvalidInputError(f"Unknown context profile {setting!r}; use one of {', '.join(PROFILES)}.")
    if setting == "compact":
        return COMPACT
    if setting == "full":
        return FULL
    # A backend that cannot tell its size (an endpoint, a fake) gets the layout large models read.
    return COMPACT if 0 < info.n_params < SMALL_MODEL_PARAMS else FULL


@dataclass(frozen=True)
class Note:
    """One memory as the model reads it."""

    id: str
    text: str
    when: datetime | None = None  # shown only where a date helps (a "when" question, a period)

    def line(self) -> str:
        return f"- ({self.when.strftime('%d %b %Y')}) {self.text}" if self.when else f"- {self.text}"


def compact_user_turn(text: str, notes: list[Note], preferences: list[Note]) -> str:
    """The user's turn for the compact profile: notes right above the question."""
    lines = [n.line() for n in preferences + notes]
    if not lines:
        return text
    return "Notes about me:\n" + "\n".join(lines) + "\n\n" + text


def compact_system(assistant: str, today: str | None, brief: bool) -> str:
    """One line. The date only when the question needs it: a 135M model otherwise recites it."""
    style = " Answer in one or two short sentences." if brief else ""
    day = f" Today is {today}." if today else ""
    return f"You are {assistant}, a helpful personal assistant.{day}{style}"


def memory_block(user: str, preferences: list[Note], notes: list[Note]) -> str:
    """The full profile's memory section (in the prefix, or in the block before the message)."""
    text = ""
    if preferences:
        text += f"\n{user}'s preferences. Your reply must respect them:\n" + "\n".join(
            f"- {p.text}" for p in preferences) + "\n"
    if notes:
        text += f"\nWhat you know about {user}:\n" + "\n".join(n.line() for n in notes) + "\n"
    return text.strip()
