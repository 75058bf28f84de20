"""Realistic content for `memdesk gui --smoke` and `--screenshots`: a person's memories,
a contradiction to resolve, two past chats and a folder of notes. Deterministic, so a
screenshot shows the same thing each time it is taken."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryType, Relation

NOW = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)

FACTS = [
    # (text, key, type, tags, days ago (event), pinned)
    ("Prefers short answers with a concrete next step.", "answer style", MemoryType.PREFERENCE, ["style"], None, True),
    ("Is vegetarian; eats fish only on holidays.", "diet", MemoryType.PREFERENCE, ["food", "health"], None, False),
    ("Likes hiking in the Peneda-Gerês national park in spring.",
     "hiking", MemoryType.PREFERENCE, ["outdoors"], None, False),
    ("Lives in Porto, in the Bonfim neighbourhood.", "home", MemoryType.USER, ["home"], None, True),
    ("Works as a product designer at Lumen Health.", "work", MemoryType.USER, ["work"], None, False),
    ("Sister Ana is a nurse at Hospital de São João.", "sister ana / job", MemoryType.USER, ["family"], None, False),
    ("Started learning Japanese with a tutor on Thursday evenings.",
     "japanese", MemoryType.LONG_TERM, ["learning"], 410, False),
    ("Ran the Lisbon half marathon in 1:52.", "lisbon half", MemoryType.LONG_TERM, ["running"], 395, False),
    ("Moved from Lisbon to Porto.", "move to porto", MemoryType.LONG_TERM, ["home"], 330, False),
    ("Adopted a cat named Miso from the shelter.", "cat miso", MemoryType.LONG_TERM, ["pets"], 290, False),
    ("Dentist appointment with Dr. Silva: cleaning and a filling.",
     "dentist", MemoryType.LONG_TERM, ["health"], 250, False),
    ("Trip to Kyoto with Ana: temples, the Philosopher's Path, too much matcha.",
     "kyoto trip", MemoryType.LONG_TERM, ["travel", "family"], 200, False),
    ("Promoted to senior designer; leads the patient-app redesign.",
     "promotion", MemoryType.LONG_TERM, ["work"], 150, False),
    ("Bought a road bike (Canyon Endurace) for the commute.",
     "road bike", MemoryType.LONG_TERM, ["cycling"], 120, False),
    ("Mum's 60th birthday dinner at Cantinho do Avillez.", "mum 60th", MemoryType.LONG_TERM, ["family"], 95, False),
    ("Passed JLPT N4.", "jlpt n4", MemoryType.LONG_TERM, ["learning"], 60, False),
    ("Miso had a vet check-up: healthy, 4.2 kg.", "miso vet", MemoryType.LONG_TERM, ["pets"], 30, False),
    ("Booked a weekend in Gerês for the first week of April.",
     "geres weekend", MemoryType.WORKING, ["outdoors", "travel"], -130, False),
    ("Renew passport before the trip to Japan in June.",
     "passport", MemoryType.WORKING, ["travel", "todo"], -20, False),
]

CHATS = [
    ("Planning the Gerês weekend", [
        ("user", "Can you help me plan a weekend in Gerês? I want two moderate hikes."),
        ("assistant", "Sure. Since you like spring hikes there: **Saturday** the Trilho da Preguiça (9 km), "
                      "**Sunday** the Cascata do Arado loop (6 km). Book a place in Campo do Gerês."),
    ]),
    ("Japanese study routine", [
        ("user", "How should I prepare for N3 after passing N4?"),
        ("assistant", "Keep the Thursday tutor sessions, add 15 minutes of Anki a day, and read one NHK Easy "
                      "article each morning."),
    ]),
]

NOTES = {
    "trips/kyoto.md": "# Kyoto, May\n\n## Day 1\nFushimi Inari at 7am before the crowds. Ana loved the fox shrines.\n\n"
                      "## Day 2\nPhilosopher's Path, then matcha at Ippodo. Buy the hojicha again.\n",
    "work/redesign.md": "# Patient app redesign\n\n## Goals\n- Halve the taps to book an appointment.\n"
                        "- Readable at 200% text size.\n\n## Open questions\nDo nurses need an offline mode?\n",
    "recipes.txt": "Miso soup for two: 600 ml dashi, 2 tbsp white miso, tofu, wakame, spring onion.\n\n"
                   "Risotto: arborio, mushrooms, parmesan, white wine; stir for 18 minutes.\n",
}


def seed(mem: Memory, notes_dir: Path | None = None) -> dict:
    """Fill an empty vault; returns ids a smoke run or a test may want."""
    ids: dict = {}
    for text, key, mtype, tags, days_ago, pinned in FACTS:
        event = NOW - timedelta(days=days_ago) if days_ago is not None else None
        result = mem.add(text, key=key, memory_type=mtype.value, tags=tags, pinned=pinned, event_time=event,
                         source="conversation" if days_ago is None else "capture")
        ids[key] = result.id
    # A contradiction MemReader would flag: the pinned home against a newer statement.
    newer = mem.add("Lives in Matosinhos, near the beach.", key="home", memory_type=MemoryType.USER.value,
                    tags=["home"], source="conversation")
    mem.link(newer.id, ids["home"], Relation.CONFLICT)
    ids["conflict"] = newer.id
    sessions = mem.sessions
    for title, turns in CHATS:
        session = sessions.create(title)
        for role, content in turns:
            sessions.append(session.id, role, content)
        ids.setdefault("sessions", []).append(session.id)
    if notes_dir is not None:
        for name, body in NOTES.items():
            path = notes_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
    return ids
