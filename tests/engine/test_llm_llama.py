"""The llama.cpp backend on the real embedded model (SmolLM2-135M-Instruct Q4_1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")

from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.cube import MemoryType  # noqa: E402
from memdesk.engine.errors import ModelError  # noqa: E402
from memdesk.engine.llm.base import ChatTurn, GenerationConfig, GenerationStats  # noqa: E402
from memdesk.engine.llm.registry import embedded_model_path, load_model  # noqa: E402
from memdesk.engine.resources import text as resource_text  # noqa: E402


@pytest.fixture
def model(llama_model):
    llama_model.reset()
    return llama_model


def test_embedded_model_is_found_and_fingerprinted(model):
    assert embedded_model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model.info.backend == "llama.cpp" and len(model.info.fingerprint) == 24
    assert model.info.n_ctx == 2048


def test_greedy_generation_is_reproducible_and_reports_stats(model):
    """The second run of a prompt used to reuse the first run's cached prompt and evaluate only
    its last token, in a batch of one: other kernels, logits a few bits off, and at a near-tie
    another greedy token. For this prompt on this model that changed the reply every time."""
    prompt = model.render_chat([ChatTurn("user", "Name three colours.")])
    assert "<|im_start|>user" in prompt and prompt.rstrip().endswith("assistant")
    stats = GenerationStats()
    first = "".join(model.stream(prompt, GenerationConfig(max_tokens=24), stats))
    second = "".join(model.stream(prompt, GenerationConfig(max_tokens=24)))
    other = model.render_chat([ChatTurn("user", "Name three colours of the sea.")])  # shares most of the prompt
    "".join(model.stream(other, GenerationConfig(max_tokens=8)))
    third = "".join(model.stream(prompt, GenerationConfig(max_tokens=24)))
    assert first and first == second == third
    assert stats.prompt_tokens == len(model.tokenize(prompt)) and 0 < stats.completion_tokens <= 24
    assert 0 < stats.prefill_ms <= stats.total_ms


def test_grammar_forces_valid_memory_json(model):
    prompt = model.render_chat([ChatTurn("user", "My sister Ana lives in Lisbon. List facts as JSON.")])
    grammar = resource_text("grammars/memories.gbnf")
    raw = "".join(model.stream(prompt, GenerationConfig(max_tokens=200, grammar=grammar)))
    if raw.rstrip().endswith("]"):  # the grammar cannot force the model to finish within max_tokens
        items = json.loads(raw)
        assert isinstance(items, list)
        for item in items:
            assert set(item) == {"key", "memory", "type", "confidence"}
    else:
        assert raw.lstrip().startswith("[")


def test_missing_and_corrupt_model_files_are_named(tmp_path):
    with pytest.raises(ModelError, match=str(tmp_path / "nope.gguf")):
        load_model(tmp_path / "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all" * 100)
    with pytest.raises(ModelError, match="not a GGUF"):
        load_model(bad)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(embedded_model_path().read_bytes()[:4096])
    with pytest.raises(ModelError, match=str(truncated)):
        load_model(truncated)


def test_real_model_turn_is_given_the_fact_from_an_earlier_session(mem, model):
    fact = mem.add("User's sister Ana lives in Lisbon.", memory_type=MemoryType.USER, key="sister ana / location").id
    mem.wait_indexed()
    chat = Chat(mem, model, ChatConfig(max_reply_tokens=40, extract=False))
    response = chat.send("Where does my sister live?")
    reply = response.text()
    assert reply.strip()
    assert fact in response.result.memory_ids
    assert "Ana lives in Lisbon" in response.result.prompt
    assert response.result.stats.prompt_tokens == len(model.tokenize(response.result.prompt))


def test_model_path_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMDESK_MODEL", str(tmp_path / "elsewhere.gguf"))
    with pytest.raises(ModelError, match="elsewhere.gguf"):
        load_model()
    assert Path(embedded_model_path()).exists()


def test_restored_prefix_state_gives_the_same_greedy_reply_token_for_token(model):
    from memdesk.engine.llm.base import StatefulModel

    assert isinstance(model, StatefulModel)
    prefix = model.render_chat([ChatTurn("system", "You are helpful. The user's sister Ana lives in Porto. "
                                                   "The user likes hiking and short answers.")],
                               add_generation_prompt=False)
    prompt = prefix + model.render_chat([ChatTurn("user", "Where does my sister live?")])
    prefix_tokens = model.tokenize(prefix)
    assert model.tokenize(prompt)[: len(prefix_tokens)] == prefix_tokens
    config = GenerationConfig(max_tokens=20)
    state = model.save_state(prefix_tokens)
    model.reset()  # from scratch
    cold_stats = GenerationStats()
    cold = "".join(model.stream(prompt, config, cold_stats))
    model.load_state(state, prefix_tokens)
    warm_stats = GenerationStats()
    warm = "".join(model.stream(prompt, config, warm_stats))
    assert warm == cold and cold
    # KV only: ~23 KB a token for SmolLM2 (30 layers x K,V x 3 heads x 64 x fp16); the logits
    # a whole-context state would add are 49,152 floats = 196 KB a token.
    assert len(state) < 50 * 1024 * len(prefix_tokens)


def test_a_chosen_model_path_is_validated_without_loading(tmp_path):
    from memdesk.engine.errors import ModelError
    from memdesk.engine.llm.registry import check_model_path, embedded_model_path

    assert check_model_path(embedded_model_path()) == "llama.cpp"
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match="not a GGUF"):
        check_model_path(tmp_path / "notes.txt")
    with pytest.raises(ModelError, match="not an MLX model folder"):
        check_model_path(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        check_model_path(tmp_path / "missing.gguf")


def test_the_last_text_tokenized_is_remembered_and_never_shared(llama_model):
    """A turn counts its prompt, then streams it: the second tokenization is a copy of the first."""
    first = llama_model.tokenize("Where does my sister Ana live?")
    first.append(-1)  # a caller changing its list must not change what the next one gets
    again = llama_model.tokenize("Where does my sister Ana live?")
    assert again == first[:-1] and -1 not in again
    assert llama_model.tokenize("Where does my sister Ana live?", special=False) == again
    assert llama_model.tokenize("Another text") != again
