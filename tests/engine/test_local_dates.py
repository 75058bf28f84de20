"""Issue 12, correct dates: relative dates resolve on the user's calendar (not UTC's), are
stored in UTC, and undated days resolve forward for plans and backward for the past.

The user here lives in America/Phoenix (UTC-7 all year, no DST to blur the point). At 19:00
there it is already 02:00 the next day in UTC: before the fix every caller converted the
reference to UTC first, and "yesterday" written at 7 pm was stored as today."""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from memdesk.engine.chat.turn import system_text
from memdesk.engine.cube import ChatMessage, to_utc
from memdesk.engine.ingestion.folders import Ingestor
from memdesk.engine.reader.memreader import parse_query
from memdesk.engine.reader.rules import Utterance, extract
from memdesk.engine.search.timeparse import find_time_range, local_zone, resolve_event_time

UTC = UTC
PHOENIX = ZoneInfo("America/Phoenix")
# Tuesday 1 December 2026, 19:00 in Phoenix = Wednesday 2 December, 02:00 UTC.
EVENING = datetime(2026, 12, 1, 19, 0, tzinfo=PHOENIX).astimezone(UTC)
# Both sides of the user's midnight: 23:30 Tuesday and 00:30 Wednesday, Phoenix time.
BEFORE_MIDNIGHT = datetime(2026, 12, 1, 23, 30, tzinfo=PHOENIX).astimezone(UTC)
AFTER_MIDNIGHT = datetime(2026, 12, 2, 0, 30, tzinfo=PHOENIX).astimezone(UTC)


def local_day(y: int, m: int, d: int) -> datetime:
    """The start of that day in Phoenix, as the UTC instant the vault stores."""
    return datetime(y, m, d, tzinfo=PHOENIX).astimezone(UTC)


@pytest.fixture
def phoenix(monkeypatch):
    monkeypatch.setenv("TZ", "America/Phoenix")
    assert local_zone() == PHOENIX


def test_the_local_zone_comes_from_tz(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_zone() == ZoneInfo("Asia/Tokyo")
    monkeypatch.setenv("TZ", ":Europe/Lisbon")  # the POSIX spelling with a colon
    assert local_zone() == ZoneInfo("Europe/Lisbon")


@pytest.mark.parametrize("instant, yesterday", [
    (EVENING, (2026, 11, 30)),
    (BEFORE_MIDNIGHT, (2026, 11, 30)),
    (AFTER_MIDNIGHT, (2026, 12, 1)),
])
def test_yesterday_is_the_users_yesterday(phoenix, instant, yesterday):
    for parse in (find_time_range, resolve_event_time):
        r = parse("I went for a run yesterday", instant)
        assert (r.start, r.end) == (local_day(*yesterday), local_day(*yesterday) + timedelta(days=1))
        assert r.start.tzinfo == PHOENIX


def test_an_explicit_zone_wins_over_the_environment(phoenix):
    r = resolve_event_time("I went for a run yesterday", EVENING, tz=UTC)
    assert r.start == datetime(2026, 12, 1, tzinfo=UTC)  # 02:00 UTC on the 2nd: UTC's yesterday is the 1st


def test_add_stores_the_users_yesterday_in_utc(phoenix, kw_mem):
    item = kw_mem.get(kw_mem.add("I went for a run yesterday", reference_time=EVENING).id)
    assert item.event_time == local_day(2026, 11, 30)
    assert item.event_time.tzinfo == UTC  # stored in UTC
    assert item.event_end == local_day(2026, 12, 1)


def test_add_messages_resolve_on_the_users_calendar(phoenix, kw_mem):
    results = kw_mem.add_messages([ChatMessage("You", "I saw Ana yesterday", EVENING, role="user")])
    assert kw_mem.get(results[0].id).event_time == local_day(2026, 11, 30)
    late = kw_mem.add_messages([ChatMessage("You", "We had dinner today", AFTER_MIDNIGHT, role="user")])
    assert kw_mem.get(late[0].id).event_time == local_day(2026, 12, 2)


def test_search_windows_are_the_users_days(phoenix, kw_mem):
    plan = kw_mem.plan("what did I do yesterday?", reference_time=EVENING)
    assert (plan.window.start, plan.window.end) == (local_day(2026, 11, 30), local_day(2026, 12, 1))
    intent = parse_query("what did I do today?", EVENING)
    assert (to_utc(intent.window.start), to_utc(intent.window.end)) == (local_day(2026, 12, 1), local_day(2026, 12, 2))


def test_a_notes_dates_follow_its_mtime_on_the_users_calendar(phoenix, kw_mem, tmp_path):
    note = tmp_path / "run.md"
    note.write_text("Went for a run yesterday.\n")
    os.utime(note, (EVENING.timestamp(), EVENING.timestamp()))
    Ingestor(kw_mem).ingest_file(note)
    [item] = kw_mem.list()
    assert item.event_time == local_day(2026, 11, 30)


def test_the_prompt_says_the_users_today(phoenix):
    assert "Tuesday 01 December 2026" in system_text("Ana", EVENING, [], [])
    assert "Wednesday 02 December 2026" in system_text("Ana", AFTER_MIDNIGHT, [], [])


# --- forward for plans, backward for the past ---------------------------------------------
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # Tuesday 1 December 2026 (TZ=UTC from conftest)


@pytest.mark.parametrize("text, start, end", [
    ("Dentist appointment on Friday", (2026, 12, 4), (2026, 12, 5)),  # not Friday 27 November
    ("Trip to Japan early April", (2027, 4, 1), (2027, 4, 11)),
    ("Finish the tax forms by January", (2027, 1, 1), (2027, 2, 1)),
    ("We're flying to Rome in April", (2027, 4, 1), (2027, 5, 1)),
    ("I'll see Ana next month", (2027, 1, 1), (2027, 2, 1)),
    ("Dentist appointment on December 4", (2026, 12, 4), (2026, 12, 5)),  # not 2025
    ("I booked a table for Friday", (2026, 12, 4), (2026, 12, 5)),
    ("Concert in the summer", (2027, 6, 1), (2027, 9, 1)),
    # The past looks back.
    ("I went to the dentist on Friday", (2026, 11, 27), (2026, 11, 28)),
    ("We moved to Porto in April", (2026, 4, 1), (2026, 5, 1)),
    ("I visited my parents on 4 December", (2025, 12, 4), (2025, 12, 5)),
    ("I've been vegetarian since April", (2026, 4, 1), None),
])
def test_stored_dates_resolve_by_tense(text, start, end):
    r = resolve_event_time(text, NOON)
    assert r.start == datetime(*start, tzinfo=UTC), text
    assert r.end == (datetime(*end, tzinfo=UTC) if end else NOON), text


@pytest.mark.parametrize("text, start", [
    ("What did I do on Friday?", (2026, 11, 27)),
    ("Where was I in April?", (2026, 4, 1)),
    ("notes from April", (2026, 4, 1)),  # no verb: a search is about the past
    ("What do I have on Friday?", (2026, 12, 4)),
    ("When is my dentist appointment in January?", (2027, 1, 1)),
])
def test_searches_resolve_by_tense(text, start):
    assert find_time_range(text, NOON).start == datetime(*start, tzinfo=UTC), text


def test_a_captured_plan_is_dated_in_the_future(kw_mem):
    item = kw_mem.get(kw_mem.add("Dentist appointment on Friday", reference_time=NOON).id)
    assert item.event_time == datetime(2026, 12, 4, tzinfo=UTC)


def say(text: str) -> Utterance:
    return Utterance(text=text, speaker="Ana", timestamp=NOON, message_id="m1")


def test_plans_said_in_chat_are_still_not_stored_as_facts():
    # Forward resolution makes these future times; MemReader's rules keep skipping plans.
    for text in ("I'm going to the dentist on Friday.", "I'm flying to Rome in April.",
                 "I'll visit my mom next week."):
        assert extract([say(text)]) == [], text


def test_what_is_or_was_so_is_kept_with_its_date():
    [event] = extract([say("I went to the dentist on Friday.")])
    assert event.event_time == datetime(2026, 11, 27, tzinfo=UTC)
    [fact] = extract([say("My birthday is on 12 June.")])  # present tense: a fact, though June lies ahead
    assert fact.key == "birthday"
