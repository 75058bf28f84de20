"""Adapter registry (one active per base, rollback, refusal for another base) and the gate's logic."""
from __future__ import annotations

import pytest

from memdesk.engine.errors import InvalidInputError, ModelError, NotFoundError
from memdesk.engine.parametric.gate import GateConfig, evaluate
from memdesk.engine.parametric.registry import AdapterRegistry
from memdesk.engine.parametric.types import SftExample


def stored(registry, tmp_path, base="base-a", name="a"):
    adapter = registry.create(base_fingerprint=base, base_name="SmolLM2", trainer="torch", data_snapshot="s" * 64,
                              config={"rank": 8})
    native = tmp_path / f"native-{adapter.id}"
    native.mkdir()
    (native / "adapter_config.json").write_text('{"r": 8}')
    gguf = tmp_path / f"{name}.gguf"
    gguf.write_bytes(b"GGUF" + name.encode() * 10)
    registry.store_weights(adapter.id, native_dir=native, gguf_path=gguf)
    return registry.set_status(adapter.id, "candidate", metrics={"gate": {"passed": True}})


def test_one_active_adapter_per_base_and_rollback(kw_mem, tmp_path):
    registry = AdapterRegistry(kw_mem.db)
    first, second = stored(registry, tmp_path, name="one"), stored(registry, tmp_path, name="two")
    other_base = stored(registry, tmp_path, base="base-b", name="three")
    registry.activate(first.id, "base-a")
    registry.activate(other_base.id, "base-b")
    registry.activate(second.id, "base-a")
    assert registry.active("base-a").id == second.id and registry.get(first.id).status == "retired"
    assert registry.active("base-b").id == other_base.id  # another base is untouched
    assert registry.rollback("base-a").id == first.id  # the previous one, in one action
    assert registry.get(second.id).status == "retired"
    assert registry.rollback("base-a") is None  # nothing before it: back to the plain base model
    assert registry.active("base-a") is None
    with pytest.raises(InvalidInputError, match="nothing to roll back"):
        registry.rollback("base-a")


def test_an_adapter_for_another_base_is_refused_clearly(kw_mem, tmp_path):
    registry = AdapterRegistry(kw_mem.db)
    adapter = stored(registry, tmp_path)
    with pytest.raises(ModelError, match="was trained for SmolLM2"):
        registry.activate(adapter.id, "some-other-model")
    training = registry.create(base_fingerprint="base-a", base_name="x", trainer="torch", data_snapshot="s",
                               config={})
    with pytest.raises(InvalidInputError, match="is training"):
        registry.activate(training.id, "base-a")
    with pytest.raises(NotFoundError):
        registry.get("ffffffff")


def test_weights_live_in_the_vault_and_are_materialised_briefly(kw_mem, tmp_path):
    registry = AdapterRegistry(kw_mem.db)
    adapter = stored(registry, tmp_path, name="secret")
    with registry.materialise(adapter.id) as path:
        assert path.read_bytes() == b"GGUF" + b"secret" * 10
        folder = path.parent
    assert not folder.exists()
    with registry.materialise(adapter.id, "native") as native:
        assert (native / "adapter_config.json").read_text() == '{"r": 8}'
    for file in kw_mem.paths.root.rglob("*"):
        if file.is_file():
            assert b"secretsecret" not in file.read_bytes()


class FakeScorer:
    def __init__(self, logprob, ppl):
        self.logprob, self.ppl = logprob, ppl

    def score(self, prompt, continuation, system=""):
        return self.logprob * 4, 4

    def perplexity(self, text):
        return self.ppl


def test_the_gate_needs_better_adherence_and_no_big_perplexity_rise():
    held_out = [SftExample("hi", "hello — Cheers, MemDesk")]
    passed = evaluate(FakeScorer(-2.0, 10.0), FakeScorer(-1.0, 10.5), held_out)
    assert passed.passed and passed.adherence_gain == pytest.approx(1.0)
    worse = evaluate(FakeScorer(-2.0, 10.0), FakeScorer(-2.5, 10.0), held_out)
    assert not worse.passed and "did not improve" in worse.reasons[0]
    harmful = evaluate(FakeScorer(-2.0, 10.0), FakeScorer(-1.0, 12.0), held_out)
    assert not harmful.passed and "perplexity rose 20.0%" in harmful.reasons[0]
    strict = evaluate(FakeScorer(-2.0, 10.0), FakeScorer(-1.9, 10.0), held_out, GateConfig(min_adherence_gain=0.5))
    assert not strict.passed
    assert not evaluate(FakeScorer(-2.0, 10.0), FakeScorer(-1.0, 10.0), []).passed  # nothing held out
