"""Current truth: notes in the person the model answers in, corrections and updates that supersede."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memdesk.engine.chat.notes import first_to_second, is_question_only, note_text, statements, third_to_second
from memdesk.engine.chat.turn import Chat, ChatConfig
from memdesk.engine.cube import ChatMessage, Filters, MemoryType, Relation, Status
from memdesk.engine.curation import Resolution, conflicts, resolve
from memdesk.engine.llm.fake import FakeModel
from memdesk.engine.reader.jobs import EXTRACT_JOB
from memdesk.engine.reader.memreader import MemReader
from memdesk.engine.reader.updates import corrections, holds_all, is_update, same_thing
from memdesk.engine.scheduler.queue import JobQueue

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


def test_facts_and_turns_become_second_person_notes():
    assert third_to_second("Sam's sister lives in Porto. Sam is vegetarian.", "Sam") == \
        "Your sister lives in Porto. You are vegetarian."
    assert third_to_second("Sam plays the trombone and Sam watches films.", "Sam") == \
        "You play the trombone and you watch films."
    assert third_to_second("Ana goes to Sam's class.", "Sam") == "Ana goes to your class."
    assert (first_to_second("I'm allergic to kiwi, my doctor told me.")
            == "You're allergic to kiwi, your doctor told you.")
    assert statements("Long day. Can you tell me a joke? My cat is Miso.") == "Long day. My cat is Miso."
    assert statements("What's my dog called?") == ""


def test_only_the_users_own_turns_say_you(kw_mem):
    ids = [r.id for r in kw_mem.add_messages([
        ChatMessage("Sam", "I live in Bristol.", T0, "m1", "s1"),
        ChatMessage("Caroline", "I went to a support group.", T0, "m2", "s1"),
        ChatMessage("Sam", "Where do I live?", T0, "m3", "s1")])]
    sam, caroline, question = (kw_mem.get(i) for i in ids)
    assert note_text(sam, "Sam", second_person=True) == "You live in Bristol."
    assert note_text(caroline, "Sam", second_person=True) == "Caroline said: I went to a support group."
    assert note_text(sam, "Sam", second_person=False) == "Sam said: I live in Bristol."
    assert is_question_only(question) and not is_question_only(sam)


def test_corrections_name_what_they_negate_and_what_is_true_now():
    found = corrections("Actually, my favourite colour isn't yellow any more, it's teal.")
    assert [(c.words, c.current) for c in found] == [(("favourite", "colour", "yellow"), "my favourite colour is teal")]
    found = corrections("I'm not vegetarian anymore, I eat meat now")
    assert found[0].words == ("vegetarian",) and found[0].current == "I eat meat now"
    assert corrections("I don't get up at 6am anymore, these days I wake at 7:30.")[0].current == \
        "these days I wake at 7:30"
    assert corrections("Summer isn't my favourite season any more, it's autumn.")[0].current == \
        "autumn is my favourite season"
    assert corrections("I never liked olives.") == [] and corrections("Why don't you answer anymore?") == []
    assert holds_all(("book", "club", "meet", "wednesdays"), "My book club meets on Wednesday.")


def test_an_update_must_share_a_common_noun_not_just_a_name():
    assert is_update("I got a new phone, a Pixel 8.") and not is_update("My phone is an iPhone 12.")
    assert same_thing("I got a new phone, a Pixel 8.", "My phone is an iPhone 12.")
    assert same_thing("Took Pepper to the vet, she's up to 13.6 kg.", "Pepper weighs 11 kg.")
    assert not same_thing("Callum lives in Inverness these days.", "My brother is called Callum.")
    assert not same_thing("Took Pepper to the vet, she's up to 13.6 kg.", "My dog is called Pepper.")


def _chat(mem):
    jobs = JobQueue(mem.db)
    jobs.handlers[EXTRACT_JOB] = MemReader(mem, None, user_name="Sam").handle_job
    return Chat(mem, FakeModel(), ChatConfig(user_name="Sam", profile="compact"), jobs=jobs), jobs


def _tell(chat, jobs, mem, text, when):
    chat.send(text, now=when).text()
    jobs.drain()
    mem.wait_indexed()


def test_a_plain_correction_supersedes_the_fact_and_the_turn_that_said_it(mem):
    chat, jobs = _chat(mem)
    _tell(chat, jobs, mem, "I'm vegetarian.", T0)
    diet = mem.find_by_key("diet", memory_types=(MemoryType.PREFERENCE.value,))
    assert [d.memory for d in diet] == ["Sam is vegetarian."]
    _tell(chat, jobs, mem, "I'm not vegetarian anymore, I eat meat now", T0 + timedelta(days=20))
    current = mem.get(diet[0].id)
    assert current.memory == "Sam eats meat now." and current.status == Status.ACTIVATED.value
    assert any("vegetarian" in v.item.memory for v in mem.history(current.id))
    old_turn = [m for m in mem.list(Filters(memory_types=(MemoryType.RAW_CHAT.value,), statuses=()))
                if m.memory == "Sam: I'm vegetarian."][0]
    assert old_turn.status == Status.ARCHIVED.value
    assert mem.history(old_turn.id)[-1].reason.startswith("superseded")
    assert any(e.relation == Relation.MERGED_TO.value and e.dst == current.id for e in mem.edges(old_turn.id))
    prompt_of = chat.send("What do I eat?", now=T0 + timedelta(days=21))
    prompt_of.text()
    assert "vegetarian" not in prompt_of.result.prompt.split("What do I eat?")[0]
    assert "meat" in prompt_of.result.prompt


def test_a_correction_of_a_turn_without_a_fact_adds_the_current_one(mem):
    chat, jobs = _chat(mem)
    _tell(chat, jobs, mem, "I bank with Barclays.", T0)
    _tell(chat, jobs, mem, "I don't bank with Barclays any more, I moved my current account to Monzo.",
          T0 + timedelta(days=3))
    live = [m.memory for m in mem.list(Filters(scope="default"))]
    assert "Sam: I bank with Barclays." not in live
    assert "Sam moved Sam's current account to Monzo." in live


def test_an_update_supersedes_the_statement_about_the_same_thing_only(mem):
    chat, jobs = _chat(mem)
    _tell(chat, jobs, mem, "My phone is an iPhone 12.", T0)
    _tell(chat, jobs, mem, "My brother is called Callum.", T0 + timedelta(days=1))
    _tell(chat, jobs, mem, "I got a new phone, a Pixel 8.", T0 + timedelta(days=5))
    _tell(chat, jobs, mem, "Callum lives in Inverness these days.", T0 + timedelta(days=6))
    live = " | ".join(m.memory for m in mem.list(Filters(scope="default"), limit=500))
    assert "iPhone" not in live and "Pixel 8" in live
    assert "called Callum" in live and "Inverness" in live


def test_a_resolved_conflict_supersedes_the_turn_behind_the_dropped_side(mem):
    chat, jobs = _chat(mem)
    _tell(chat, jobs, mem, "My sister Ana lives in Lisbon.", T0)
    fact = mem.find_by_key("sister ana / location")[0]
    mem.update(fact.id, pinned=True)  # the user's own word: a later value becomes a conflict
    _tell(chat, jobs, mem, "Ana moved to Porto.", T0 + timedelta(days=30))
    pair = conflicts(mem)[0]
    resolve(mem, pair.first.id, pair.second.id, Resolution.KEEP_SECOND)
    reply = chat.send("Where does my sister live?", now=T0 + timedelta(days=31))
    reply.text()
    given = " ".join(m.memory for m in reply.result.memories)
    assert "Porto" in given and "Lisbon" not in given
