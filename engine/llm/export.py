"""Turn a GGUF chat model into a Hugging Face / MLX model folder, and check the two agree.

`export_gguf_to_hf` dequantises a GGUF with transformers' GGUF loader and writes a plain
HF folder (fp16 ``model.safetensors``, ``config.json``, tokenizer files,
``generation_config.json``) that `mlx_lm.load` (and transformers) can open. The folder is
written next to its destination and renamed into place only when complete.

`greedy_parity` measures how often MLX on the exported folder and llama.cpp on the
original GGUF pick the same greedy next token at every position of a fixed prompt.

CLI (also reached as ``memdesk model export-mlx OUT``)::

    python -m engine.llm.export GGUF OUT [--overwrite]
    python -m engine.llm.export --parity GGUF FOLDER

Heavy libraries (torch, transformers, safetensors, mlx, llama_cpp) are imported inside
the functions that need them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from memdesk.engine.errors import MemDeskError, ModelError
from memdesk.engine.llm.base import ChatTurn, check_gguf, fingerprint_file

EXPORT_MANIFEST = "memdesk_export.json"

# The conversation the parity check renders with the model's chat template
# (about 80 tokens with SmolLM2's template).
PARITY_TURNS: tuple[ChatTurn, ...] = (
    ChatTurn(
        "system",
        "You are MemDesk, a helpful assistant that remembers what the user tells you. "
        "Answer briefly and use the memories you are given.",
    ),
    ChatTurn(
        "user",
        "Last week I told you that my sister Anna lives in Lisbon, that she loves green tea "
        "and that her birthday is in May. What should I bring her when I visit next month?",
    ),
)


def default_gguf_path() -> Path:
    from memdesk.engine.llm.registry import embedded_model_path

    return embedded_model_path()


def _hf_config_dict(config, dtype_name: str) -> dict:
    """config.json contents that both transformers and mlx-lm read correctly."""
    data = config.to_dict()
    # The GGUF loader marks the config as "quantized with gguf"; the exported weights are
    # plain dense tensors, and mlx-lm would try to interpret the marker.
    data.pop("quantization_config", None)
    data.pop("_name_or_path", None)
    data.pop("_model_name_or_path", None)
    # transformers >= 5 nests RoPE settings under rope_parameters; mlx-lm reads the flat
    # (transformers 4) keys and would silently fall back to rope_theta=10000.
    rope = data.get("rope_parameters")
    if isinstance(rope, dict):
        if "rope_theta" in rope:
            data["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            data["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    data["torch_dtype"] = dtype_name
    data["dtype"] = dtype_name
    return data


def _write_weights(model, out: Path, dtype) -> None:
    from safetensors.torch import save_file

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    tensors = {}
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue  # same storage as the input embeddings; loaders re-tie it
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.detach().contiguous().clone()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def export_gguf_to_hf(gguf_path: Path, out_dir: Path, *, overwrite: bool = False, dtype: str = "float16") -> Path:
    """Write an HF-format model folder at `out_dir` from the GGUF at `gguf_path`; return it.

    Weights are dequantised by transformers and stored as `dtype` ("float16" by default,
    half the size of fp32 with no visible loss on a 4-bit source). Raises ModelError for a
    missing, unreadable or corrupt GGUF, or when `out_dir` already exists and `overwrite`
    is false. Nothing is left at `out_dir` if the export fails.
    """
    gguf_path = check_gguf(Path(gguf_path))
    out_dir = Path(out_dir).expanduser().absolute()
    if dtype not in ("float16", "bfloat16", "float32"):
        raise ModelError(f"Unsupported export dtype {dtype!r}; use float16, bfloat16 or float32.")
    if out_dir.exists() and not overwrite:
        raise ModelError(f"{out_dir} already exists; choose another folder or pass --overwrite.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(
            f"Exporting a GGUF needs torch, transformers, accelerate, gguf and safetensors ({exc}); "
            "install them with `pip install torch transformers accelerate gguf safetensors`."
        ) from exc

    src_dir, name = str(gguf_path.parent), gguf_path.name
    try:
        model = AutoModelForCausalLM.from_pretrained(
            src_dir, gguf_file=name, local_files_only=True, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name, local_files_only=True)
    except MemDeskError:
        raise
    except Exception as exc:  # transformers raises a variety of types for a bad file
        raise ModelError(
            f"Cannot load GGUF model {gguf_path}: {type(exc).__name__}: {exc}. "
            "The file may be corrupt, truncated, or use an architecture transformers cannot dequantise."
        ) from exc

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        _write_weights(model, tmp, getattr(torch, dtype))
        config = _hf_config_dict(model.config, dtype)
        if not config.get("architectures"):
            config["architectures"] = [type(model).__name__]
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        gen = getattr(model, "generation_config", None)
        if gen is not None:
            try:
                gen.to_json_file(str(tmp / "generation_config.json"))
            except Exception:  # optional file; a model without one still loads
                (tmp / "generation_config.json").unlink(missing_ok=True)
        tokenizer.save_pretrained(str(tmp))
        _clean_tokenizer_config(tmp / "tokenizer_config.json")
        manifest = {
            "source": gguf_path.name,  # name only: the folder's fingerprint must not depend on where it came from
            "source_fingerprint": fingerprint_file(gguf_path),
            "dtype": dtype,
            "exporter": "memdesk.engine.llm.export",
        }
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ModelError(f"Cannot write the exported model to {out_dir}: {exc}. "
                             "Check free space and permissions.") from exc
        raise
    return out_dir


def _clean_tokenizer_config(path: Path) -> None:
    """Drop loader-only keys that save_pretrained copies from our from_pretrained call."""
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("local_files_only", "is_local", "gguf_file"):
        data.pop(key, None)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; an existing `dst` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class ParityResult:
    tokens: int  # prompt length
    positions: int  # positions compared (every prompt position)
    agree: int
    mismatches: tuple[int, ...]  # positions whose greedy next tokens differ

    @property
    def agreement(self) -> float:
        return self.agree / self.positions if self.positions else 0.0


def llama_cpp_greedy(gguf_path: Path, tokens: Sequence[int] | None = None, prompt: str | None = None):
    """Greedy next token at every position of `tokens` (or of `prompt`) with llama.cpp.

    Returns ``(tokens, argmax_per_position)``; tokens come from llama.cpp's own tokenizer
    when a prompt is given.
    """
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf_path), n_ctx=512, logits_all=True, verbose=False, seed=0)
    try:
        if tokens is None:
            if prompt is None:
                raise TypeError("llama_cpp_greedy needs tokens or a prompt")
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        tokens = list(tokens)
        llm.reset()
        llm.eval(tokens)
        scores = np.asarray(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()
    return tokens, scores.argmax(axis=-1)


def greedy_parity(gguf_path: Path, mlx_dir: Path, turns: Sequence[ChatTurn] = PARITY_TURNS) -> ParityResult:
    """Compare greedy next tokens of MLX (exported folder) and llama.cpp (original GGUF).

    The prompt is the chat-template rendering of `turns`; both backends get the same token
    ids, taken from llama.cpp's tokenizer.
    """
    import numpy as np

    from memdesk.engine.llm.mlx_backend import MlxModel

    mlx = MlxModel(Path(mlx_dir))
    try:
        prompt = mlx.render_chat(turns, add_generation_prompt=True)
        tokens, ref = llama_cpp_greedy(Path(gguf_path), prompt=prompt)
        ours = np.asarray(mlx.logits(tokens)).argmax(axis=-1)
    finally:
        mlx.close()
    same = ours == ref
    return ParityResult(
        tokens=len(tokens),
        positions=len(tokens),
        agree=int(same.sum()),
        mismatches=tuple(int(i) for i in np.flatnonzero(~same)),
    )


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.llm.export",
        description="Export a GGUF chat model to an MLX / Hugging Face model folder.",
    )
    parser.add_argument("gguf", nargs="?", help="GGUF file (default: the embedded SmolLM2 model)")
    parser.add_argument("out", nargs="?", help="folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument(
        "--parity", action="store_true",
        help="instead of exporting, compare greedy tokens of GGUF (llama.cpp) and OUT (MLX)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.out is None and args.gguf is not None:
        # `export-mlx OUT`: one positional means the output folder, default model.
        args.gguf, args.out = None, args.gguf
    if args.out is None:
        parser.error("OUT is required")
    try:
        gguf = Path(args.gguf) if args.gguf else default_gguf_path()
        if args.parity:
            result = greedy_parity(gguf, Path(args.out))
            print(
                f"greedy next-token agreement: {result.agree}/{result.positions} = {result.agreement:.3f} "
                f"(mismatch positions: {list(result.mismatches)})"
            )
            return 0
        out = export_gguf_to_hf(gguf, Path(args.out), overwrite=args.overwrite, dtype=args.dtype)
    except MemDeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
