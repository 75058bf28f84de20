"""Tests for engine.reader.rules: rule-based extraction of memories from chat turns."""
from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from memdesk.engine.cube import MemoryType
from memdesk.engine.reader.rules import Extracted, Utterance, extract

UTC = UTC
# Monday 2023-05-08 13:56 UTC, LoCoMo's first session.
REF = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def say(text: str, speaker: str = "Caroline", mid: str = "m1", ts: datetime = REF,
        is_user: bool = True) -> Utterance:
    return Utterance(text=text, speaker=speaker, timestamp=ts, message_id=mid, is_user=is_user)


def one(text: str, speaker: str = "Caroline", **kw) -> Extracted:
    items = extract([say(text, speaker, **kw)])
    assert len(items) == 1, f"{text!r} -> {items}"
    return items[0]


def nothing(text: str) -> None:
    assert extract([say(text)]) == [], text


# --- explicit preferences ------------------------------------------------------------------------

def test_like_is_an_explicit_preference():
    item = one("I really love hiking in the mountains!")
    assert item.memory == "Caroline really loves hiking in the mountains."
    assert item.memory_type == MemoryType.PREFERENCE.value == "PreferenceMemory"
    assert item.key == "preference: hiking"
    assert item.tags == ("preference", "explicit")
    assert item.polarity == "+"
    assert item.confidence == pytest.approx(0.9)
    assert item.event_time is None
    assert item.message_ids == ("m1",)


@pytest.mark.parametrize("text, memory", [
    ("I hate cilantro.", "Caroline hates cilantro."),
    ("I don't like horror movies.", "Caroline doesn't like horror movies."),
    ("I can't stand loud music", "Caroline can't stand loud music."),
    ("I really dislike crowded bars.", "Caroline really dislikes crowded bars."),
    ("I'm not a fan of sushi.", "Caroline is not a fan of sushi."),
])
def test_dislikes_have_negative_polarity(text, memory):
    item = one(text)
    assert item.polarity == "-"
    assert item.memory == memory
    assert item.memory_type == "PreferenceMemory"


def test_like_and_dislike_of_the_same_thing_share_a_key():
    liked, disliked = one("I love horror movies."), one("I don't like horror movies anymore.")
    assert liked.key == disliked.key == "preference: horror movies"
    assert (liked.polarity, disliked.polarity) == ("+", "-")


def test_fan_of():
    item = one("I'm a big fan of jazz.")
    assert (item.key, item.memory, item.polarity) == ("preference: jazz", "Caroline is a big fan of jazz.", "+")


def test_prefer_x_to_y_keys_on_x():
    item = one("I prefer tea to coffee.")
    assert item.key == "preference: tea"
    assert item.memory == "Caroline prefers tea to coffee."
    assert one("I'd rather stay home than go out.").memory == "Caroline would rather stay home than go out."


def test_prefer_to_infinitive_is_not_a_comparison():
    assert one("I prefer to go to the beach.").key == "preference: to go to the beach"


@pytest.mark.parametrize("text", [
    "I want you to give me short answers.",
    "I'd like shorter answers.",
    "Keep your answers brief, please.",
])
def test_answer_style_instructions(text):
    item = one(text)
    assert item.key == "preference: answer style"
    assert item.memory_type == "PreferenceMemory"
    assert item.memory.startswith("Caroline prefers ")


def test_detailed_answers_conflict_with_short_ones():
    short, detailed = one("I want short answers."), one("I want detailed answers.")
    assert short.key == detailed.key
    assert short.memory != detailed.memory


def test_please_always_and_never():
    always = one("Please always use emojis in your answers.")
    never = one("Please never use emojis in your answers.")
    assert always.key == never.key
    assert (always.polarity, never.polarity) == ("+", "-")
    assert never.memory == "Caroline wants the assistant to never use emojis in its answers."
    call = one("Please never call me Carol.")
    assert call.memory == "Caroline wants the assistant to never call Caroline Carol."


# --- implicit preferences ----------------------------------------------------------------------

def test_implicit_choice_is_a_weaker_preference():
    item = one("I'll take the budget hotel.")
    assert item.memory == "Caroline chose the budget hotel."
    assert item.memory_type == "PreferenceMemory"
    assert item.tags == ("preference", "implicit")
    assert item.confidence < one("I love budget hotels.").confidence
    assert item.confidence == pytest.approx(0.6)


@pytest.mark.parametrize("text, memory", [
    ("Let's go with the cheaper one.", "Caroline chose the cheaper one."),
    ("I booked the 7am flight.", "Caroline booked the 7am flight."),
    ("I went with the blue option", "Caroline chose the blue option."),
    ("I picked the vegetarian menu.", "Caroline chose the vegetarian menu."),
])
def test_choices_keep_their_adjectives(text, memory):
    item = one(text)
    assert item.memory == memory
    assert "implicit" in item.tags


# --- facts about the user ----------------------------------------------------------------------

def test_relative_lives_in():
    item = one("My sister Ana lives in Lisbon.")
    assert item.memory == "Caroline's sister Ana lives in Lisbon."
    assert item.key == "sister Ana / location"
    assert item.memory_type == "UserMemory"
    assert "family" in item.tags


def test_moving_updates_the_same_key_as_living():
    lives = one("My sister Ana lives in Lisbon.", mid="m1")
    moved = one("My sister Ana moved to Porto.", mid="m2")
    apposition = one("Ana, my sister, moved to Porto.", mid="m3")
    assert lives.key == moved.key == apposition.key == "sister Ana / location"
    assert apposition.memory == "Ana, Caroline's sister, moved to Porto."


def test_relative_work_and_pets():
    assert one("My brother Tom works at Microsoft.").key == "brother Tom / employer"
    assert one("My mom works as a nurse.").key == "mom / role"
    dog = one("My dog's name is Max.")
    assert (dog.key, dog.memory, dog.tags[0]) == ("dog / name", "Caroline's dog's name is Max.", "pets")


@pytest.mark.parametrize("text, key, memory", [
    ("I live in Berlin.", "home / location", "Caroline lives in Berlin."),
    ("I just moved to Berlin.", "home / location", "Caroline just moved to Berlin."),
    ("I'm from Sweden.", "home / origin", "Caroline is from Sweden."),
    ("I work at Google.", "work / employer", "Caroline works at Google."),
    ("I work as a nurse.", "work / role", "Caroline works as a nurse."),
    ("I'm a software engineer.", "work / role", "Caroline is a software engineer."),
    ("I'm a teacher by profession.", "work / role", "Caroline is a teacher by profession."),
    ("I started a new job at Acme.", "work / employer", "Caroline started a new job at Acme."),
    ("My name is Caroline.", "name", "Caroline's name is Caroline."),
    ("My birthday is on 12 June.", "birthday", "Caroline's birthday is on 12 June."),
    ("I have two kids.", "family / kids count", "Caroline has two kids."),
    ("I have a dog named Max.", "pets / dog Max", "Caroline has a dog named Max."),
])
def test_user_facts(text, key, memory):
    item = one(text)
    assert (item.key, item.memory, item.memory_type) == (key, memory, "UserMemory")


def test_location_and_work_tags():
    assert one("I live in Berlin.").tags == ("location",)
    assert one("I work at Google.").tags == ("work",)


def test_birthday_keeps_its_date_as_said():
    item = one("My birthday is on 12 June.")
    assert item.event_time is None  # a recurring date, not an event that happened in 2022


def test_health_and_diet():
    allergy = one("I'm allergic to peanuts.")
    assert (allergy.key, allergy.memory_type, allergy.tags) == ("allergy: peanuts", "UserMemory", ("health",))
    diet = one("I'm vegetarian.")
    assert (diet.key, diet.memory_type, diet.memory) == ("diet", "PreferenceMemory", "Caroline is vegetarian.")
    assert one("I'm a vegan.").key == "diet"
    no_meat = one("I don't eat pork.")
    assert (no_meat.key, no_meat.polarity) == ("diet: pork", "-")


def test_favourites_are_preferences():
    item = one("My favorite color is blue.")
    assert (item.key, item.memory_type) == ("preference: favorite color", "PreferenceMemory")


# --- events --------------------------------------------------------------------------------------

def test_event_time_is_resolved_and_named():
    item = one("I went to a LGBTQ support group yesterday and it was so powerful.")
    assert item.memory_type == "LongTermMemory"
    assert item.event_time is not None and item.event_time.date() == date(2023, 5, 7)
    assert item.memory.startswith("Caroline went to a LGBTQ support group")
    assert "on 7 May 2023" in item.memory and "yesterday" not in item.memory
    assert item.key == "event: went to lgbtq support group"


@pytest.mark.parametrize("text, key, day, phrase", [
    ("I adopted a puppy on 3 May.", "event: adopted puppy", date(2023, 5, 3), "on 3 May 2023"),
    ("I visited my mom last weekend.", "event: visited mom", date(2023, 5, 6), "on the weekend of 6 May 2023"),
    ("I joined a book club last month.", "event: joined book club", date(2023, 4, 1), "in April 2023"),
    ("I finished the marathon two days ago.", "event: finished marathon", date(2023, 5, 6), "on 6 May 2023"),
    ("I started painting in 2019.", "event: started painting", date(2019, 1, 1), "in 2019"),
])
def test_events_with_time(text, key, day, phrase):
    item = one(text)
    assert (item.key, item.event_time.date()) == (key, day)
    assert phrase in item.memory


def test_hedged_time_becomes_around():
    item = one("I started playing acoustic guitar about five years ago; it's been a great way to express myself.")
    assert item.key == "event: started playing acoustic guitar"
    assert item.memory == "Caroline started playing acoustic guitar around 2018."
    assert item.event_time.year == 2018


def test_keys_use_the_object_head():
    assert one("I love going on road trips with friends.").key == "preference: going on road trips"
    assert one("I'm a fan of savasana - aka the corpse pose.").key == "preference: savasana"
    assert one("I love sharing what I know.").memory == "Caroline loves sharing what Caroline knows."


def test_event_without_a_time_is_skipped():
    nothing("I went to a support group.")
    nothing("I started a few days ago.")
    nothing("I recently adopted a puppy.")


def test_plans_are_not_events():
    nothing("I'm going to visit Paris next week.")
    nothing("I visited Paris tomorrow.")


def test_naive_timestamp_is_utc():
    item = one("I went to the museum yesterday.", ts=datetime(2023, 5, 8, 13, 56))
    assert item.event_time == datetime(2023, 5, 7, tzinfo=UTC)


def test_other_facts_get_event_time_when_dated():
    item = one("My sister Ana moved to Porto last month.")
    assert item.key == "sister Ana / location"
    assert item.event_time.date() == date(2023, 4, 1)
    assert item.memory == "Caroline's sister Ana moved to Porto in April 2023."


# --- third person, speakers ------------------------------------------------------------------------

def test_you_speaker_becomes_the_user():
    assert one("I live in Berlin.", speaker="You").memory == "The user lives in Berlin."
    assert one("My sister Ana lives in Lisbon.", speaker="user").memory == "The user's sister Ana lives in Lisbon."
    assert one("Ana, my sister, lives in Lisbon.", speaker="You").memory == "Ana, the user's sister, lives in Lisbon."


def test_user_name_overrides_speaker():
    items = extract([say("I live in Berlin.", speaker="You")], user_name="Maria")
    assert items[0].memory == "Maria lives in Berlin."


def test_fillers_and_emojis_are_trimmed():
    assert one("Oh, yeah, I love painting lol 😀").memory == "Caroline loves painting."
    assert one("Well, I live in Berlin :)").memory == "Caroline lives in Berlin."
    assert one("Mel, I love pottery!").memory == "Caroline loves pottery."


def test_several_clauses_in_one_turn():
    items = extract([say("I love hiking and I live in Lisbon. My brother works at Google!")])
    assert [i.key for i in items] == ["preference: hiking", "home / location", "brother / employer"]


# --- what must not be extracted ----------------------------------------------------------------------

def test_assistant_statements_are_never_user_facts():
    assert extract([say("I love hiking and I live in Berlin.", speaker="Assistant", is_user=False)]) == []


def test_questions_are_skipped():
    nothing("Do you like pizza?")
    nothing("I love hiking, do you?")
    nothing("My sister lives in Lisbon?")


def test_hypotheticals_are_skipped():
    nothing("If I lived in Paris I would love it.")
    nothing("Would I like sushi.")
    nothing("Maybe I love jazz.")


def test_chit_chat_yields_nothing():
    nothing("Hey Mel! Good to see you!")
    nothing("That's so cool!")


NEUTRAL = [
    "Hey Mel! Good to see you!",
    "That's so cool!",
    "I love that!",
    "I love it so much!",
    "I love you!",
    "I like your painting.",
    "I love how you did that.",
    "I love the photos!",
    "I'm so happy for you.",
    "Thanks, I appreciate it.",
    "I think I'll go to the park tomorrow.",
    "Maybe I should try yoga.",
    "I'm a bit tired today.",
    "I'm a terrible cook.",
    "I went to the store.",
    "I went to bed early last night.",
    "I work at night.",
    "I live in fear of spiders.",
    "My day is going great.",
    "My bad!",
    "I'll take a look.",
    "I'll take the dog for a walk.",
    "I like to think so.",
    "I'm a big fan of yours!",
    "I'm not sure what to do.",
    "I'd rather not say.",
    "I have a question.",
    "I finished it yesterday.",
    "I love it when it rains.",
]


def test_precision_on_neutral_sentences():
    found = extract([say(text, mid=f"m{i}") for i, text in enumerate(NEUTRAL)])
    assert found == [], [(i.key, i.memory) for i in found]


# --- dedupe, shape ------------------------------------------------------------------------------------

def test_dedupe_within_a_call_merges_message_ids():
    items = extract([say("I love jazz.", mid="a"), say("I love jazz!", mid="b"), say("I love jazz.", mid="a")])
    assert len(items) == 1
    assert items[0].message_ids == ("a", "b")


def test_different_memories_with_the_same_key_are_both_kept():
    items = extract([say("My sister Ana lives in Lisbon.", mid="a"), say("My sister Ana moved to Porto.", mid="b")])
    assert [i.key for i in items] == ["sister Ana / location"] * 2
    assert [i.message_ids for i in items] == [("a",), ("b",)]


def test_results_are_frozen_and_typed():
    item = one("I live in Berlin.")
    assert dataclasses.is_dataclass(item)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.key = "x"  # type: ignore[misc]
    assert item.memory_type in {m.value for m in MemoryType}
    assert 0.0 <= item.confidence <= 1.0
    assert item.memory.endswith(".")


def test_empty_input():
    assert extract([]) == []
    assert extract([say("")]) == []
    assert extract([say("   \n ")]) == []
