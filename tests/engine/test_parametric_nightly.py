"""The nightly adapter job end to end on the embedded model: feedback -> dataset -> LoRA ->
GGUF -> gate -> registry -> the chat model loads it; skip, interrupt and resume."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("peft")

from memdesk.engine.llm.registry import embedded_model_path  # noqa: E402
from memdesk.engine.parametric.loading import base_fingerprint, load_chat_model  # noqa: E402
from memdesk.engine.parametric.nightly import AdapterJob, NightlyConfig  # noqa: E402
from memdesk.engine.parametric.registry import AdapterRegistry  # noqa: E402
from memdesk.engine.parametric.types import TrainConfig  # noqa: E402
from memdesk.engine.vault.feedback import Feedback  # noqa: E402
from memdesk.engine.vault.sessions import Sessions  # noqa: E402

pytestmark = pytest.mark.slow

TURNS = [("What should I cook tonight?", "Try a simple vegetable curry with rice."),
         ("How do I stay focused at work?", "Work in short blocks and take breaks."),
         ("Any tips for a rainy weekend?", "Read a book, bake bread, or visit a museum."),
         ("How can I drink more water?", "Keep a bottle on your desk and refill it."),
         ("What is a good morning routine?", "Wake up at the same time and stretch."),
         ("How do I start running?", "Begin with short, easy runs three times a week.")]
CONFIG = NightlyConfig(train=TrainConfig(steps=4, rank=4, batch_size=2, max_seq_len=128, learning_rate=1e-3),
                       min_examples=3)


def add_feedback(mem, turns):
    sessions, feedback = Sessions(mem.db), Feedback(mem.db)
    for prompt, reply in turns:
        session = sessions.create(prompt)
        sessions.append(session.id, "user", prompt)
        answer = sessions.append(session.id, "assistant", reply)
        feedback.edit(answer.id, f"{reply}\n\n— Cheers, MemDesk")


@pytest.fixture
def job_for(embedded_hf, tmp_path):
    def make(mem, config=CONFIG):
        cache = tmp_path / "models"
        cache.mkdir(exist_ok=True)
        _, fingerprint = base_fingerprint(embedded_model_path())
        link = cache / f"{fingerprint[:16]}-hf"
        if not link.exists():
            os.symlink(embedded_hf, link)  # the session's export stands in for the job's own cache
        return AdapterJob(mem, embedded_model_path(), cache_dir=cache, config=config)
    return make


def test_feedback_becomes_an_active_adapter_the_chat_model_loads(kw_mem, job_for):
    add_feedback(kw_mem, TURNS)
    steps = []
    report = job_for(kw_mem).run(None, progress=lambda f, m: steps.append(f))
    assert report.status == "activated", report.to_dict()
    adapter = report.adapter
    gate = report.metrics["gate"]
    assert gate["passed"] and gate["adherence_after"] > gate["adherence_before"] and gate["held_out"] >= 1
    assert adapter.has_gguf and adapter.has_native and adapter.size_bytes > 100_000
    assert steps == sorted(steps) and steps[-1] == 1.0
    model, loaded = load_chat_model(kw_mem, embedded_model_path(), n_ctx=1024)
    try:
        assert loaded is not None and loaded.id == adapter.id and model.info.adapter is not None
    finally:
        model.close()
    again = job_for(kw_mem).run(None)
    assert again.status == "skipped" and "no new" in again.reason  # the same data trains nothing new


def test_a_stopped_run_keeps_its_checkpoint_and_resumes(kw_mem, job_for):
    add_feedback(kw_mem, TURNS[:4])
    calls = {"n": 0}

    def stop_after_two_steps():
        calls["n"] += 1
        return calls["n"] > 2

    stopped = job_for(kw_mem).run(None, should_stop=stop_after_two_steps)
    assert stopped.status == "interrupted", stopped.to_dict()
    registry = AdapterRegistry(kw_mem.db)
    [training] = [a for a in registry.list() if a.status == "training"]
    assert registry.checkpoint(training.id, kw_mem.paths.root / "peek") is not None  # kept in the vault
    finished = job_for(kw_mem).run(None)
    assert finished.adapter.id == training.id and finished.status in ("activated", "rejected")
    assert finished.metrics["steps"] == CONFIG.train.steps


def test_without_the_training_component_the_job_waits_saying_what_it_needs(kw_mem, job_for, monkeypatch):
    import sys

    from memdesk.engine.parametric import nightly

    add_feedback(kw_mem, TURNS[:4])
    monkeypatch.setitem(sys.modules, "peft", None)  # an install without the train extra
    assert nightly.missing_training_packages("torch") == ["peft"]
    report = job_for(kw_mem).run(None)
    assert report.status == "skipped" and "memdesk[train]" in report.reason and "peft" in report.reason
    assert AdapterRegistry(kw_mem.db).list() == []  # nothing half-made


def test_too_little_feedback_is_skipped_with_a_reason(kw_mem, job_for):
    add_feedback(kw_mem, TURNS[:1])
    report = job_for(kw_mem).run(None)
    assert report.status == "skipped" and "at least 3" in report.reason
