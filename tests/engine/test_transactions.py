"""One user action, one transaction: after_commit, Memory.transaction, and a chat turn's writes."""
from __future__ import annotations

import pytest

from memdesk.engine.chat.turn import Chat, ChatConfig
from memdesk.engine.cube import Filters
from memdesk.engine.llm.fake import FakeModel


def test_after_commit_waits_for_the_outermost_commit_and_is_dropped_on_rollback(kw_mem):
    db, ran = kw_mem.db, []
    db.after_commit(lambda: ran.append("outside"))  # no transaction open: at once
    assert ran == ["outside"]
    with db.write():
        with db.write():  # nested: a savepoint
            db.after_commit(lambda: ran.append("nested"))
        assert ran == ["outside"]
    assert ran == ["outside", "nested"]
    with pytest.raises(RuntimeError), db.write():
        db.after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("the action failed")
    with db.write():
        pass
    assert ran == ["outside", "nested"]


def test_a_memory_transaction_commits_together_and_hooks_run_after_it(kw_mem):
    seen: list[int] = []
    kw_mem.on_added.append(lambda items: seen.append(kw_mem.count(Filters())))
    with kw_mem.transaction():
        kw_mem.add("The user's sister Ana lives in Porto.")
        kw_mem.add("The user runs on Sundays.")
        assert seen == []  # nothing triggered while the action is half done
    assert seen == [2, 2]
    with pytest.raises(ValueError), kw_mem.transaction():
        kw_mem.add("A memory that goes with the failed action.")
        raise ValueError("failed")
    assert kw_mem.count(Filters()) == 2 and seen == [2, 2]


class CountingModel(FakeModel):
    def __init__(self) -> None:
        super().__init__()
        self.tokenized = 0

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        self.tokenized += 1
        return super().tokenize(text, special=special)


def test_a_turn_tokenizes_its_prompt_once_and_writes_in_two_transactions(kw_mem):
    kw_mem.add("The user's sister Ana lives in Porto.")
    model = CountingModel()
    chat = Chat(kw_mem, model, ChatConfig(extract=False, profile="full"))
    model.tokenized = 0  # what setting up the chat counted is not the turn's
    commits: list[object] = []
    kw_mem.db.on_commit.append(commits.append)
    response = chat.send("Plan a weekend visit to my sister.")
    # The whole prompt fits: counted once, no piece-by-piece estimate (the backend streams next).
    assert model.tokenized == 1
    assert response.text() == "OK."
    # The new chat with its first message, then the reply with both turns and the usage counts.
    assert len(commits) == 2
    stored = kw_mem.sessions.messages(response.result.session_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert response.result.memories and response.result.memories[0].memory == "The user's sister Ana lives in Porto."


def test_a_prompt_over_budget_is_trimmed_by_exact_count(kw_mem):
    for i in range(40):
        kw_mem.add(f"The user's sister Ana visited Porto museum number {i} and liked the tiles there.")
    model = CountingModel()
    model.info = type(model.info)(**{**model.info.__dict__, "n_ctx": 330})
    chat = Chat(kw_mem, model, ChatConfig(extract=False, profile="full", memory_k=40, max_reply_tokens=64))
    model.tokenized = 0
    response = chat.send("What did my sister Ana think of the Porto museums?")
    response.text()
    assert model.tokenized > 1  # it did not fit whole: the pieces were estimated, then counted
    assert len(model.tokenize(response.result.prompt)) <= 330 - 64
