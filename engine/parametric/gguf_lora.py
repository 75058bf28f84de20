"""Convert a peft LoRA adapter into a GGUF LoRA that llama.cpp loads over the (quantised) base.

llama.cpp reads an adapter GGUF with general.type = "adapter", adapter.type = "lora",
adapter.lora.alpha, general.architecture equal to the base model's, and for every adapted
weight W of the base a pair of tensors "<W>.lora_a" / "<W>.lora_b" (W named as in the base
GGUF, e.g. "blk.3.attn_q.weight"). In numpy order lora_a is [rank, in] and lora_b is
[out, rank] -- exactly peft's lora_A / lora_B -- and llama.cpp adds
(alpha / rank) * lora_b @ lora_a @ x to W @ x.

One subtlety decides whether the adapter acts as trained: for llama-architecture models
llama.cpp's converter stores attn_q / attn_k with their output rows permuted (the rotary
embedding pairs dimensions differently from Hugging Face), and transformers' GGUF loader
undoes that permutation when it exports the HF folder we train on. A delta B @ A trained in
HF order therefore has to reach llama.cpp as P @ B @ A: the rows of lora_b for q_proj and
k_proj get the same permutation (by n_head for q, n_head_kv for k); lora_a and the other
projections are unchanged.

The gguf package (and numpy / safetensors) are imported inside functions.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from memdesk.engine.errors import ModelError

# HF module (self_attn.* / mlp.*) -> base GGUF tensor name inside block i.
_MODULES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}
# HF model_type -> (GGUF architecture, whether q/k rows are permuted for rotary embeddings).
# These are the families whose llama.cpp conversion uses the plain per-layer names above.
_ARCHITECTURES = {
    "llama": ("llama", True), "mistral": ("llama", True),
    "qwen2": ("qwen2", False), "qwen3": ("qwen3", False),
}
_LORA_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")
_MEMDESK_BASE = "memdesk.base_fingerprint"
_MEMDESK_SOURCE = "memdesk.source"


def permute_rows(weight: Any, n_head: int) -> Any:
    """llama.cpp's q/k permutation (convert_hf_to_gguf: LlamaModel.permute) on the rows of
    `weight`: within each head, interleaved rotary pairs become the two halves."""
    rows = weight.shape[0]
    if rows % (2 * n_head):
        raise ModelError(f"Cannot permute {rows} rows into {n_head} rotary heads; the adapter does not fit this base.")
    return (weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _base_info(path: Path) -> tuple[str | None, Any, Any, dict[str, tuple[int, ...]]]:
    """Architecture, head counts and tensor shapes (GGUF order: in, out) of a base model."""
    stat = path.stat()
    return _read_base_info(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_base_info(path: str, size: int, mtime_ns: int) -> tuple[str | None, Any, Any, dict[str, tuple[int, ...]]]:
    # GGUFReader walks every metadata entry, the 49k-token vocabulary included (seconds on a
    # slow CPU); the answer is small, so keep it per file version (size and mtime in the key).
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise ModelError(f"Cannot read the base model {path}: {exc}. It may be damaged.") from exc
    arch = _field(reader, "general.architecture")
    n_head = _field(reader, f"{arch}.attention.head_count")
    n_head_kv = _field(reader, f"{arch}.attention.head_count_kv") or n_head
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    return arch, n_head, n_head_kv, shapes


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _manifest(adapter_dir: Path) -> dict:
    """What the trainer recorded about the adapter (engine.parametric.train_torch.ADAPTER_MANIFEST)."""
    path = adapter_dir / "memdesk_adapter.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _adapter_model_type(adapter_dir: Path, config: dict) -> str | None:
    """The architecture the adapter was trained on: our manifest, else the base folder peft recorded."""
    kind = _manifest(adapter_dir).get("model_type")
    if kind:
        return str(kind)
    base = config.get("base_model_name_or_path")
    if base and (Path(base) / "config.json").is_file():
        return json.loads((Path(base) / "config.json").read_text(encoding="utf-8")).get("model_type")
    return None


def _load_tensors(path: Path) -> dict[str, Any]:
    import numpy as np

    try:
        from safetensors.numpy import load_file

        return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(path)).items()}
    except (TypeError, ValueError):  # bf16 has no numpy dtype: go through torch
        from safetensors.torch import load_file as load_torch

        return {k: v.float().numpy() for k, v in load_torch(str(path)).items()}


def _scales(config: dict, tensor_name: str, rank: int) -> float:
    """peft's scaling of one module (alpha / r, or alpha / sqrt(r) with rsLoRA; alpha_pattern
    keys match the end of the module path, as peft matches them)."""
    module = tensor_name.rsplit(".lora_", 1)[0]
    alpha = float(config.get("lora_alpha", rank))
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            alpha = float(value)
            break
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def convert(adapter_dir: Path, base_gguf: Path, out_path: Path, *, dtype: str = "f32",
            same_base: bool = True, permute_qk: bool = True) -> Path:
    """Write the peft adapter in `adapter_dir` as a GGUF LoRA for `base_gguf` at `out_path`.

    `dtype` is "f32" (exact) or "f16" (half the size). With `same_base` (the default) an
    adapter whose manifest names the GGUF it was trained from is refused for any other
    file, even one of the same shape. `permute_qk=False` exists only to show that the
    rotary permutation matters; never use it for a real adapter.
    Raises ModelError when the base is another architecture or shape than the adapter's,
    or when the adapter touches modules llama.cpp cannot take from a LoRA file.
    """
    import gguf
    import numpy as np

    from memdesk.engine.llm.base import check_gguf, fingerprint_file

    adapter_dir, base_gguf, out_path = Path(adapter_dir), check_gguf(Path(base_gguf)), Path(out_path)
    config_file, weights_file = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise ModelError(f"{adapter_dir} is not a peft LoRA adapter (it needs adapter_config.json and "
                         "adapter_model.safetensors).")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora") or config.get("bias", "none") != "none" \
            or config.get("modules_to_save"):
        raise ModelError(f"{adapter_dir} is not a plain LoRA (DoRA, biases or fully trained modules); "
                         "llama.cpp can only apply lora_a/lora_b pairs.")
    if dtype not in ("f32", "f16"):
        raise ModelError(f"Unsupported adapter dtype {dtype!r}; use f32 or f16.")

    arch, n_head, n_head_kv, base_shapes = _base_info(base_gguf)
    model_type = _adapter_model_type(adapter_dir, config)
    if model_type not in _ARCHITECTURES:
        raise ModelError(f"The adapter was trained on a {model_type or 'unknown'} model; converting to GGUF supports "
                         f"{', '.join(sorted(_ARCHITECTURES))}.")
    expected_arch, permuted = _ARCHITECTURES[model_type]
    if arch != expected_arch:
        raise ModelError(f"The adapter was trained on a {model_type} model but {base_gguf.name} is a {arch} model; "
                         "an adapter only works with the base model it was trained on.")
    if permuted and not (isinstance(n_head, int) and isinstance(n_head_kv, int)):
        raise ModelError(f"{base_gguf.name} has per-layer head counts; this converter needs one count for all layers.")

    pairs: dict[str, dict[str, Any]] = {}
    for name, tensor in _load_tensors(weights_file).items():
        match = _LORA_NAME.search(name)
        if not match or match.group(2) not in _MODULES:
            raise ModelError(f"The adapter changes {name!r}, which has no counterpart llama.cpp can adapt; train with "
                             f"target modules among {', '.join(_MODULES)}.")
        layer, module, half = int(match.group(1)), match.group(2), match.group(3)
        pairs.setdefault(f"blk.{layer}.{_MODULES[module]}.weight", {"module": module, "hf": name})[half] = tensor
    if not pairs:
        raise ModelError(f"{adapter_dir} holds no LoRA weights.")

    alpha = float(config.get("lora_alpha", config.get("r", 8)))
    out_type = np.float32 if dtype == "f32" else np.float16
    tensors: list[tuple[str, Any]] = []
    for target in sorted(pairs, key=_order):
        pair = pairs[target]
        if "A" not in pair or "B" not in pair:
            raise ModelError(f"The adapter has only half of the LoRA pair for {pair['hf']}; it is damaged.")
        a, b = pair["A"], pair["B"]
        if target not in base_shapes:
            raise ModelError(f"{base_gguf.name} has no tensor {target}; the adapter belongs to another base model.")
        d_in, d_out = base_shapes[target][0], base_shapes[target][1]
        rank = a.shape[0]
        if a.shape != (rank, d_in) or b.shape != (d_out, rank):
            raise ModelError(f"The adapter's {pair['hf']} (A {a.shape}, B {b.shape}) does not fit {target} of "
                             f"{base_gguf.name} ({d_out} x {d_in}); it was trained on another base model.")
        # llama.cpp scales every pair by alpha / rank; fold any other peft scaling into B.
        b = b * (_scales(config, pair["hf"], rank) / (alpha / rank))
        if permuted and permute_qk and pair["module"] in ("q_proj", "k_proj"):
            b = permute_rows(b, n_head if pair["module"] == "q_proj" else n_head_kv)
        tensors += [(target + ".lora_a", a), (target + ".lora_b", b)]

    trained_on = _manifest(adapter_dir).get("base_fingerprint")
    base_print = fingerprint_file(base_gguf)
    if same_base and trained_on and trained_on != base_print:
        raise ModelError(f"The adapter was trained on another model file than {base_gguf.name} (fingerprint "
                         f"{trained_on}, this file {base_print}); train a new adapter for this model.")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_string(_MEMDESK_BASE, base_print)
        writer.add_string(_MEMDESK_SOURCE, adapter_dir.name)
        for name, value in tensors:
            writer.add_tensor(name, np.ascontiguousarray(value, dtype=out_type))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def _order(target: str) -> tuple[int, str]:
    return int(target.split(".")[1]), target


def check(path: Path) -> dict:
    """Metadata of a GGUF LoRA, for the registry; ModelError when it is not one."""
    import gguf

    from memdesk.engine.llm.base import check_gguf

    path = check_gguf(Path(path))
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise ModelError(f"Cannot read the adapter {path}: {exc}. It may be damaged; convert it again.") from exc
    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise ModelError(f"{path} is a GGUF file but not a LoRA adapter (general.type / adapter.type).")
    lora_a = [t for t in reader.tensors if t.name.endswith(".lora_a")]
    modules = sorted({t.name.split(".")[2] for t in lora_a})
    layers = sorted({int(t.name.split(".")[1]) for t in lora_a if t.name.startswith("blk.")})
    return {
        "architecture": _field(reader, "general.architecture"),
        "alpha": float(_field(reader, "adapter.lora.alpha") or 0.0),
        "rank": int(lora_a[0].shape[1]) if lora_a else 0,  # GGUF order (in, rank)
        "modules": modules,
        "layers": len(layers),
        "tensors": len(reader.tensors),
        "dtype": reader.tensors[0].tensor_type.name if reader.tensors else None,
        "base_fingerprint": _field(reader, _MEMDESK_BASE),
        "source": _field(reader, _MEMDESK_SOURCE),
        "bytes": path.stat().st_size,
    }
