"""The numpy MiniLM embedder: the vectors sentence-transformers gives for the same weights, without torch."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from memdesk.engine.errors import ModelError
from memdesk.engine.search.embed import Embedder, default_model_path, fingerprint
from memdesk.engine.search.minilm import MiniLM

TEXTS = ["My dog is called Biscuit.", "I'm allergic to peanuts", "Plan my Saturday in Lisbon", "x", "",
         "Une phrase en français, avec des accents: é à ü ß", "word " * 400, "🙂 emoji,\ttabs\nand newlines",
         "Caroline went to the LGBTQ support group on 7 May 2023.", "What did Melanie paint last year?"]


@pytest.fixture(scope="module")
def minilm():
    return MiniLM(default_model_path())


def test_the_same_vectors_as_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers", reason="the reference implementation (test extra)")
    reference = st.SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    got = minilm.encode(TEXTS, batch_size=3)  # batches of mixed lengths: padding must not leak in
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    assert np.abs(got - expected).max() < 1e-3


def test_vectors_are_unit_length_in_order_and_independent_of_the_batch(minilm):
    alone = np.stack([minilm.encode([text])[0] for text in TEXTS[:4]])
    together = minilm.encode(TEXTS[:4], batch_size=4)
    assert together.dtype == np.float32 and together.shape == (4, 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(alone, together, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_meaning_is_kept(minilm):
    dog, pet, tax = minilm.encode(["My dog is called Biscuit.", "What is my pet's name?", "Quarterly tax filing"])
    assert float(dog @ pet) > float(dog @ tax) + 0.2


def test_the_embedder_runs_without_torch_and_keeps_its_fingerprint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # any import of torch now fails
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    embedder = Embedder()
    vectors = embedder.encode(["hello world", "bonjour"])
    assert vectors.shape == (2, 384) and embedder.dim == 384
    # Same weights, same fingerprint: vaults embedded by sentence-transformers keep their vectors.
    assert embedder.fingerprint == fingerprint(default_model_path())


def test_a_model_it_cannot_run_is_refused_clearly(tmp_path):
    folder = tmp_path / "other"
    shutil.copytree(default_model_path(), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    with pytest.raises(ModelError, match="hidden_act"):
        MiniLM(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="safetensors"):
        Embedder(folder).encode(["x"])


def test_the_weights_load_only_when_something_is_embedded(data_dir):
    """The vector table needs the width at start; the 42 MB of weights wait for the first text."""
    from memdesk.engine.api import Memory
    from memdesk.engine.vault.keys import KdfParams

    embedder = Embedder()
    assert embedder.dim == 384 and embedder._model is None
    mem = Memory.open(data_dir, passphrase=lambda confirm: "a passphrase", embedder=embedder, background=False,
                      kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))
    try:
        assert mem.indexer.run_once() == 0  # nothing pending: prepared without the weights
        assert embedder._model is None
        mem.add("My sister Ana lives in Porto.")
        assert mem.indexer.run_once() == 1
        assert embedder._model is not None and embedder.dim == 384
        assert mem.search("where does Ana live?", k=1)[0].item.memory == "My sister Ana lives in Porto."
    finally:
        mem.close()
