"""Tests for engine.search.timeparse: English time expressions -> [start, end) windows."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from memdesk.engine.search.timeparse import TimeRange, find_time_range, resolve_event_time

UTC = UTC
# Monday 2023-05-08 13:56 UTC, the reference used throughout unless a test says otherwise.
REF = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def window(text: str, ref: datetime = REF, fn=find_time_range) -> tuple[datetime, datetime]:
    result = fn(text, ref)
    assert result is not None, f"no time expression found in {text!r}"
    return result.start, result.end


# --- examples from the spec ---------------------------------------------------------------

def test_yesterday_in_stored_text():
    r = resolve_event_time("I went to a LGBTQ support group yesterday and it was so powerful.", REF)
    assert r is not None
    assert (r.start, r.end) == (d(2023, 5, 7), d(2023, 5, 8))
    assert r.text == "yesterday"
    assert r.span == (32, 41)


def test_last_year_in_stored_text():
    r = resolve_event_time("Yeah, I painted that lake sunrise last year!", REF)
    assert (r.start, r.end, r.text) == (d(2022, 1, 1), d(2023, 1, 1), "last year")


def test_last_sunday_in_stored_text():
    assert window("We ran a charity race last Sunday", fn=resolve_event_time) == (
        d(2023, 5, 7), d(2023, 5, 8))


def test_two_weeks_ago_is_an_iso_week():
    r = find_time_range("What did I do two weeks ago?", REF)
    assert (r.start, r.end, r.text) == (d(2023, 4, 24), d(2023, 5, 1), "two weeks ago")
    assert r.start.weekday() == 0
    # The brief's own example: from Wed 2024-06-19.
    assert window("two weeks ago", d(2024, 6, 19)) == (d(2024, 6, 3), d(2024, 6, 10))


def test_last_may_depends_on_current_month():
    assert window("what happened last May", d(2024, 6, 19)) == (d(2024, 5, 1), d(2024, 6, 1))
    assert window("what happened last May", d(2024, 5, 10)) == (d(2023, 5, 1), d(2023, 6, 1))


def test_in_year():
    r = find_time_range("trips in 2023", REF)
    assert (r.start, r.end, r.text) == (d(2023, 1, 1), d(2024, 1, 1), "in 2023")


@pytest.mark.parametrize("text", [
    "May I ask you something?",
    "I have 2 dogs",
    "hello",
    "",
    "this may be wrong",
    "you may want to check",
    "3 may be enough",
    "we may 1 day go there",
    "room 2023 is upstairs",
    "I scored 2023 points",
    "05/07/2023",
    "I love winter",
    "don't fall down",
    "we march on",
    "the next day we left",
    "Fridays are for pizza",
    "chicago agony",
    "May God bless you",
])
def test_no_time_expression(text):
    assert find_time_range(text, REF) is None
    assert resolve_event_time(text, REF) is None


def test_days_follow_the_given_zone():
    jst = timezone(timedelta(hours=9), "JST")
    # 01:00 on Monday in Tokyo is still Sunday in UTC: days follow the user's calendar,
    # whatever zone the reference instant is written in.
    ref = datetime(2023, 5, 8, 1, 0, tzinfo=jst)
    for written in (ref, ref.astimezone(UTC)):
        r = resolve_event_time("I went to a support group yesterday", written, tz=jst)
        assert r.start == datetime(2023, 5, 7, tzinfo=jst)
        assert r.end == datetime(2023, 5, 8, tzinfo=jst)
        assert r.start.tzinfo is jst and r.end.tzinfo is jst
        rec = find_time_range("what did I do recently", written, tz=jst)
        assert rec.end == ref and rec.end.tzinfo is jst


def test_zoneinfo_reference_across_dst():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        tz = zoneinfo.ZoneInfo("America/New_York")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database on this machine")
    ref = datetime(2023, 3, 13, 9, 0, tzinfo=tz)  # the Monday after DST began
    r = find_time_range("last weekend", ref, tz=tz)
    start, end = r.start, r.end
    assert (start, end) == (datetime(2023, 3, 11, tzinfo=tz), datetime(2023, 3, 13, tzinfo=tz))
    assert start.tzinfo is tz
    assert end - start == timedelta(days=2)  # wall-clock days, not 48 real hours
    assert start.utcoffset() != end.utcoffset()


def test_naive_reference_is_utc():
    r = find_time_range("yesterday", datetime(2023, 5, 8, 13, 56))
    assert r.start == d(2023, 5, 7) and r.start.utcoffset() == timedelta(0)


def test_timerange_is_frozen_and_span_matches_text():
    text = "Honestly, since the summer of 2022 I have been busy"
    r = find_time_range(text, REF)
    assert text[r.span[0]:r.span[1]] == r.text == "since the summer of 2022"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.text = "x"  # type: ignore[misc]
    assert isinstance(r, TimeRange)


# --- one test per expression family -------------------------------------------------------

@pytest.mark.parametrize("text, start, end", [
    ("today", d(2023, 5, 8), d(2023, 5, 9)),
    ("tonight", d(2023, 5, 8), d(2023, 5, 9)),
    ("this morning", d(2023, 5, 8), d(2023, 5, 9)),
    ("this afternoon", d(2023, 5, 8), d(2023, 5, 9)),
    ("This evening", d(2023, 5, 8), d(2023, 5, 9)),
    ("yesterday", d(2023, 5, 7), d(2023, 5, 8)),
    ("last night", d(2023, 5, 7), d(2023, 5, 8)),
    ("tomorrow", d(2023, 5, 9), d(2023, 5, 10)),
    ("the day before yesterday", d(2023, 5, 6), d(2023, 5, 7)),
    ("the day after tomorrow", d(2023, 5, 10), d(2023, 5, 11)),
])
def test_relative_days(text, start, end):
    assert window(text) == (start, end)
    assert window(text, fn=resolve_event_time) == (start, end)


def test_relative_day_match_text():
    assert find_time_range("it happened the day before yesterday", REF).text == (
        "the day before yesterday")


@pytest.mark.parametrize("text, start, end", [
    ("3 days ago", d(2023, 5, 5), d(2023, 5, 6)),
    ("a day ago", d(2023, 5, 7), d(2023, 5, 8)),
    ("a few days ago", d(2023, 5, 5), d(2023, 5, 6)),
    ("a week ago", d(2023, 5, 1), d(2023, 5, 8)),
    ("a couple of weeks ago", d(2023, 4, 24), d(2023, 5, 1)),
    ("a month ago", d(2023, 4, 1), d(2023, 5, 1)),
    ("6 months ago", d(2022, 11, 1), d(2022, 12, 1)),
    ("a year ago", d(2022, 1, 1), d(2023, 1, 1)),
    ("two years ago", d(2021, 1, 1), d(2022, 1, 1)),
    ("Ten Years Ago", d(2013, 1, 1), d(2014, 1, 1)),
])
def test_ago(text, start, end):
    assert window(text) == (start, end)


@pytest.mark.parametrize("text, start, end", [
    ("last week", d(2023, 5, 1), d(2023, 5, 8)),
    ("this week", d(2023, 5, 8), d(2023, 5, 15)),
    ("next week", d(2023, 5, 15), d(2023, 5, 22)),
    ("last month", d(2023, 4, 1), d(2023, 5, 1)),
    ("this month", d(2023, 5, 1), d(2023, 6, 1)),
    ("next month", d(2023, 6, 1), d(2023, 7, 1)),
    ("last year", d(2022, 1, 1), d(2023, 1, 1)),
    ("this year", d(2023, 1, 1), d(2024, 1, 1)),
    ("next year", d(2024, 1, 1), d(2025, 1, 1)),
    ("the previous week", d(2023, 5, 1), d(2023, 5, 8)),
    ("last weekend", d(2023, 5, 6), d(2023, 5, 8)),
    ("this weekend", d(2023, 5, 13), d(2023, 5, 15)),
    ("next weekend", d(2023, 5, 20), d(2023, 5, 22)),
    ("the past weekend", d(2023, 5, 6), d(2023, 5, 8)),
])
def test_last_this_next_units(text, start, end):
    assert window(text) == (start, end)


def test_weekend_spans_saturday_to_monday():
    start, end = window("last weekend", d(2024, 6, 19))
    assert start.weekday() == 5 and end.weekday() == 0 and end - start == timedelta(days=2)


def test_month_boundary_wraps_year():
    assert window("last month", d(2023, 1, 15)) == (d(2022, 12, 1), d(2023, 1, 1))
    assert window("next month", d(2023, 12, 15)) == (d(2024, 1, 1), d(2024, 2, 1))
    assert window("3 months ago", d(2023, 2, 15)) == (d(2022, 11, 1), d(2022, 12, 1))


@pytest.mark.parametrize("text, start, end", [
    ("past week", REF - timedelta(days=7), REF),
    ("in the last 3 days", REF - timedelta(days=3), REF),
    ("over the past few days", REF - timedelta(days=3), REF),
    ("the next two weeks", REF, REF + timedelta(weeks=2)),
])
def test_rolling_windows(text, start, end):
    assert window(text) == (start, end)


@pytest.mark.parametrize("text, start", [
    ("last Friday", d(2023, 5, 5)),
    ("on Friday", d(2023, 5, 5)),
    ("Friday", d(2023, 5, 5)),
    ("friday", d(2023, 5, 5)),
    ("last Sunday", d(2023, 5, 7)),
    ("on Monday", d(2023, 5, 1)),  # strictly before the reference day
    ("next Friday", d(2023, 5, 12)),
    ("next Monday", d(2023, 5, 15)),
    ("this Friday", d(2023, 5, 12)),
    ("this Monday", d(2023, 5, 8)),
])
def test_weekdays_in_a_search(text, start):
    assert window(text) == (start, start + timedelta(days=1))


@pytest.mark.parametrize("text, start", [
    ("last Friday", d(2023, 5, 5)),
    ("on Friday", d(2023, 5, 12)),  # a dated note without a verb is a plan: the coming Friday
    ("friday", d(2023, 5, 12)),
    ("on Monday", d(2023, 5, 15)),  # strictly after the reference day
    ("I went there on Monday", d(2023, 5, 1)),
    ("next Friday", d(2023, 5, 12)),
    ("this Monday", d(2023, 5, 8)),
])
def test_weekdays_in_stored_text(text, start):
    assert window(text, fn=resolve_event_time) == (start, start + timedelta(days=1))


def test_weekday_on_same_weekday_goes_back_a_week():
    assert window("last Friday", d(2023, 5, 12, 9)) == (d(2023, 5, 5), d(2023, 5, 6))


@pytest.mark.parametrize("text, start, end", [
    ("in May", d(2023, 5, 1), d(2023, 6, 1)),
    ("during May", d(2023, 5, 1), d(2023, 6, 1)),
    ("in may we went hiking", d(2023, 5, 1), d(2023, 6, 1)),
    ("May was busy", d(2023, 5, 1), d(2023, 6, 1)),
    ("in June", d(2022, 6, 1), d(2022, 7, 1)),  # not in the future
    ("in March", d(2023, 3, 1), d(2023, 4, 1)),
    ("last May", d(2022, 5, 1), d(2022, 6, 1)),
    ("last April", d(2023, 4, 1), d(2023, 5, 1)),
    ("this May", d(2023, 5, 1), d(2023, 6, 1)),
    ("this December", d(2023, 12, 1), d(2024, 1, 1)),
    ("next May", d(2024, 5, 1), d(2024, 6, 1)),
    ("next June", d(2023, 6, 1), d(2023, 7, 1)),
    ("May 2023", d(2023, 5, 1), d(2023, 6, 1)),
    ("in May of 2021", d(2021, 5, 1), d(2021, 6, 1)),
    ("LAST MAY", d(2022, 5, 1), d(2022, 6, 1)),
])
def test_month_names(text, start, end):
    assert window(text) == (start, end)


@pytest.mark.parametrize("text, start, end", [
    ("in 2023", d(2023, 1, 1), d(2024, 1, 1)),
    ("during 2022", d(2022, 1, 1), d(2023, 1, 1)),
    ("I was born in 1990", d(1990, 1, 1), d(1991, 1, 1)),
    ("in the year 2020", d(2020, 1, 1), d(2021, 1, 1)),
])
def test_years(text, start, end):
    assert window(text) == (start, end)


@pytest.mark.parametrize("text, start", [
    ("since 2021", d(2021, 1, 1)),
    ("since May", d(2023, 5, 1)),
    ("since last Friday", d(2023, 5, 5)),
    ("since yesterday", d(2023, 5, 7)),
    ("ever since the summer of 2022", d(2022, 6, 1)),
])
def test_since_runs_to_the_reference(text, start):
    r = find_time_range(text, REF)
    assert (r.start, r.end) == (start, REF)
    assert r.text.lower().startswith("since")


@pytest.mark.parametrize("text", [
    "7 May 2023", "May 7, 2023", "May 7th", "7th of May", "the 7th of May", "2023-05-07",
    "May 7", "on may 7", "7 may 2023",
])
def test_absolute_dates(text):
    assert window(text) == (d(2023, 5, 7), d(2023, 5, 8))


def test_absolute_dates_other_forms():
    assert window("Jan. 5, 2022") == (d(2022, 1, 5), d(2022, 1, 6))
    assert window("Sept 3rd") == (d(2022, 9, 3), d(2022, 9, 4))  # not in the future
    assert window("3 March") == (d(2023, 3, 3), d(2023, 3, 4))
    assert window("on December 25") == (d(2022, 12, 25), d(2022, 12, 26))
    assert window("Feb 29") == (d(2020, 2, 29), d(2020, 3, 1))  # nearest leap year
    assert window("2023-05-07T10:00") == (d(2023, 5, 7), d(2023, 5, 8))
    assert find_time_range("Feb 30", REF) is None


def test_day_without_year_picks_closest_past_year():
    assert window("May 8th") == (d(2023, 5, 8), d(2023, 5, 9))  # today counts
    assert window("May 9th") == (d(2022, 5, 9), d(2022, 5, 10))
    assert window("on 31 December", d(2024, 1, 2)) == (d(2023, 12, 31), d(2024, 1, 1))


@pytest.mark.parametrize("text, ref, start, end", [
    ("last summer", REF, d(2022, 6, 1), d(2022, 9, 1)),
    ("last summer", d(2023, 10, 2), d(2023, 6, 1), d(2023, 9, 1)),
    ("last summer", d(2023, 7, 2), d(2022, 6, 1), d(2022, 9, 1)),
    ("this summer", REF, d(2023, 6, 1), d(2023, 9, 1)),
    ("next summer", REF, d(2023, 6, 1), d(2023, 9, 1)),
    ("in the summer of 2022", REF, d(2022, 6, 1), d(2022, 9, 1)),
    ("summer 2021", REF, d(2021, 6, 1), d(2021, 9, 1)),
    ("last winter", REF, d(2022, 12, 1), d(2023, 3, 1)),
    ("this winter", d(2023, 1, 20), d(2022, 12, 1), d(2023, 3, 1)),
    ("last winter", d(2023, 1, 20), d(2021, 12, 1), d(2022, 3, 1)),
    ("in the fall", REF, d(2022, 9, 1), d(2022, 12, 1)),
    ("last autumn", REF, d(2022, 9, 1), d(2022, 12, 1)),
    ("this spring", REF, d(2023, 3, 1), d(2023, 6, 1)),
])
def test_seasons(text, ref, start, end):
    assert window(text, ref) == (start, end)


@pytest.mark.parametrize("text, start, end", [
    ("early May", d(2023, 5, 1), d(2023, 5, 11)),
    ("mid-May", d(2023, 5, 11), d(2023, 5, 21)),
    ("in late May", d(2023, 5, 21), d(2023, 6, 1)),
    ("early 2023", d(2023, 1, 1), d(2023, 5, 1)),
    ("mid 2021", d(2021, 5, 1), d(2021, 9, 1)),
    ("in late 2022", d(2022, 9, 1), d(2023, 1, 1)),
    ("early last year", d(2022, 1, 1), d(2022, 5, 1)),
    ("the end of last year", d(2022, 9, 1), d(2023, 1, 1)),
    ("at the beginning of March", d(2023, 3, 1), d(2023, 3, 11)),
    ("in early summer 2021", d(2021, 6, 1), d(2021, 7, 1)),
])
def test_early_mid_late(text, start, end):
    assert window(text) == (start, end)


@pytest.mark.parametrize("text", ["recently", "I've been tired lately", "What did I read recently?"])
def test_recently(text):
    assert window(text) == (REF - timedelta(days=30), REF)
    assert window(text, fn=resolve_event_time) == (REF - timedelta(days=30), REF)


# --- selection ----------------------------------------------------------------------------

def test_first_expression_wins():
    r = find_time_range("Yesterday I planned what to do next week", REF)
    assert r.text == "Yesterday"
    r = find_time_range("in the summer of 2022 we went to Paris on May 7th", REF)
    assert r.text == "in the summer of 2022"


def test_longest_expression_at_same_start_wins():
    assert find_time_range("on May 7, 2023 we met", REF).text == "May 7, 2023"
    assert find_time_range("last May 2021", REF).text == "last May 2021"


def test_modal_may_does_not_hide_a_later_date():
    r = find_time_range("May I ask what you did last weekend?", REF)
    assert r.text == "last weekend"


def test_both_functions_agree():
    for text in ("last May", "two weeks ago", "in 2023", "yesterday"):
        assert find_time_range(text, REF) == resolve_event_time(text, REF)


# --- properties -----------------------------------------------------------------------------

PHRASES = [
    "today", "tonight", "this morning", "yesterday", "last night", "tomorrow",
    "the day before yesterday", "0 days ago", "3 days ago", "two weeks ago", "a month ago",
    "12 months ago", "a few days ago", "a couple of weeks ago", "a year ago", "last week",
    "this week", "next week", "last month", "this month", "next month", "last year",
    "this year", "next year", "last weekend", "this weekend", "next weekend", "past week",
    "last 3 days", "next 2 months", "last Friday", "on Sunday", "Monday", "next Friday",
    "this Saturday", "last May", "in May", "since May", "this May", "next May", "May 2023",
    "in 2023", "during 2022", "since 2021", "7 May 2023", "May 7, 2023", "May 7th",
    "7th of May", "2023-05-07", "Feb 29", "last summer", "this summer", "next summer",
    "in the summer of 2022", "last winter", "this winter", "in the fall", "early May",
    "mid-May", "late May", "early 2023", "late last year", "end of this month",
    "middle of next week", "recently", "lately", "since yesterday", "since last Friday",
    "since the winter", "in late December", "early January",
]
REFS = [
    REF,
    d(2024, 1, 1, 0, 0),  # new year's midnight
    d(2024, 2, 29, 12),  # leap day
    d(2023, 12, 31, 23, 59),
    d(2023, 1, 1, 0, 0),  # a Sunday
    datetime(2023, 3, 26, 2, 30),  # naive
    datetime(2023, 7, 15, 8, 0, tzinfo=timezone(timedelta(hours=-7))),
]


@pytest.mark.parametrize("ref", REFS, ids=lambda r: r.isoformat())
def test_every_phrase_gives_a_proper_window(ref):
    for phrase in PHRASES:
        for fn in (find_time_range, resolve_event_time):
            for text in (phrase, f"Tell me about {phrase}, please."):
                r = fn(text, ref)
                assert r is not None, (text, ref)
                assert r.start < r.end, (text, ref, r)
                assert r.start.tzinfo is not None and r.end.tzinfo is not None
                assert text[r.span[0]:r.span[1]] == r.text
                assert r.text.lower().endswith(phrase.lower().split()[-1])

