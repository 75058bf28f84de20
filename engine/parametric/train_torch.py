"""LoRA training with torch + peft on the HF-format export of the chat model.

One code path for every device: CUDA (bf16), Apple's MPS, and the CPU fallback (fp32,
deterministic for a given seed). The loss is computed on the reply tokens only; DPO
triples, when the dataset has them, add a DPO term whose reference model is the same
network with the adapter switched off.

A run is resumable: every `checkpoint_every` steps (and when it is cancelled or runs out
of time) `out_dir/checkpoint` receives the adapter weights, the optimizer state, the step
and the RNG state, so `train(..., resume_from=out_dir/checkpoint)` ends with the same
weights as an uninterrupted run. A finished run writes `out_dir/adapter` (peft format)
and discards the checkpoint.

`TorchScorer` loads the model (with or without an adapter) once and scores
continuations and perplexity for the evaluation gate.

torch, transformers and peft are imported inside functions: importing this module is cheap.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memdesk.engine.errors import InvalidInputError, ModelError
from memdesk.engine.parametric.render import prompt_text, reply_text
from memdesk.engine.parametric.types import Dataset, Progress, ShouldStop, TrainConfig, TrainResult, check_resume

ADAPTER_MANIFEST = "memdesk_adapter.json"  # written next to the peft files: what the adapter was trained on
_STATE_FILE = "trainer_state.pt"
_IGNORE = -100  # label of a token that carries no loss (prompt and padding)


# ----------------------------------------------------------------------------- set-up


def _pick_device(requested: str) -> tuple[Any, str]:
    import torch

    if requested not in ("auto", "cpu", "cuda", "mps"):
        raise InvalidInputError(f"Unknown training device {requested!r}; use auto, cpu, cuda or mps.")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ModelError('Training on CUDA was asked for, but torch sees no CUDA GPU; use device "auto" or "cpu".')
        index = torch.cuda.current_device()
        return torch.device("cuda", index), f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if requested == "mps":
        if not has_mps:
            raise ModelError('Training on MPS was asked for, but this torch has no Metal support; use "auto" or "cpu".')
        return torch.device("mps"), "mps"
    return torch.device("cpu"), "cpu"


def _dtype_for(device: Any) -> Any:
    """bf16 where the GPU supports it; fp32 elsewhere (fp16 without loss scaling underflows
    LoRA gradients, and CPU matmuls gain little from half precision)."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@contextmanager
def _cpu_threads(device: Any, threads: int | None = None) -> Iterator[None]:
    """Leave a core to the app: torch grabs every core by default, and two busy processes
    oversubscribing two cores run ten to twenty times slower than one thread each."""
    import torch

    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) - 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _read_hf_config(hf_dir: Path) -> dict:
    path = hf_dir / "config.json"
    if not path.is_file():
        raise ModelError(f"{hf_dir} is not a Hugging Face model folder (no config.json); export the chat model "
                         "with `memdesk model export-mlx FOLDER` first.")
    return json.loads(path.read_text(encoding="utf-8"))


def _count_parameters(hf_dir: Path) -> int:
    """Parameters in the folder's safetensors files, read from their headers (no torch needed)."""
    total = 0
    for file in sorted(hf_dir.glob("*.safetensors")):
        with file.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info["shape"])
    if not total:
        raise ModelError(f"{hf_dir} holds no .safetensors weights; export the chat model again.")
    return total


def estimate_memory_gb(hf_dir: Path, config: TrainConfig, bytes_per_param: int = 4, dpo: bool = False) -> float:
    """A rough upper bound of what a run needs: the weights, the adapter with its gradients
    and Adam moments, and the activations kept for the backward pass of one batch."""
    hf = _read_hf_config(hf_dir)
    params = _count_parameters(hf_dir)
    hidden = int(hf.get("hidden_size", 0))
    layers = int(hf.get("num_hidden_layers", 0))
    inter = int(hf.get("intermediate_size", 4 * hidden))
    vocab = int(hf.get("vocab_size", 0))
    # LoRA on every targeted square-ish projection: A (r x in) + B (out x r) per module per layer.
    lora = layers * len(config.target_modules) * 2 * config.rank * max(hidden, 1)
    # Per token per layer: norms, q/k/v, attention output, MLP gate/up/activation (about 6h + 4i
    # values kept for backward), plus fp32 logits, their softmax and gradient over the vocabulary.
    tokens = config.batch_size * config.max_seq_len * (3 if dpo else 1)  # DPO adds chosen + rejected
    activations = tokens * (layers * (6 * hidden + 4 * inter) * bytes_per_param + 3 * vocab * 4)
    total = params * bytes_per_param + lora * 4 * 4 + activations
    return total / 1024**3


def _load_model(hf_dir: Path, device: Any, dtype: Any):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(f"LoRA training needs torch, transformers and peft ({exc}): "
                         "`pip install torch transformers peft`.") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(hf_dir), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot load the model folder {hf_dir}: {exc}. Export the chat model again.") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


# ----------------------------------------------------------------------------- data


def _encode(tokenizer: Any, prompt: str, reply: str, system: str, max_len: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels (-100 on the prompt); prompt and reply are tokenized apart so the
    boundary is exactly where generation starts. None when truncation leaves no reply token."""
    head = tokenizer(prompt_text(tokenizer, prompt, system), add_special_tokens=False)["input_ids"]
    tail = tokenizer(reply_text(tokenizer, reply), add_special_tokens=False)["input_ids"]
    ids = (head + tail)[:max_len]
    labels = ([_IGNORE] * len(head) + tail)[:max_len]
    return (ids, labels) if any(t != _IGNORE for t in labels[1:]) else None


def _batch(rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device: Any):
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), _IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def _indices(step: int, batch: int, count: int, seed: int) -> list[int]:
    """Examples of a step: a shuffled pass over the examples per epoch, the order of epoch e a
    pure function of (seed, e), so a resumed run sees exactly the batches it would have."""
    import torch

    out = []
    for k in range(step * batch, (step + 1) * batch):
        epoch, pos = divmod(k, count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out.append(int(order[pos]))
    return out


def _token_logprobs(model: Any, ids: Any, mask: Any, labels: Any):
    """Log-probabilities of the labelled tokens and the row each belongs to.

    The vocabulary projection runs only on positions that carry a label: for a 135M model
    with a 49k vocabulary that is a fifth of the work, and the prompt never needs it."""
    import torch

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(causal, causal.base_model_prefix)
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != _IGNORE
    logits = causal.get_output_embeddings()(hidden[keep]).float()
    picked = target[keep]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, picked[:, None])[:, 0]
    rows = keep.nonzero()[:, 0]
    return logp, rows


def _sequence_logprob(model: Any, batch: Any, n_rows: int):
    import torch

    logp, rows = _token_logprobs(model, *batch)
    return torch.zeros(n_rows, dtype=logp.dtype, device=logp.device).index_add(0, rows, logp)


# ----------------------------------------------------------------------------- training


def _save_checkpoint(model: Any, optimizer: Any, step: int, losses: list[float], config: TrainConfig,
                     dataset: Dataset, folder: Path, manifest: dict) -> Path:
    """Write the checkpoint beside its final place and rename it in, so a crash mid-write
    leaves the previous checkpoint intact."""
    import torch

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_adapter(model, tmp / "adapter", manifest)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "losses": list(losses),
                "config": config.to_dict(), "snapshot": dataset.snapshot,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
               tmp / _STATE_FILE)
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _save_adapter(model: Any, folder: Path, manifest: dict) -> None:
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # peft's model-card stub says nothing useful
    (folder / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _manifest(hf_dir: Path, hf: dict, config: TrainConfig, dataset: Dataset) -> dict:
    export = hf_dir / "memdesk_export.json"
    source = json.loads(export.read_text(encoding="utf-8")) if export.is_file() else {}
    return {"trainer": "torch", "model_type": hf.get("model_type"),
            "base_fingerprint": source.get("source_fingerprint"), "base_source": source.get("source"),
            "num_hidden_layers": hf.get("num_hidden_layers"), "hidden_size": hf.get("hidden_size"),
            "num_attention_heads": hf.get("num_attention_heads"),
            "num_key_value_heads": hf.get("num_key_value_heads", hf.get("num_attention_heads")),
            "data_snapshot": dataset.snapshot, "config": config.to_dict()}


def train(hf_dir: Path, dataset: Dataset, out_dir: Path, config: TrainConfig = TrainConfig(), *,
          progress: Progress | None = None, should_stop: ShouldStop | None = None,
          resume_from: Path | None = None, threads: int | None = None) -> TrainResult:
    """Train a LoRA adapter on `dataset` and write it to `out_dir/adapter` (peft format).

    `threads` caps torch's CPU threads for the run (default: all cores but one, so the app
    stays responsive); the previous setting is restored afterwards. Raises
    InvalidInputError for an empty dataset, a run that would exceed `config.max_memory_gb`
    or a checkpoint from another run; ModelError when the model cannot be loaded.
    """
    import torch

    started = time.monotonic()
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not dataset.sft and not dataset.dpo:
        raise InvalidInputError("The dataset has no examples to train on; collect preferences or feedback first.")
    if config.steps < 1 or config.batch_size < 1 or config.rank < 1 or config.max_seq_len < 8:
        raise InvalidInputError("steps, batch_size and rank must be at least 1 and max_seq_len at least 8.")
    hf = _read_hf_config(hf_dir)
    device, device_name = _pick_device(config.device)
    dtype = _dtype_for(device)
    need = estimate_memory_gb(hf_dir, config, torch.finfo(dtype).bits // 8, bool(dataset.dpo))
    if need > config.max_memory_gb:
        raise InvalidInputError(f"Training this model needs about {need:.1f} GB of memory, more than the limit of "
                                f"{config.max_memory_gb:.1f} GB. Lower batch_size or max_seq_len, or raise the limit.")
    state = None
    if resume_from is not None:
        state_file = Path(resume_from) / _STATE_FILE
        if not state_file.is_file():
            raise InvalidInputError(f"{resume_from} is not a training checkpoint (no {_STATE_FILE}); start a new run.")
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        check_resume(state, config, dataset)

    with _cpu_threads(device, threads):
        return _run(hf_dir, hf, dataset, out_dir, config, device, device_name, dtype, state, resume_from,
                    progress, should_stop, started)


def _run(hf_dir: Path, hf: dict, dataset: Dataset, out_dir: Path, config: TrainConfig, device: Any,
         device_name: str, dtype: Any, state: dict | None, resume_from: Path | None,
         progress: Progress | None, should_stop: ShouldStop | None, started: float) -> TrainResult:
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    torch.manual_seed(config.seed)  # LoRA A initialisation and dropout masks
    base, tokenizer = _load_model(hf_dir, device, dtype)
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    try:
        model = get_peft_model(base, lora)
    except ValueError as exc:  # peft: "Target modules ... not found in the base model"
        raise InvalidInputError(f"Cannot put LoRA on {list(config.target_modules)}: {exc}") from exc

    def encode(e: Any, reply: str):
        return _encode(tokenizer, e.prompt, reply, e.system, config.max_seq_len)

    sft = [r for r in (encode(e, e.reply) for e in dataset.sft) if r is not None]
    pairs = [(c, r) for c, r in ((encode(e, e.chosen), encode(e, e.rejected)) for e in dataset.dpo)
             if c is not None and r is not None]
    if not sft and not pairs:
        raise InvalidInputError(f"Every example is longer than max_seq_len={config.max_seq_len} tokens before its "
                                "reply starts; raise max_seq_len.")

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    step, losses = 0, []
    if state is not None:
        from safetensors.torch import load_file

        assert resume_from is not None  # the state was read from that checkpoint
        set_peft_model_state_dict(model, load_file(str(Path(resume_from) / "adapter" / "adapter_model.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    manifest = _manifest(hf_dir, hf, config, dataset)
    checkpoint = out_dir / "checkpoint"
    pad = tokenizer.pad_token_id
    model.train()
    stopped = False
    while step < config.steps:
        if (should_stop is not None and should_stop()) or time.monotonic() - started > config.max_seconds:
            stopped = True
            break
        loss = torch.zeros((), device=device)
        if sft:
            batch = _batch([sft[i] for i in _indices(step, config.batch_size, len(sft), config.seed)], pad, device)
            logp, _ = _token_logprobs(model, *batch)
            loss = loss - logp.mean()
        if pairs:
            chosen = [pairs[i] for i in _indices(step, config.batch_size, len(pairs), config.seed + 1)]
            loss = loss + _dpo_loss(model, chosen, pad, device, config.dpo_beta)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step / config.steps, f"step {step}/{config.steps} loss {losses[-1]:.3f}")
        if step % max(1, config.checkpoint_every) == 0 and step < config.steps:
            _save_checkpoint(model, optimizer, step, losses, config, dataset, checkpoint, manifest)

    if stopped:
        _save_checkpoint(model, optimizer, step, losses, config, dataset, checkpoint, manifest)
        adapter_dir = checkpoint / "adapter"
    else:
        adapter_dir = out_dir / "adapter"
        tmp = out_dir / "adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _save_adapter(model, tmp, manifest)
        shutil.rmtree(adapter_dir, ignore_errors=True)
        os.replace(tmp, adapter_dir)
        shutil.rmtree(checkpoint, ignore_errors=True)  # a finished run needs no checkpoint
    return TrainResult(adapter_dir=adapter_dir, trainer="torch", device=device_name, steps=step,
                       seconds=time.monotonic() - started, examples=len(sft) + len(pairs), losses=losses,
                       stopped_early=stopped)


def _dpo_loss(model: Any, pairs: list, pad: int, device: Any, beta: float):
    """Direct preference optimisation (Rafailov et al. 2023) against the frozen base: the
    adapter-disabled model is the reference, so no second copy of the weights is needed."""
    import torch
    import torch.nn.functional as F

    rows = [c for c, _ in pairs] + [r for _, r in pairs]
    batch = _batch(rows, pad, device)
    n = len(pairs)
    policy = _sequence_logprob(model, batch, 2 * n)
    with torch.no_grad(), model.disable_adapter():
        reference = _sequence_logprob(model, batch, 2 * n)
    margin = (policy[:n] - reference[:n]) - (policy[n:] - reference[n:])
    return -F.logsigmoid(beta * margin).mean()


# ----------------------------------------------------------------------------- scoring


class TorchScorer:
    """One loaded model (plus an optional peft adapter) for the gate's measurements."""

    def __init__(self, hf_dir: Path, adapter_dir: Path | None = None, *, device: str = "auto",
                 threads: int | None = None):
        import torch

        self._device, self.device_name = _pick_device(device)
        self._threads = threads
        hf_dir = Path(hf_dir)
        _read_hf_config(hf_dir)
        model, self.tokenizer = _load_model(hf_dir, self._device, _dtype_for(self._device))
        if adapter_dir is not None:
            from peft import PeftModel

            if not (Path(adapter_dir) / "adapter_config.json").is_file():
                raise ModelError(f"{adapter_dir} is not a peft adapter folder (no adapter_config.json).")
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        self.model = model.eval()
        self._torch = torch

    def score(self, prompt: str, continuation: str, system: str = "") -> tuple[float, int]:
        """Sum of log-probabilities of `continuation` (closed as a reply, as in training: with the
        end-of-turn token) after the chat-template prompt, and its token count."""
        row = _encode(self.tokenizer, prompt, continuation, system, 1 << 30)
        if row is None:
            return 0.0, 0
        with self._torch.no_grad(), _cpu_threads(self._device, self._threads):
            logp, _ = _token_logprobs(self.model, *_batch([row], self.tokenizer.pad_token_id, self._device))
        return float(logp.sum()), int(logp.numel())

    def perplexity(self, text: str, window: int = 512) -> float:
        """exp(mean negative log-likelihood) of plain `text`, in non-overlapping windows."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        total, count = 0.0, 0
        with self._torch.no_grad(), _cpu_threads(self._device, self._threads):
            for start in range(0, len(ids), window):
                chunk = ids[start:start + window]
                if len(chunk) < 2:
                    continue
                logp, _ = _token_logprobs(self.model, *_batch([(chunk, chunk)], 0, self._device))
                total -= float(logp.sum())
                count += int(logp.numel())
        if not count:
            raise InvalidInputError("The perplexity text is too short (it needs at least two tokens).")
        return math.exp(total / count)

    def generate(self, prompt: str, max_new_tokens: int = 64, system: str = "") -> str:
        """Greedy reply to `prompt` in the chat template (for adherence checks)."""
        tok = self.tokenizer
        ids = tok(prompt_text(tok, prompt, system), add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = ids.to(self._device)
        with self._torch.no_grad(), _cpu_threads(self._device, self._threads):
            out = self.model.generate(input_ids=ids, attention_mask=self._torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def close(self) -> None:
        self.model = None


def score(hf_dir: Path, adapter_dir: Path | None, prompt: str, continuation: str,
          system: str = "") -> tuple[float, int]:
    scorer = TorchScorer(hf_dir, adapter_dir)
    try:
        return scorer.score(prompt, continuation, system)
    finally:
        scorer.close()


def perplexity(hf_dir: Path, adapter_dir: Path | None, text: str) -> float:
    scorer = TorchScorer(hf_dir, adapter_dir)
    try:
        return scorer.perplexity(text)
    finally:
        scorer.close()
