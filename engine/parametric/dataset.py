"""Training data for parametric memory, built from the store. Nothing leaves the machine.

    plan = build_dataset(mem)                       # feedback examples + preferences to distil
    dataset = complete(plan, model)                 # the teacher step: needs the chat model
    snapshot = save_dataset(mem, dataset)           # encrypted inside the vault

Sources, all read from the vault:
- Feedback on replies (engine/vault/feedback.py). An edited reply gives an SFT example (the user's
  message -> the edited text) and a DPO triple (chosen = edited, rejected = the original); a
  thumbs-up reply gives an SFT example; a thumbs-down reply gives nothing to imitate, but is
  the rejected side of a DPO triple when another reply to the same message was liked or edited.
- Preferences stated in words: live PreferenceMemory items and pinned instruction-like
  memories ("Always sign off with 'Cheers'"). No reply can be written for those without a
  model, so `build_dataset` returns them as `PreferenceSpec`s and `distill` is the teacher
  step (context distillation): the chat model answers a few generic prompts WITH the
  preference in its system prompt, and the examples keep a system turn WITHOUT it, so
  training teaches the model to behave as if the preference were in its prompt.

`engine.parametric.types.Dataset` has no place for the specs, so `build_dataset` returns a
`DatasetPlan` (the dataset so far, the specs, and the system turn and date every example is
rendered with). Deterministic given the store: inputs are sorted, examples are put in a
canonical order, the held-out split is by hash and the teacher decodes greedily.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from memdesk.engine.api import Memory
from memdesk.engine.chat.turn import ChatConfig
from memdesk.engine.chat.turn import (
    system_text as chat_system,  # the very text a chat turn starts with, so the two never drift
)
from memdesk.engine.cube import Filters, MemoryItem, MemoryType, Status, from_ts, to_utc, ts, utcnow
from memdesk.engine.errors import CorruptStoreError, InvalidInputError, NotFoundError, Preempted
from memdesk.engine.llm.base import ChatModel, ChatTurn, GenerationConfig, GenerationStats
from memdesk.engine.parametric.types import Dataset, DpoExample, Progress, SftExample, ShouldStop
from memdesk.engine.resources import text as resource_text
from memdesk.engine.text import normalise
from memdesk.engine.vault import datasets as dataset_rows
from memdesk.engine.vault.feedback import RatedTurn

PROMPTS_RESOURCE = "parametric/prompts.txt"
PROMPTS_PER_PREFERENCE = 3
MAX_PREFERENCES = 64  # bounds the nightly teacher step (3 generations each)
DISTILL_MAX_TOKENS = 128
HELD_OUT_FRACTION = 0.2
MIN_FOR_HELD_OUT = 5  # with at least this many SFT examples, the gate always gets one
FEEDBACK_GROUP = "feedback"  # every feedback example states one implicit preference: "reply like this"

# Pinned memories that tell the assistant how to behave, as opposed to facts ("I use Linux").
# Deliberately narrow: a fact distilled as a behaviour would teach the model nonsense.
_IMPERATIVE = re.compile(
    r"^\s*(?:please\s+)?(?:always|never|don'?t|do not|avoid|call me|address me|reply|respond|answer|write|use|"
    r"keep|be|sign|end|start|begin|include|mention|speak|talk|greet|refer to me|stop|remember to)\b", re.I)
_STATED = re.compile(r"\b(?:prefers?|preferred|rather|from now on|instead of)\b|"
                     r"\b(?:always|never)\b.*\b(?:reply|replies|answer|answers|respond|write|say|sign|call|use|"
                     r"address|mention|include|end|start)\b", re.I)


@dataclass(frozen=True)
class PreferenceSpec:
    """A preference stated in words, waiting for the teacher step."""
    memory_id: str
    text: str
    as_of: datetime  # when the memory last changed


@dataclass(frozen=True)
class DatasetPlan:
    dataset: Dataset  # the feedback examples, split into training and held out
    specs: tuple[PreferenceSpec, ...]  # preferences `distill` turns into examples
    system: str  # the chat system turn without preferences or memories, on every example
    as_of: datetime  # the date `system` names: the newest source's, so rebuilding gives the same text
    user_name: str = "User"
    held_out_fraction: float = HELD_OUT_FRACTION
    # Before the split (re-split together with the distilled examples by `complete`).
    feedback_sft: tuple[SftExample, ...] = field(default=(), repr=False)
    feedback_dpo: tuple[DpoExample, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class StoredDataset:
    snapshot: str
    created_at: datetime
    sft: int
    dpo: int


# ------------------------------------------------------------------ building
def build_dataset(mem: Memory, *, held_out_fraction: float = HELD_OUT_FRACTION, now: datetime | None = None,
                  user_name: str = "User", max_preferences: int = MAX_PREFERENCES) -> DatasetPlan:
    """Everything the store says about the replies the person wants. `now` decides which
    memories have expired; `as_of` (the date in the system turn) comes from the sources."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise InvalidInputError(f"held_out_fraction must be in [0, 1), not {held_out_fraction}.")
    now = to_utc(now) or utcnow()
    turns = [t for t in mem.feedback.rated_turns() if t.prompt.strip()]
    specs = preference_specs(mem, now=now, limit=max_preferences)
    sft, dpo = feedback_examples(turns, "")
    # The system turn names a date; the newest source's keeps it fixed until the sources change.
    used = {source for example in (*sft, *dpo) for source in example.sources}
    dates = [t.feedback.updated_at for t in turns if t.feedback.message_id in used] + [s.as_of for s in specs]
    as_of = max(dates) if dates else now
    system = chat_system(user_name, as_of, [], [])
    sft = [replace(e, system=system) for e in sft]
    dpo = [replace(e, system=system) for e in dpo]
    dataset = assemble({FEEDBACK_GROUP: sft}, dpo, held_out_fraction)
    return DatasetPlan(dataset, tuple(specs), system, as_of, user_name, held_out_fraction, tuple(sft), tuple(dpo))


def feedback_examples(turns: Sequence[RatedTurn], system: str) -> tuple[list[SftExample], list[DpoExample]]:
    sft: list[SftExample] = []
    dpo: list[DpoExample] = []
    for turn in turns:
        fb = turn.feedback
        sources = (fb.message_id, turn.prompt_id)
        if fb.edited_text:
            sft.append(SftExample(turn.prompt, fb.edited_text, sources, system))
            dpo.append(DpoExample(turn.prompt, fb.edited_text, turn.reply, sources, system))
        elif fb.rating > 0:
            sft.append(SftExample(turn.prompt, turn.reply, sources, system))
    # A thumbs-down reply is the rejected side wherever another reply to the same message was
    # liked or edited (the person asked again and got, or wrote, a better one).
    by_prompt: dict[str, list[RatedTurn]] = {}
    for turn in turns:
        by_prompt.setdefault(normalise(turn.prompt), []).append(turn)
    for group in by_prompt.values():
        preferred = [(t.feedback.edited_text or t.reply, t) for t in group
                     if t.feedback.edited_text or t.feedback.rating > 0]
        for bad in (t for t in group if t.feedback.rating < 0):
            for text, good in preferred:
                if normalise(text) != normalise(bad.reply):
                    dpo.append(DpoExample(good.prompt, text, bad.reply,
                                          (good.feedback.message_id, bad.feedback.message_id), system))
    return sft, dpo


def preference_specs(mem: Memory, *, now: datetime | None = None, limit: int = MAX_PREFERENCES) -> list[PreferenceSpec]:
    """Live preferences and pinned instruction-like memories, most important first (pinned,
    then priority, then most recently changed), at most `limit`, returned sorted by id."""
    now = to_utc(now) or utcnow()
    active = (Status.ACTIVATED.value,)
    prefs = mem.list(Filters(memory_types=(MemoryType.PREFERENCE.value,), statuses=active), order="priority",
                     limit=limit)
    pinned = [m for m in mem.list(Filters(pinned=True, statuses=active), order="priority", limit=limit)
              if m.memory_type not in (MemoryType.PREFERENCE.value, MemoryType.RAW_CHAT.value,
                                       MemoryType.RAW_FILE.value) and is_instruction(m.memory)]
    chosen: dict[str, MemoryItem] = {}
    for item in sorted(prefs + pinned, key=lambda m: (not m.pinned, -m.priority, -ts(m.updated_at), m.id)):
        if item.expires is not None and to_utc(item.expires) <= now:
            continue
        chosen.setdefault(item.id, item)
    picked = list(chosen.values())[:limit]
    return sorted((PreferenceSpec(m.id, m.memory.strip(), to_utc(m.updated_at)) for m in picked),
                  key=lambda s: s.memory_id)


def is_instruction(text: str) -> bool:
    """Whether a pinned memory reads as an instruction to the assistant."""
    return bool(_IMPERATIVE.search(text) or _STATED.search(text))


# ------------------------------------------------------------------ held-out split
def _unit(text: str) -> float:
    """A stable number in [0, 1) for a text (sha256, never Python's salted hash)."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) / float(1 << 64)


def assemble(groups: Mapping[str, Sequence[SftExample]], dpo: Sequence[DpoExample],
             held_out_fraction: float = HELD_OUT_FRACTION) -> Dataset:
    """Canonical order, duplicates merged, and a held-out split the gate scores on.

    An example is held out when the hash of its prompt falls under `held_out_fraction`.
    Per group (one preference, or all feedback): at most ceil(fraction * size) are held out
    (lowest hashes first), at least one example always stays in training, and a group of
    three or more gives at least one to the gate. With MIN_FOR_HELD_OUT examples in all,
    the held-out set is never empty. DPO triples whose prompt is held out are dropped, so
    the gate never scores a prompt it was trained on."""
    train: list[SftExample] = []
    held: list[SftExample] = []
    spare: list[SftExample] = []  # held-out candidates if the rules above found none
    for name in sorted(groups):
        examples = _canonical_sft(groups[name])
        ranked = sorted(examples, key=lambda e: (_unit(e.prompt), e.prompt, e.reply))
        out = [e for e in ranked if _unit(e.prompt) < held_out_fraction]
        if held_out_fraction > 0 and not out and len(ranked) >= 3:
            out = ranked[:1]
        out = out[: min(len(ranked) - 1, math.ceil(len(ranked) * held_out_fraction))]
        if held_out_fraction > 0 and not out and len(ranked) >= 2:
            spare.append(ranked[0])
        held.extend(out)
        train.extend(e for e in examples if e not in out)
    if not held and spare and len(train) >= MIN_FOR_HELD_OUT:
        pick = min(spare, key=lambda e: (_unit(e.prompt), e.prompt, e.reply))
        held.append(pick)
        train.remove(pick)
    held_prompts = {normalise(e.prompt) for e in held}
    kept_dpo = [d for d in _canonical_dpo(dpo) if normalise(d.prompt) not in held_prompts]
    return Dataset(sft=tuple(_canonical_sft(train)), dpo=tuple(kept_dpo), held_out=tuple(_canonical_sft(held)))


def _canonical_sft(examples: Sequence[SftExample]) -> list[SftExample]:
    merged: dict[tuple[str, str, str], set[str]] = {}
    for e in examples:
        merged.setdefault((e.prompt, e.reply, e.system), set()).update(e.sources)
    return [SftExample(p, r, tuple(sorted(s)), sys) for (p, r, sys), s in sorted(merged.items())]


def _canonical_dpo(examples: Sequence[DpoExample]) -> list[DpoExample]:
    merged: dict[tuple[str, str, str, str], set[str]] = {}
    for e in examples:
        merged.setdefault((e.prompt, e.chosen, e.rejected, e.system), set()).update(e.sources)
    return [DpoExample(p, c, r, tuple(sorted(s)), sys) for (p, c, r, sys), s in sorted(merged.items())]


# ------------------------------------------------------------------ the teacher step
def generic_prompts() -> list[str]:
    """The everyday prompts preferences are distilled on (resources/parametric/prompts.txt)."""
    lines = (line.strip() for line in resource_text(PROMPTS_RESOURCE).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def prompts_for(memory_id: str, prompts: Sequence[str], count: int = PROMPTS_PER_PREFERENCE) -> list[str]:
    """`count` consecutive prompts starting where the memory id's hash points (round-robin,
    so different preferences are taught on different prompts)."""
    if not prompts:
        return []
    start = int(hashlib.sha256(memory_id.encode("utf-8")).hexdigest()[:8], 16) % len(prompts)
    return [prompts[(start + i) % len(prompts)] for i in range(min(count, len(prompts)))]


def distill(dataset_specs: Sequence[PreferenceSpec], model: ChatModel, prompts: Sequence[str] | None = None, *,
            max_tokens: int = DISTILL_MAX_TOKENS, per_preference: int = PROMPTS_PER_PREFERENCE,
            user_name: str = "User", as_of: datetime | None = None, should_stop: ShouldStop | None = None,
            progress: Progress | None = None) -> list[SftExample]:
    """Context distillation: greedy replies of `model` with each preference in its system
    prompt, kept as examples whose system turn has neither the preference nor memories.
    `as_of` (default: the newest spec's date) is the date both system turns name.
    Returns what was generated before `should_stop` said stop."""
    specs = sorted(dataset_specs, key=lambda s: s.memory_id)
    if not specs:
        return []
    prompts = list(prompts) if prompts is not None else generic_prompts()
    when = to_utc(as_of) or max(s.as_of for s in specs)
    student = chat_system(user_name, when, [], [])
    config = GenerationConfig(max_tokens=max_tokens, temperature=0.0, repeat_penalty=ChatConfig.repeat_penalty)
    jobs = [(spec, prompt) for spec in specs for prompt in prompts_for(spec.memory_id, prompts, per_preference)]
    out: list[SftExample] = []
    for done, (spec, prompt) in enumerate(jobs):
        if should_stop is not None and should_stop():
            break
        if progress is not None:
            progress(done / len(jobs), f"Writing example replies for preferences ({done + 1}/{len(jobs)})")
        preference = MemoryItem(memory=spec.text, id=spec.memory_id, memory_type=MemoryType.PREFERENCE.value)
        teacher = chat_system(user_name, when, [preference], [])
        # llama.cpp reuses the KV cache of a shared prompt prefix, and a prefix evaluated in
        # another batch shape gives slightly different logits: greedy replies would then depend
        # on what ran before. A reset makes each reply depend on its own prompt only.
        reset = getattr(model, "reset", None)
        if callable(reset):
            reset()
        stats = GenerationStats()
        text = model.render_chat([ChatTurn("system", teacher), ChatTurn("user", prompt)])
        reply = _complete_sentences("".join(model.stream(text, config, stats)), stats.stopped_by == "length")
        if reply:
            out.append(SftExample(prompt, reply, (spec.memory_id,), student))
    if progress is not None:
        progress(1.0, f"Wrote {len(out)} example replies for {len(specs)} preferences")
    return out


def _complete_sentences(reply: str, cut: bool) -> str:
    """A reply cut off at max_tokens ends at its last full sentence: training on a reply that
    stops mid-word would teach the model to stop mid-word."""
    reply = reply.strip()
    if not cut:
        return reply
    ends = [m.end() for m in re.finditer(r"[.!?…](?=\s|$)", reply)]
    return reply[: ends[-1]].strip() if ends and ends[-1] > len(reply) // 3 else reply


def complete(plan: DatasetPlan, model: ChatModel, *, prompts: Sequence[str] | None = None,
             max_tokens: int = DISTILL_MAX_TOKENS, should_stop: ShouldStop | None = None,
             progress: Progress | None = None) -> Dataset:
    """The plan's feedback examples plus the distilled preferences, split again as one set.
    Stopped part-way (`should_stop`), it raises Preempted rather than return a dataset that
    silently lacks some preferences."""
    distilled = distill(plan.specs, model, prompts, max_tokens=max_tokens, user_name=plan.user_name,
                        as_of=plan.as_of, should_stop=should_stop, progress=progress)
    if should_stop is not None and should_stop():
        raise Preempted("Writing example replies for your preferences was interrupted; it runs again later.")
    groups: dict[str, list[SftExample]] = {FEEDBACK_GROUP: list(plan.feedback_sft)}
    for example in distilled:
        groups.setdefault("memory:" + example.sources[0], []).append(example)
    return assemble(groups, plan.feedback_dpo, plan.held_out_fraction)


# ------------------------------------------------------------------ storage (inside the encrypted vault)
def save_dataset(mem: Memory, dataset: Dataset) -> str:
    """Store the dataset in the vault (encrypted with everything else); returns its snapshot.
    Saving the same data again only marks it as the latest."""
    data = dataset.to_json()
    snapshot = dataset.snapshot
    with mem.db.write() as conn:
        dataset_rows.save(conn, snapshot, created_at=ts(utcnow()), sft=len(dataset.sft), dpo=len(dataset.dpo),
                          data=data)
    return snapshot


def list_datasets(mem: Memory) -> list[StoredDataset]:
    """The stored datasets, newest first."""
    with mem.db.read() as conn:
        rows = dataset_rows.listing(conn)
    return [StoredDataset(r[0], from_ts(r[1]), r[2], r[3]) for r in rows]


def load_dataset(mem: Memory, snapshot: str) -> Dataset:
    """A stored dataset by snapshot (or a unique prefix of at least 6 characters)."""
    if not isinstance(snapshot, str) or len(snapshot.strip()) < 6 or not re.fullmatch(r"[0-9a-f]+", snapshot.strip()):
        raise InvalidInputError(f"{snapshot!r} is not a dataset snapshot; give its sha256 (or the first 6+ hex "
                                "digits), as `memdesk adapter dataset` shows it.")
    snapshot = snapshot.strip()
    with mem.db.read() as conn:
        rows = dataset_rows.by_prefix(conn, snapshot, limit=2)
    if not rows:
        raise NotFoundError(f"No stored dataset {snapshot!r}; `memdesk adapter dataset --rebuild` builds one.")
    if len(rows) > 1:
        raise InvalidInputError(f"{snapshot!r} matches several datasets; give more of the snapshot.")
    full, data = rows[0]
    dataset = Dataset.from_json(data)
    if dataset.snapshot != full:
        raise CorruptStoreError(f"The stored dataset {full[:12]} does not match its snapshot; rebuild it with "
                                "`memdesk adapter dataset --rebuild`.")
    return dataset


def latest_dataset(mem: Memory) -> Dataset | None:
    """The dataset stored most recently, or None before the first one."""
    stored = list_datasets(mem)
    return load_dataset(mem, stored[0].snapshot) if stored else None
