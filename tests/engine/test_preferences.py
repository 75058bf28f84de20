"""Preference memory: preferences however they are said, and found for requests that never name them."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memdesk.engine.chat.turn import Chat, ChatConfig
from memdesk.engine.cube import ChatMessage, Filters, MemoryType
from memdesk.engine.llm.fake import FakeModel
from memdesk.engine.reader.jobs import EXTRACT_JOB
from memdesk.engine.reader.memreader import MemReader
from memdesk.engine.reader.preferences import preferences, style_of
from memdesk.engine.reader.rules import Utterance
from memdesk.engine.scheduler.queue import JobQueue

WHEN = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("said, style", [
    ("Night trains are what I really like.", "explicit"),
    ("I'd rather go somewhere in spring than in peak summer.", "explicit"),
    ("Laugh tracks drive me crazy.", "dislike"),
    ("Small talk with strangers drains me.", "dislike"),
    ("I use a wheelchair, so step-free access really matters.", "constraint"),
    ("Money's tight, so I can't pay for courses right now.", "constraint"),
    ("I'm a light sleeper, the smallest sound wakes me.", "identity"),
    ("I'm the kind of cook who never measures anything.", "identity"),
    ("Between the resort and the apartment with a kitchen, I went with the apartment again.", "implicit_choice"),
    ("I had tickets for the musical or the stand-up show, and I went to the stand-up.", "implicit_choice"),
    ("I stretch for fifteen minutes before bed every night.", "habit"),
    ("Every Sunday I check my screen time report.", "habit"),
])
def test_preferences_are_caught_however_they_are_said(said, style):
    assert style_of(said) == style
    found = preferences([Utterance(said, "Sam", WHEN, "m1")], "Sam")
    assert len(found) == 1 and found[0].memory_type == MemoryType.PREFERENCE.value
    assert style in found[0].tags and "Sam" in found[0].memory and " I " not in f" {found[0].memory} "


@pytest.mark.parametrize("said", [
    "Can you tell me a joke?", "What's a good way to remove a wine stain?", "Thanks, that helps!",
    "I love that!", "Convert 5 miles to km.", "Actually, my favourite colour isn't yellow any more, it's teal.",
])
def test_questions_requests_chit_chat_and_corrections_are_not_preferences(said):
    assert preferences([Utterance(said, "Sam", WHEN, "m1")], "Sam") == []


def test_a_stated_preference_is_stored_with_its_area_and_what_it_applies_to(mem):
    chat = Chat(mem, FakeModel(), ChatConfig(user_name="Sam", profile="compact"), jobs=JobQueue(mem.db))
    chat.jobs.handlers[EXTRACT_JOB] = MemReader(mem, None, user_name="Sam").handle_job
    chat.send("Laugh tracks drive me crazy, I switch the show off.", now=WHEN).text()
    chat.jobs.drain()
    stored = mem.list(Filters(memory_types=(MemoryType.PREFERENCE.value,)))
    assert len(stored) == 1 and "Laugh tracks" in stored[0].memory
    assert stored[0].info["area"] and len(stored[0].info["applies_to"]) == 3


def test_the_governing_preference_is_found_for_a_request_that_shares_no_words(mem):
    said = ["I'm allergic to shellfish, so shrimp and crab are off the table.",
            "I always read reviews for weeks before buying anything.",
            "I'm a night owl, my brain only wakes up after ten.",
            "Between the paperback and the e-book I picked the paperback again.",
            "Laugh tracks drive me crazy.",
            "I hate flying, planes stress me out."]
    added = mem.add_messages([ChatMessage("Sam", t, WHEN, f"m{i}", f"s{i}") for i, t in enumerate(said)])
    reader = MemReader(mem, None, user_name="Sam")
    reader.apply(reader.extract_items([mem.get(a.id) for a in added]))
    mem.wait_indexed()
    top = mem.search_preferences("We're stopping at a seafood shack, what should I get?", k=1)
    assert "shellfish" in top[0].item.memory
    top2 = [p.item.memory for p in mem.search_preferences("How should I get from Amsterdam to Berlin?", k=2)]
    assert any("flying" in m for m in top2)
    # The table of considerations adds what meaning alone misses: the bridge is part of the score.
    scored = mem.search_preferences("Suggest a sitcom to binge tonight.", k=6)
    assert all(p.score >= p.cosine for p in scored) and max(p.bridge for p in scored) > 0.3


def test_a_request_is_given_at_most_five_preferences_and_standing_ones_first(mem):
    for n in range(8):
        mem.add(f"Sam prefers option number {n} for everything.", memory_type=MemoryType.PREFERENCE)
    pinned = mem.add("Sam always wants metric units.", memory_type=MemoryType.PREFERENCE, pinned=True).id
    mem.wait_indexed()
    chat = Chat(mem, FakeModel(), ChatConfig(user_name="Sam", profile="full", extract=False))
    response = chat.send("Which option should I pick for dinner?", now=WHEN)
    response.text()
    assert pinned in response.result.preference_ids and len(response.result.preference_ids) <= 5


@pytest.mark.parametrize("said, style", [
    ("I cycle to the office, rain or shine.", "habit"),
    ("Let's be real, I'm a lazy gardener.", "identity"),
    ("I'm frugal by nature.", "identity"),
    ("When the kettle broke I had it repaired instead of buying another.", "implicit_choice"),
])
def test_a_lasting_trait_said_without_a_cue_word_is_a_preference(said, style):
    assert style_of(said) == style


@pytest.mark.parametrize("said", [
    "I'm at the airport and my gate changed.", "I'm so tired today.", "I went bowling with my cousin.",
    "Sorry, I meant the other one.", "I'm proud of you!",
])
def test_passing_states_and_one_off_events_are_not_preferences(said):
    assert style_of(said) is None


def test_the_disclosure_classifier_takes_what_lasts_by_meaning(embedder):
    from memdesk.engine.search.disclosures import DisclosureClassifier
    from memdesk.engine.search.preferences import Considerations

    classifier = DisclosureClassifier.for_embedder(embedder)
    assert DisclosureClassifier.for_embedder(embedder) is classifier  # one per embedder, per kind
    assert not isinstance(Considerations.for_embedder(embedder), DisclosureClassifier)
    lasting, passing = "Spicy food and I have never got along.", "My train is ten minutes late, ugh."
    assert style_of(lasting) is None  # no cue word: only meaning can tell
    p_lasting, p_passing = classifier.probability([lasting, passing])
    assert p_lasting > p_passing
    found = preferences([Utterance(lasting, "Sam", WHEN, "m1"), Utterance(passing, "Sam", WHEN, "m2")], "Sam",
                        lasting=classifier.lasting)
    assert [f.message_ids for f in found] == [("m1",)] and "stated" in found[0].tags


def test_a_message_that_gave_a_fact_becomes_a_preference_only_by_a_cue_word():
    said = [Utterance("I live in Oslo.", "Sam", WHEN, "m1"), Utterance("I live in Oslo and I hate the dark winters.",
                                                                       "Sam", WHEN, "m2")]
    found = preferences(said, "Sam", with_facts=frozenset({"m1", "m2"}))
    assert [f.message_ids for f in found] == [("m2",)]


def test_a_request_for_help_is_given_its_closest_preference_below_the_general_floor(mem):
    from memdesk.engine.search.recall import (
        HELP_PREFERENCE_SCORE,
        REQUEST_PREFERENCE_SCORE,
        asks_for_help,
    )

    assert asks_for_help("Plan my Saturday in Lisbon.") and asks_for_help("What's a good film for tonight?")
    assert not asks_for_help("How many ounces are in a cup?") and not asks_for_help("What is my sister called?")
    # Advice for someone of the user's is not a question about a fact: its preferences are not
    # held to the words a personal question asks about.
    assert asks_for_help("Which messaging app should my family use?")
    mem.add("Sam can't stand crowds and queues.", memory_type=MemoryType.PREFERENCE)
    mem.wait_indexed()
    request = "Plan my Saturday in Lisbon."
    [scored] = mem.search_preferences(request, k=1)
    assert HELP_PREFERENCE_SCORE <= scored.score  # what the turn below relies on
    response = Chat(mem, FakeModel(), ChatConfig(user_name="Sam", profile="compact", extract=False)).send(
        request, now=WHEN)
    response.text()
    assert [p.memory for p in response.result.preferences] == ["Sam can't stand crowds and queues."]
    if scored.score < REQUEST_PREFERENCE_SCORE:  # the lower floor is what gave it
        trivia = Chat(mem, FakeModel(), ChatConfig(user_name="Sam", profile="compact", extract=False)).send(
            "How many ounces are in a cup?", now=WHEN)
        trivia.text()
        assert trivia.result.preferences == ()


def test_the_shipped_classifier_weights_are_what_training_on_the_shipped_sentences_gives(embedder):
    """The weights in resources are a cache of training, not a number to trust: retrain and compare."""
    import numpy as np

    from memdesk.engine.search.disclosures import DisclosureClassifier, shipped_weights, training_data

    shipped = shipped_weights(embedder.fingerprint)
    assert shipped is not None, "run: python -m bench.disclosures --write-weights --out /tmp/d.json"
    data = training_data()
    trained = DisclosureClassifier(embedder, data["lasting"], data["passing"])
    probe = data["lasting"][:20] + data["passing"][:20]
    x = embedder.encode(probe)
    fresh = 1 / (1 + np.exp(-(x @ trained.weights + trained.bias)))
    cached = 1 / (1 + np.exp(-(x @ shipped[0] + shipped[1])))
    assert np.abs(fresh - cached).max() < 1e-3
