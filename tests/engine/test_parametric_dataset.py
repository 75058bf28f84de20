"""Feedback on replies and the parametric-memory dataset built from the store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryType
from memdesk.engine.errors import InvalidInputError, NotFoundError, Preempted
from memdesk.engine.llm.fake import FakeModel
from memdesk.engine.parametric.dataset import (
    DatasetPlan,
    PreferenceSpec,
    assemble,
    build_dataset,
    complete,
    distill,
    generic_prompts,
    is_instruction,
    latest_dataset,
    list_datasets,
    load_dataset,
    prompts_for,
    save_dataset,
)
from memdesk.engine.parametric.types import Dataset, SftExample
from memdesk.engine.vault.feedback import Feedback
from memdesk.engine.vault.sessions import Sessions
from tests.conftest import FAST_KDF

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
MARKER = "Quokka-marker-5521 is the word I wanted"


def turn(mem, prompt: str, reply: str, session_id: str | None = None) -> tuple[str, str]:
    """A user message and the assistant's reply; returns (session id, reply message id)."""
    sessions = Sessions(mem.db)
    session_id = session_id or sessions.create(prompt[:20]).id
    sessions.append(session_id, "user", prompt, when=T0)
    reply_message = sessions.append(session_id, "assistant", reply, when=T0 + timedelta(seconds=5))
    return session_id, reply_message.id


# ------------------------------------------------------------------ feedback
def test_feedback_rates_and_edits_assistant_replies_only(kw_mem):
    session, reply = turn(kw_mem, "How do I boil an egg?", "Boil it for nine minutes.")
    user_message = Sessions(kw_mem.db).messages(session)[0]
    feedback = Feedback(kw_mem.db)
    with pytest.raises(InvalidInputError, match="assistant's replies"):
        feedback.rate(user_message.id, 1)
    with pytest.raises(InvalidInputError, match="assistant's replies"):
        feedback.edit(user_message.id, "something")
    with pytest.raises(NotFoundError, match="No chat message"):
        feedback.rate("no-such-message", 1)
    for bad in (2, -3, True, "1"):
        with pytest.raises(InvalidInputError, match="rating"):
            feedback.rate(reply, bad)
    with pytest.raises(InvalidInputError):
        feedback.edit(reply, "   ")
    assert feedback.get(reply) is None and feedback.all() == []

    first = feedback.rate(reply, 1, when=T0)
    assert (first.rating, first.edited_text, first.session_id) == (1, None, session)
    edited = feedback.edit(reply, "  Nine minutes in boiling water, then cold water.  ", when=T0 + timedelta(hours=1))
    assert edited.rating == 1  # editing keeps the rating
    assert edited.edited_text == "Nine minutes in boiling water, then cold water."
    assert edited.created_at == T0 and edited.updated_at == T0 + timedelta(hours=1)
    assert feedback.get(reply) == edited and feedback.all() == [edited]
    assert feedback.rate(reply, -1).rating == -1
    # Saving the reply unchanged clears the edit: it says nothing new.
    assert feedback.edit(reply, "Boil it for nine minutes.").edited_text is None
    assert feedback.for_session(session)[reply].rating == -1
    # Deleting the chat hides its feedback from the dataset; prune removes it.
    Sessions(kw_mem.db).delete(session)
    assert feedback.all() == [] and feedback.rated_turns() == []
    assert feedback.prune() == 1 and feedback.get(reply) is None


# ------------------------------------------------------------------ examples from feedback
def test_edited_reply_gives_sft_and_dpo_and_thumbs_up_gives_sft(kw_mem):
    feedback = Feedback(kw_mem.db)
    _, edited = turn(kw_mem, "Suggest a dinner.", "You could eat food.")
    _, liked = turn(kw_mem, "Name a fruit.", "An apple.")
    _, disliked = turn(kw_mem, "Tell me a joke.", "No.")
    feedback.edit(edited, "Try a mushroom risotto tonight.", when=T0)
    feedback.rate(liked, 1, when=T0)
    feedback.rate(disliked, -1, when=T0)

    plan = build_dataset(kw_mem, held_out_fraction=0.0)
    assert isinstance(plan, DatasetPlan) and plan.specs == ()
    data = plan.dataset
    pairs = {(e.prompt, e.reply) for e in data.sft}
    assert pairs == {("Suggest a dinner.", "Try a mushroom risotto tonight."), ("Name a fruit.", "An apple.")}
    assert [(d.prompt, d.chosen, d.rejected) for d in data.dpo] == [
        ("Suggest a dinner.", "Try a mushroom risotto tonight.", "You could eat food.")]
    assert data.held_out == ()
    assert all(edited in e.sources or liked in e.sources for e in data.sft)
    # Every example carries the chat system turn without preferences or memories, dated by its newest source.
    assert plan.system.startswith("You are MemDesk") and "Friday 14 March 2025" in plan.system
    assert {e.system for e in data.sft} | {d.system for d in data.dpo} == {plan.system}
    assert "must respect them" not in plan.system and "(dated)" not in plan.system


def test_thumbs_down_is_rejected_against_a_better_reply_to_the_same_message(kw_mem):
    feedback = Feedback(kw_mem.db)
    session, bad = turn(kw_mem, "What is the capital of Portugal?", "Madrid.")
    _, good = turn(kw_mem, "what is the capital of Portugal", "Lisbon.", session)
    feedback.rate(bad, -1)
    data = build_dataset(kw_mem, held_out_fraction=0.0).dataset
    assert data.sft == () and data.dpo == ()  # a thumbs-down alone teaches nothing to imitate
    feedback.rate(good, 1)
    data = build_dataset(kw_mem, held_out_fraction=0.0).dataset
    assert [(e.prompt, e.reply) for e in data.sft] == [("what is the capital of Portugal", "Lisbon.")]
    assert [(d.chosen, d.rejected) for d in data.dpo] == [("Lisbon.", "Madrid.")]
    assert set(data.dpo[0].sources) == {good, bad}


def test_build_is_deterministic_and_the_held_out_split_is_stable(kw_mem):
    feedback = Feedback(kw_mem.db)
    prompts = [f"Question number {i}: what should I do about task {i}?" for i in range(12)]
    for i, prompt in enumerate(prompts):
        _, reply = turn(kw_mem, prompt, f"Do task {i} first thing tomorrow.")
        feedback.rate(reply, 1, when=T0 + timedelta(minutes=i))
    first, second = build_dataset(kw_mem), build_dataset(kw_mem)
    assert first.dataset == second.dataset and first.dataset.snapshot == second.dataset.snapshot
    data = first.dataset
    assert data.held_out, "12 examples must leave some for the gate"
    assert len(data.sft) >= 1 and len(data.sft) + len(data.held_out) == 12
    assert not {e.prompt for e in data.held_out} & {e.prompt for e in data.sft}
    assert len(data.held_out) <= 6  # about a fifth, never most of the data
    # Another example does not move the ones already split (the split is by hash of the prompt).
    _, extra = turn(kw_mem, "One more question?", "One more answer.")
    feedback.rate(extra, 1, when=T0)
    again = build_dataset(kw_mem).dataset
    assert {e.prompt for e in data.held_out} <= {e.prompt for e in again.held_out}
    assert again.snapshot != data.snapshot


def test_split_keeps_the_only_example_of_a_preference_and_drops_held_out_dpo():
    one = SftExample("Plan my weekend.", "Rest, then hike. Cheers", ("m1",))
    assert assemble({"memory:m1": [one]}, [], 0.99).held_out == ()  # never the only example
    two = [one, SftExample("Cook dinner?", "Soup. Cheers", ("m1",))]
    data = assemble({"memory:m1": two}, [], 0.99)
    assert len(data.held_out) == 1 and len(data.sft) == 1
    three = [*two, SftExample("A book?", "Dune. Cheers", ("m1",))]
    assert len(assemble({"memory:m1": three}, [], 0.0001).held_out) == 1  # a group of three always gives one
    assert assemble({"memory:m1": three}, [], 0.0).held_out == ()
    from memdesk.engine.parametric.types import DpoExample
    held = assemble({"memory:m1": two}, [DpoExample(p.prompt, p.reply, "No.") for p in two], 0.99)
    assert [d.prompt for d in held.dpo] == [held.sft[0].prompt]  # the gate's prompt is never trained on


# ------------------------------------------------------------------ preferences and the teacher step
def test_preferences_and_pinned_instructions_become_specs(kw_mem):
    cheers = kw_mem.add("Always sign off with 'Cheers'", memory_type=MemoryType.USER, pinned=True).id
    short = kw_mem.add("Prefers short answers", memory_type=MemoryType.PREFERENCE).id
    kw_mem.add("I use Linux at work", memory_type=MemoryType.USER, pinned=True)  # a fact, not an instruction
    gone = kw_mem.add("Likes long essays", memory_type=MemoryType.PREFERENCE).id
    kw_mem.archive(gone)
    kw_mem.add("Wants answers in French this week", memory_type=MemoryType.PREFERENCE,
               expires=datetime.now(UTC) - timedelta(days=1))
    plan = build_dataset(kw_mem)
    assert [s.memory_id for s in plan.specs] == sorted([cheers, short])
    assert {s.text for s in plan.specs} == {"Always sign off with 'Cheers'", "Prefers short answers"}
    assert plan.dataset.sft == ()  # nothing can be written for them without the model
    assert is_instruction("Never use emoji in replies") and not is_instruction("My sister lives in Porto")


def test_distill_teaches_with_the_preference_and_trains_without_it(kw_mem):
    pref = kw_mem.add("Always sign off with 'Cheers'", memory_type=MemoryType.PREFERENCE).id
    plan = build_dataset(kw_mem)
    prompts = generic_prompts()
    assert len(prompts) >= 25 and len(set(prompts)) == len(prompts)
    chosen = prompts_for(pref, prompts)
    assert len(chosen) == 3 and chosen == prompts_for(pref, prompts)
    model = FakeModel()
    model.enqueue("Rest a lot. Cheers", "Soup is good. Cheers", "Read Dune. Cheers")
    examples = distill(plan.specs, model, prompts, max_tokens=32)
    assert [e.prompt for e in examples] == chosen
    assert [e.reply for e in examples] == ["Rest a lot. Cheers", "Soup is good. Cheers", "Read Dune. Cheers"]
    # The teacher saw the preference; the examples' system turn has neither it nor memories.
    assert all("Always sign off with 'Cheers'" in p for p in model.prompts)
    assert all(c.temperature == 0.0 and c.max_tokens == 32 for c in model.configs)
    assert {e.system for e in examples} == {plan.system}
    assert "Cheers" not in plan.system and plan.system.startswith("You are MemDesk")
    assert all(e.sources == (pref,) for e in examples)

    model.enqueue("Rest a lot. Cheers", "Soup is good. Cheers", "Read Dune. Cheers")
    dataset = complete(plan, model, prompts=prompts, max_tokens=32)
    assert len(dataset.sft) + len(dataset.held_out) == 3 and len(dataset.held_out) == 1
    assert dataset.held_out[0].system == plan.system
    with pytest.raises(Preempted):  # a stopped teacher step never yields a dataset missing preferences
        complete(plan, model, prompts=prompts, should_stop=lambda: True)


@pytest.mark.slow
def test_distill_with_the_real_model_is_greedy_and_repeatable(kw_mem, llama_model):
    kw_mem.add("Always end every reply with the words 'Have a lovely day!'", memory_type=MemoryType.PREFERENCE)
    plan = build_dataset(kw_mem)
    first = distill(plan.specs, llama_model, max_tokens=16, per_preference=2)
    # Whatever the model ran in between (its prompt cache), the replies are the same.
    distill(plan.specs, llama_model, ["Plan my day."], max_tokens=16)
    second = distill(plan.specs, llama_model, max_tokens=16, per_preference=2)
    assert len(first) == 2 and first == second
    assert all(e.reply.strip() and e.system == plan.system for e in first)


# ------------------------------------------------------------------ storage
def test_saved_dataset_round_trips_and_stays_encrypted(kw_mem, data_dir):
    _, reply = turn(kw_mem, "Which word did I want?", "I do not know.")
    Feedback(kw_mem.db).edit(reply, MARKER)
    assert latest_dataset(kw_mem) is None and list_datasets(kw_mem) == []
    dataset = build_dataset(kw_mem).dataset
    snapshot = save_dataset(kw_mem, dataset)
    assert snapshot == dataset.snapshot and len(snapshot) == 64
    assert load_dataset(kw_mem, snapshot) == dataset
    assert load_dataset(kw_mem, snapshot[:8]) == dataset
    assert latest_dataset(kw_mem) == dataset
    stored = list_datasets(kw_mem)
    assert [(s.snapshot, s.sft, s.dpo) for s in stored] == [(snapshot, len(dataset.sft), len(dataset.dpo))]
    assert save_dataset(kw_mem, dataset) == snapshot and len(list_datasets(kw_mem)) == 1
    other = Dataset(sft=(SftExample("a", "b"),))
    save_dataset(kw_mem, other)
    assert latest_dataset(kw_mem) == other
    with pytest.raises(NotFoundError):
        load_dataset(kw_mem, "abcdef0123")
    with pytest.raises(InvalidInputError):
        load_dataset(kw_mem, "xyz")
    # The examples are inside the encrypted vault: no file in the data folder holds them in plaintext.
    kw_mem.db.close()
    needle = b"Quokka-marker-5521"
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert files and not [p for p in files if needle in p.read_bytes()]


def test_spec_dates_fix_the_system_turn(kw_mem):
    spec = PreferenceSpec("m-1", "Prefers bullet points", T0)
    model = FakeModel(default_reply="- one\n- two")
    (example,) = distill([spec], model, ["Plan my day."], max_tokens=16)
    assert "Friday 14 March 2025" in example.system and "bullet" not in example.system


# ------------------------------------------------------------------ the CLI
def memdesk(*args: str) -> subprocess.CompletedProcess:
    """`memdesk` for real in a subprocess (it inherits MEMDESK_DATA_DIR and the passphrase)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "memdesk", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_adapter_dataset_shows_builds_and_stores_it(kw_mem, data_dir):
    assert os.environ["MEMDESK_DATA_DIR"] == str(data_dir)
    _, edited = turn(kw_mem, "Which word did I want?", "I do not know.")
    _, liked = turn(kw_mem, "Name a fruit.", "An apple.")
    Feedback(kw_mem.db).edit(edited, MARKER)
    Feedback(kw_mem.db).rate(liked, 1)
    pref = kw_mem.add("Prefers short answers", memory_type=MemoryType.PREFERENCE).id
    expected = build_dataset(kw_mem).dataset
    kw_mem.close()

    shown = json.loads(memdesk("adapter", "dataset", "--json").stdout)
    assert shown["stored"] is False and shown["snapshot"] == expected.snapshot
    assert shown["counts"] == {"sft": len(expected.sft), "dpo": 1, "held_out": len(expected.held_out)}
    assert len(expected.sft) + len(expected.held_out) == 2
    replies = {e["reply"] for e in shown["sft"] + shown["held_out"]}
    assert replies == {MARKER, "An apple."}
    assert shown["dpo"][0]["chosen"] == MARKER and shown["dpo"][0]["rejected"] == "I do not know."
    assert shown["pending_preferences"] == [{"memory_id": pref, "text": "Prefers short answers"}]

    text = memdesk("adapter", "dataset").stdout
    assert expected.snapshot[:16] in text and "1 DPO pairs" in text and "not stored yet" in text
    assert "Quokka-marker-5521" in text and "Prefers short answers" in text

    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        stored = save_dataset(mem, expected)  # what the nightly job does after distilling
    again = json.loads(memdesk("adapter", "dataset", "--json").stdout)
    assert again["stored"] is True and again["snapshot"] == stored and again["stored_at"]
    assert again["pending_preferences"] == []  # a stored dataset is shown as it was stored
    assert "encrypted in the vault" in memdesk("adapter", "dataset").stdout

    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        mem.archive(pref)  # with no preference to distil, --rebuild needs no model
        fresh = build_dataset(mem).dataset
    rebuilt = json.loads(memdesk("adapter", "dataset", "--rebuild", "--json").stdout)
    assert rebuilt["stored"] is True and rebuilt["snapshot"] == fresh.snapshot
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        assert latest_dataset(mem) == fresh and list_datasets(mem)[0].snapshot == fresh.snapshot
