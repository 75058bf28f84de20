"""LoRA training with mlx-lm on an MLX / Hugging Face model folder (Apple Silicon; Linux CPU
with ``mlx[cpu]``).

mlx-lm's own LoRA layers (`linear_to_lora_layers`) go on the attention projections named in
`TrainConfig.target_modules`, with scale alpha/rank as peft computes it, so an adapter means
the same whichever trainer made it. The loss is on the reply tokens only; the text is the one
`engine.parametric.render` builds, as for the torch trainer and the gate. DPO triples, when
the dataset has them, add a DPO term whose reference is the base model: with LoRA B at zero
the model *is* the base, so the reference log-probabilities are taken once before step 1.

A run is resumable: every `checkpoint_every` steps (and when it is cancelled or runs out of
time) `out_dir/checkpoint` receives the adapter (`adapter/`, loadable as it is), the optimizer
state and the step, so `train(..., resume_from=out_dir/checkpoint)` ends with the same weights
as an uninterrupted run. A finished run writes `out_dir/adapter` in mlx-lm's layout
(adapters.safetensors + adapter_config.json), which `mlx_lm.load(adapter_path=...)` and
`MlxModel(adapter_path=...)` load natively, and discards the checkpoint.

`MlxScorer` loads the model (with or without an adapter) once and scores continuations and
perplexity for the evaluation gate, exactly as `train_torch.TorchScorer` does.

mlx and mlx-lm are imported inside functions: importing this module is cheap.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memdesk.engine.errors import InvalidInputError, ModelError
from memdesk.engine.llm.base import fingerprint_folder
from memdesk.engine.parametric.render import prompt_text, reply_text
from memdesk.engine.parametric.types import Dataset, Progress, ShouldStop, TrainConfig, TrainResult, check_resume

ADAPTER_MANIFEST = "memdesk_adapter.json"  # same name as the torch trainer's: what the adapter was trained on
ADAPTER_WEIGHTS = "adapters.safetensors"  # mlx-lm's names, so its loader finds them
ADAPTER_CONFIG = "adapter_config.json"
_STATE_FILE = "trainer_state.json"
_OPTIMIZER_FILE = "optimizer.safetensors"
# Architectures whose forward is `model.model(...)` then the (tied) vocabulary projection: for
# them the projection runs only where a token is scored (a fifth of a 135M model's work).
_SPLIT_HEAD_TYPES = ("llama", "qwen2", "qwen3")
_INSTALL = ('install it with `pip install "memdesk[mlx]"` (or `pip install mlx-lm`, plus `"mlx[cpu]"` on Linux), '
            "or train with torch on a GGUF model")


# ----------------------------------------------------------------------------- set-up


def _import_mlx() -> Any:
    try:
        import mlx.core as mx
        import mlx_lm  # noqa: F401  (checked here so a missing mlx-lm gets the same clear message)
    except ImportError as exc:
        raise ModelError(f"MLX training needs mlx and mlx-lm ({exc}); {_INSTALL}.") from exc
    return mx


def _read_config(mlx_dir: Path) -> dict:
    if not mlx_dir.is_dir():
        raise ModelError(f"MLX model folder not found: {mlx_dir}. Export one with `memdesk model export-mlx OUT` "
                         "or pick the model folder again in settings.")
    config_file = mlx_dir / "config.json"
    if not config_file.is_file() or not any(mlx_dir.glob("*.safetensors")):
        raise ModelError(f"{mlx_dir} is not an MLX / Hugging Face model folder (it needs config.json and "
                         "*.safetensors). Export one with `memdesk model export-mlx OUT`.")
    try:
        return json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read {config_file}: {exc}. Export the model folder again.") from exc


def _load(mlx_dir: Path, adapter_dir: Path | None = None) -> tuple[Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder path must never turn into a hub download
    import mlx_lm

    try:
        model, tokenizer, *_ = mlx_lm.load(str(mlx_dir), adapter_path=str(adapter_dir) if adapter_dir else None)
        return model, tokenizer
    except Exception as exc:  # mlx_lm raises ValueError/FileNotFoundError/KeyError for bad folders
        raise ModelError(f"Cannot load the MLX model in {mlx_dir}"
                         f"{f' with the adapter {adapter_dir}' if adapter_dir else ''}: {type(exc).__name__}: "
                         f"{exc}. The folder may be incomplete or unsupported by mlx-lm; export it again.") from exc


def _pick_device(mx: Any, requested: str) -> tuple[Any, str]:
    if requested not in ("auto", "cpu", "cuda", "mps"):
        raise InvalidInputError(f"Unknown training device {requested!r}; use auto, cpu, cuda or mps.")
    if requested == "cpu":
        device = mx.cpu
    elif requested == "auto":
        device = mx.default_device()
    else:  # mlx names every accelerator (Metal, CUDA) "gpu"
        if not mx.is_available(mx.gpu):
            raise ModelError(f"Training on {requested} was asked for, but MLX sees no GPU here; "
                             "use device \"auto\" or \"cpu\".")
        device = mx.gpu
    return device, f"mlx {'gpu' if device == mx.gpu else 'cpu'}"


def estimate_memory_gb(mlx_dir: Path, config: TrainConfig, hf: dict | None = None) -> float:
    """Weights plus the activations a step keeps for its backward pass, rounded up: a guard
    against a batch that would swap a laptop, not a precise figure."""
    hf = hf if hf is not None else _read_config(mlx_dir)
    weights = sum(f.stat().st_size for f in mlx_dir.glob("*.safetensors"))
    hidden = int(hf.get("hidden_size", 0))
    inter = int(hf.get("intermediate_size", 4 * hidden))
    layers = int(hf.get("num_hidden_layers", 0))
    heads = int(hf.get("num_attention_heads", 1))
    vocab = int(hf.get("vocab_size", 0))
    tokens = config.batch_size * config.max_seq_len
    per_layer = 12 * hidden + 3 * inter + 2 * heads * config.max_seq_len  # values kept per token, 2 bytes each
    per_token = layers * per_layer * 2 + 3 * vocab * 4  # plus float32 logits, softmax and its gradient
    return (weights + tokens * per_token) / 1e9


def _lora_keys(model: Any, targets: Sequence[str]) -> list[str]:
    """mlx-lm's per-layer module paths ("self_attn.q_proj") for peft-style names ("q_proj")."""
    import mlx.nn as nn

    found = {name: module for name, module in model.layers[0].named_modules()
             if isinstance(module, (nn.Linear, nn.QuantizedLinear))}
    keys, missing = [], []
    for target in targets:
        hits = sorted(k for k in found if k == target or k.endswith("." + target))
        (keys.extend(hits) if hits else missing.append(target))
    if missing or not keys:
        names = sorted({k.rsplit(".", 1)[-1] for k in found})
        raise InvalidInputError(f"Cannot put LoRA on {missing or list(targets)}: the model's layers have no such "
                                f"projection. Choose among {', '.join(names)}.")
    return keys


def _adapter_config(model: Any, config: TrainConfig, keys: list[str]) -> dict:
    """mlx-lm's adapter_config.json; alpha and the peft names are kept for readers of the file."""
    return {"fine_tune_type": "lora", "num_layers": len(model.layers),
            "lora_parameters": {"rank": config.rank, "scale": config.alpha / config.rank,
                                "dropout": config.dropout, "keys": keys},
            "alpha": config.alpha, "target_modules": list(config.target_modules)}


def _manifest(mlx_dir: Path, hf: dict, config: TrainConfig, dataset: Dataset) -> dict:
    export = mlx_dir / "memdesk_export.json"
    source = json.loads(export.read_text(encoding="utf-8")) if export.is_file() else {}
    return {"trainer": "mlx", "model_type": hf.get("model_type"),
            "base_fingerprint": fingerprint_folder(mlx_dir),  # what MlxModel.info.fingerprint reports
            "base_source_fingerprint": source.get("source_fingerprint"), "base_source": source.get("source"),
            "num_hidden_layers": hf.get("num_hidden_layers"), "hidden_size": hf.get("hidden_size"),
            "num_attention_heads": hf.get("num_attention_heads"),
            "num_key_value_heads": hf.get("num_key_value_heads", hf.get("num_attention_heads")),
            "data_snapshot": dataset.snapshot, "config": config.to_dict()}


# ----------------------------------------------------------------------------- data


def _encode(tokenizer: Any, prompt: str, reply: str, system: str, max_len: int) -> tuple[list[int], int] | None:
    """Token ids and where the reply starts; prompt and reply are tokenized apart so the boundary
    is exactly where generation starts. None when truncation leaves no reply token."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)  # mlx-lm's TokenizerWrapper -> the HF tokenizer
    head = list(hf.encode(prompt_text(tokenizer, prompt, system), add_special_tokens=False))
    tail = list(hf.encode(reply_text(tokenizer, reply), add_special_tokens=False))
    ids = (head + tail)[:max_len]
    return (ids, len(head)) if len(ids) > max(len(head), 1) else None


def _batch(rows: Sequence[tuple[list[int], int]]) -> tuple[Any, Any, Any, Any]:
    """Inputs (right-padded), and for every scored token: its row, the position whose output
    predicts it, and the token itself."""
    import mlx.core as mx

    width = max(len(ids) for ids, _ in rows)
    inputs = np.zeros((len(rows), max(width - 1, 1)), np.int32)
    row_of, col_of, target = [], [], []
    for r, (ids, start) in enumerate(rows):
        inputs[r, : len(ids) - 1] = ids[:-1]
        for j in range(max(start, 1), len(ids)):
            row_of.append(r)
            col_of.append(j - 1)
            target.append(ids[j])
    return (mx.array(inputs), mx.array(np.asarray(row_of, np.int32)), mx.array(np.asarray(col_of, np.int32)),
            mx.array(np.asarray(target, np.int32)))


def _indices(step: int, batch: int, count: int, seed: int) -> list[int]:
    """Examples of a step: a shuffled pass over the examples per epoch, the order of epoch e a
    pure function of (seed, e), so a resumed run sees exactly the batches it would have."""
    out = []
    for k in range(step * batch, (step + 1) * batch):
        epoch, pos = divmod(k, count)
        out.append(int(np.random.default_rng(seed * 1_000_003 + epoch).permutation(count)[pos]))
    return out


def _token_logprobs(model: Any, inputs: Any, rows: Any, cols: Any, target: Any) -> Any:
    """Log-probabilities (float32) of the scored tokens, one per (row, col, target)."""
    import mlx.core as mx

    if getattr(model, "model_type", None) in _SPLIT_HEAD_TYPES and hasattr(model, "model"):
        hidden = model.model(inputs)[rows, cols]
        if model.args.tie_word_embeddings:
            logits = model.model.embed_tokens.as_linear(hidden)
        else:
            logits = model.lm_head(hidden)
    else:
        logits = model(inputs)[rows, cols]
    logits = logits.astype(mx.float32)
    picked = mx.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
    return picked - mx.logsumexp(logits, axis=-1)


def _sequence_logprobs(model: Any, batch: tuple, n_rows: int) -> Any:
    import mlx.core as mx

    inputs, rows, cols, target = batch
    return mx.zeros((n_rows,), mx.float32).at[rows].add(_token_logprobs(model, inputs, rows, cols, target))


# ----------------------------------------------------------------------------- checkpoints


def _save_adapter(mx: Any, model: Any, folder: Path, adapter_config: dict, manifest: dict) -> None:
    from mlx.utils import tree_flatten

    folder.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(folder / ADAPTER_WEIGHTS), dict(tree_flatten(model.trainable_parameters())))
    (folder / ADAPTER_CONFIG).write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
    (folder / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _save_checkpoint(mx: Any, model: Any, optimizer: Any, state: dict, folder: Path, adapter_config: dict,
                     manifest: dict) -> Path:
    """Write the checkpoint beside its final place and rename it in, so a crash mid-write
    leaves the previous checkpoint intact."""
    from mlx.utils import tree_flatten

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_adapter(mx, model, tmp / "adapter", adapter_config, manifest)
    mx.save_safetensors(str(tmp / _OPTIMIZER_FILE), dict(tree_flatten(optimizer.state)))
    (tmp / _STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _restore(mx: Any, model: Any, optimizer: Any, folder: Path) -> None:
    from mlx.utils import tree_flatten, tree_unflatten

    weights = mx.load(str(folder / "adapter" / ADAPTER_WEIGHTS))
    expected = dict(tree_flatten(model.trainable_parameters()))
    saved = mx.load(str(folder / _OPTIMIZER_FILE))
    optimizer.init(model.trainable_parameters())
    if set(weights) != set(expected) or set(saved) != set(dict(tree_flatten(optimizer.state))):
        raise InvalidInputError(f"The checkpoint in {folder} does not fit this model's LoRA layers; "
                                "discard it and start again.")
    model.load_weights(list(weights.items()), strict=False)
    optimizer.state = tree_unflatten(list(saved.items()))


# ----------------------------------------------------------------------------- training


def train(mlx_dir: Path, dataset: Dataset, out_dir: Path, config: TrainConfig = TrainConfig(), *,
          progress: Progress | None = None, should_stop: ShouldStop | None = None,
          resume_from: Path | None = None) -> TrainResult:
    """Train a LoRA adapter on `dataset` and write it to `out_dir/adapter` (mlx-lm layout).

    Raises ModelError when mlx/mlx-lm is missing or the folder is not a loadable MLX / HF
    model; InvalidInputError for an empty dataset, bad settings, a run that would exceed
    `config.max_memory_gb` or a checkpoint from another run.
    """
    started = time.monotonic()
    mlx_dir, out_dir = Path(mlx_dir).expanduser().absolute(), Path(out_dir)
    mx = _import_mlx()
    hf = _read_config(mlx_dir)
    if not dataset.sft and not dataset.dpo:
        raise InvalidInputError("The dataset has no examples to train on; collect preferences or feedback first.")
    if config.steps < 1 or config.batch_size < 1 or config.rank < 1 or config.max_seq_len < 8:
        raise InvalidInputError("steps, batch_size and rank must be at least 1 and max_seq_len at least 8.")
    device, device_name = _pick_device(mx, config.device)
    need = estimate_memory_gb(mlx_dir, config, hf)
    if need > config.max_memory_gb:
        raise InvalidInputError(f"Training this model needs about {need:.1f} GB of memory, more than the limit of "
                                f"{config.max_memory_gb:.1f} GB. Lower batch_size or max_seq_len, or raise the limit.")
    state = None
    if resume_from is not None:
        state_file = Path(resume_from) / _STATE_FILE
        if not state_file.is_file():
            raise InvalidInputError(f"{resume_from} is not an MLX training checkpoint (no {_STATE_FILE}); "
                                    "start a new run.")
        state = json.loads(state_file.read_text(encoding="utf-8"))
        check_resume(state, config, dataset)
    with mx.stream(device):
        return _run(mx, mlx_dir, hf, dataset, out_dir, config, device_name, state, resume_from,
                    progress, should_stop, started)


def _run(mx: Any, mlx_dir: Path, hf: dict, dataset: Dataset, out_dir: Path, config: TrainConfig,
         device_name: str, state: dict | None, resume_from: Path | None, progress: Progress | None,
         should_stop: ShouldStop | None, started: float) -> TrainResult:
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.tuner.utils import linear_to_lora_layers

    if progress is not None:
        progress(0.0, "loading the model")
    mx.random.seed(config.seed)  # LoRA A initialisation
    model, tokenizer = _load(mlx_dir)
    model.freeze()
    keys = _lora_keys(model, config.target_modules)
    adapter_config = _adapter_config(model, config, keys)
    linear_to_lora_layers(model, adapter_config["num_layers"], adapter_config["lora_parameters"])

    def encode(example: Any, field: str) -> tuple[list[int], int] | None:
        return _encode(tokenizer, example.prompt, getattr(example, field), example.system, config.max_seq_len)

    sft = [r for r in (encode(e, "reply") for e in dataset.sft) if r is not None]
    pairs = [(c, r) for c, r in ((encode(e, "chosen"), encode(e, "rejected")) for e in dataset.dpo)
             if c is not None and r is not None]
    if not sft and not pairs:
        raise InvalidInputError(f"Every example is longer than max_seq_len={config.max_seq_len} tokens before its "
                                "reply starts; raise max_seq_len.")

    optimizer = optim.Adam(learning_rate=config.learning_rate, bias_correction=True)
    step, losses = 0, []
    reference: list[float] = []  # base-model log-prob of each DPO pair's (chosen, rejected)
    if state is not None:
        assert resume_from is not None  # the state was read from that checkpoint
        _restore(mx, model, optimizer, Path(resume_from))
        step, losses, reference = int(state["step"]), list(state["losses"]), list(state.get("reference", []))
    if pairs and state is None:  # a resumed run reads them from its checkpoint (same data, checked above)
        # LoRA B starts at zero, so before the first step the model is exactly the base model.
        model.eval()
        reference = []
        for c, r in pairs:
            values = _sequence_logprobs(model, _batch([c, r]), 2)
            mx.eval(values)
            reference.extend(float(v) for v in values.tolist())

    def loss_fn(model: Any, sft_batch: tuple | None, dpo_batch: tuple | None, ref: Any) -> Any:
        loss = mx.zeros((), mx.float32)
        if sft_batch is not None:
            loss = loss - _token_logprobs(model, *sft_batch).mean()
        if dpo_batch is not None:
            n = ref.shape[0] // 2
            policy = _sequence_logprobs(model, dpo_batch, 2 * n)
            margin = (policy[:n] - ref[:n]) - (policy[n:] - ref[n:])
            loss = loss - nn.log_sigmoid(config.dpo_beta * margin).mean()
        return loss

    value_and_grad = nn.value_and_grad(model, loss_fn)
    manifest = _manifest(mlx_dir, hf, config, dataset)
    checkpoint = out_dir / "checkpoint"

    def save_checkpoint() -> Path:
        run_state = {"step": step, "losses": losses, "config": config.to_dict(), "snapshot": dataset.snapshot,
                     "reference": reference}
        return _save_checkpoint(mx, model, optimizer, run_state, checkpoint, adapter_config, manifest)

    model.train()
    stopped = False
    while step < config.steps:
        if (should_stop is not None and should_stop()) or time.monotonic() - started > config.max_seconds:
            stopped = True
            break
        mx.random.seed(config.seed * 1_000_003 + step)  # dropout masks: a pure function of the step, like the batches
        sft_batch = dpo_batch = ref = None
        if sft:
            sft_batch = _batch([sft[i] for i in _indices(step, config.batch_size, len(sft), config.seed)])
        if pairs:
            chosen = _indices(step, config.batch_size, len(pairs), config.seed + 1)
            dpo_batch = _batch([pairs[i][0] for i in chosen] + [pairs[i][1] for i in chosen])
            ref = mx.array([reference[2 * i] for i in chosen] + [reference[2 * i + 1] for i in chosen])
        loss, grads = value_and_grad(model, sft_batch, dpo_batch, ref)
        optimizer.update(model, grads)
        mx.eval(loss, model.trainable_parameters(), optimizer.state)
        step += 1
        losses.append(float(loss))
        if progress is not None:
            progress(step / config.steps, f"step {step}/{config.steps} loss {losses[-1]:.3f}")
        if step % max(1, config.checkpoint_every) == 0 and step < config.steps:
            save_checkpoint()

    if stopped:
        adapter_dir = save_checkpoint() / "adapter"
    else:
        adapter_dir = out_dir / "adapter"
        shutil.rmtree(adapter_dir, ignore_errors=True)
        _save_adapter(mx, model, adapter_dir, adapter_config, manifest)
        shutil.rmtree(checkpoint, ignore_errors=True)  # a finished run needs no checkpoint
    return TrainResult(adapter_dir=adapter_dir, trainer="mlx", device=device_name, steps=step,
                       seconds=time.monotonic() - started, examples=len(sft) + len(pairs), losses=losses,
                       stopped_early=stopped)


# ----------------------------------------------------------------------------- scoring


class MlxScorer:
    """One loaded MLX model (plus an optional mlx-lm adapter) for the gate's measurements."""

    def __init__(self, mlx_dir: Path, adapter_dir: Path | None = None) -> None:
        mlx_dir = Path(mlx_dir).expanduser().absolute()
        self._mx = _import_mlx()
        _read_config(mlx_dir)
        if adapter_dir is not None:
            adapter_dir = Path(adapter_dir)
            if not (adapter_dir / ADAPTER_CONFIG).is_file() or not (adapter_dir / ADAPTER_WEIGHTS).is_file():
                raise ModelError(f"{adapter_dir} is not an mlx-lm adapter folder (it needs {ADAPTER_CONFIG} and "
                                 f"{ADAPTER_WEIGHTS}); train the adapter again.")
        self.model, self.tokenizer = _load(mlx_dir, adapter_dir)
        self.model.eval()

    def _require_open(self) -> Any:
        if self.model is None:
            raise ModelError("This scorer has been closed; create a new one.")
        return self.model

    def score(self, prompt: str, continuation: str, system: str = "") -> tuple[float, int]:
        """Sum of log-probabilities of `continuation` (closed as a reply, as in training: with the
        end-of-turn token) after the chat-template prompt, and its token count."""
        model = self._require_open()
        row = _encode(self.tokenizer, prompt, continuation, system, 1 << 30)
        if row is None:
            return 0.0, 0
        inputs, rows, cols, target = _batch([row])
        logp = _token_logprobs(model, inputs, rows, cols, target)
        self._mx.eval(logp)
        return float(logp.sum()), int(logp.size)

    def perplexity(self, text: str, window: int = 512) -> float:
        """exp(mean negative log-likelihood) of plain `text`, in non-overlapping windows."""
        model = self._require_open()
        hf = getattr(self.tokenizer, "_tokenizer", self.tokenizer)
        ids = list(hf.encode(text, add_special_tokens=False))
        total, count = 0.0, 0
        for start in range(0, len(ids), window):
            chunk = ids[start:start + window]
            if len(chunk) < 2:
                continue
            inputs, rows, cols, target = _batch([(chunk, 1)])
            logp = _token_logprobs(model, inputs, rows, cols, target)
            self._mx.eval(logp)
            total -= float(logp.sum())
            count += int(logp.size)
        if not count:
            raise InvalidInputError("The perplexity text is too short (it needs at least two tokens).")
        return math.exp(total / count)

    def close(self) -> None:
        self.model = None
        self.tokenizer = None

    def __enter__(self) -> MlxScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
