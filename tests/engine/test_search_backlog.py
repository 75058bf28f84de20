"""A search never waits for the embedding backlog: what has no vector yet is found by keywords."""
from __future__ import annotations

from memdesk.engine.api import Memory
from tests.conftest import FAST_KDF


def test_search_answers_from_keywords_while_the_backlog_waits(data_dir, embedder):
    with Memory.open(data_dir, embedder=embedder, background=False, kdf=FAST_KDF) as mem:
        for i in range(40):
            mem.add(f"filler note number {i} about the weather")
        target = mem.add("I play the saxophone in a jazz band").id
        assert mem.embedding_progress() == (0, 41)

        hits = mem.search("saxophone")
        assert hits[0].item.id == target
        assert mem.embedding_progress() == (0, 41)  # nothing was embedded to answer

        mem.indexer.drain()
        assert mem.embedding_progress() == (41, 41)
        assert mem.search("which instrument do I play?")[0].item.id == target  # by meaning, now
