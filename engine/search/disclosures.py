"""Lasting self-disclosures, by meaning: what cue words miss.

MemReader's preference rules (engine.reader.preferences) catch a preference by how it is
said: "I can't stand", "every morning", "I'm allergic". People also say them with no cue at
all: "Spicy food and I have never got along", "The bus commute is my only study time". This
is a logistic regression on the sentence's MiniLM embedding, trained on
resources/preferences/disclosures.json: sentences that state something lasting about the
speaker against one-off events, passing states, questions and small talk. The weights beside
it are that training's result for the shipped embedder; another embedder trains at first use
(about 5 s on two cores). It is asked only about the user's own declarative sentences that no
rule took.
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING

from memdesk.engine.search.embed import PerEmbedder

if TYPE_CHECKING:  # numpy loads with the first vector, not before the window (bench.bundle)
    import numpy as np

# Probability above which a sentence is taken as lasting. Chosen by 5-fold cross-validation
# on the training sentences (python -m bench.disclosures): the lowest threshold at which
# fewer than 5% of held-out passing sentences are taken.
THRESHOLD = 0.6
_L2 = 1e-3
_STEPS = 2000
DATA = "disclosures.json"
WEIGHTS = "disclosures_weights.json"


class DisclosureClassifier(PerEmbedder):
    """Trained once per embedder (its fingerprint) and kept in memory."""


    def __init__(self, embedder, lasting: list[str] | None = None, passing: list[str] | None = None):
        import numpy as np
        self.embedder = embedder
        if lasting is None or passing is None:
            shipped = shipped_weights(embedder.fingerprint)
            if shipped is not None:  # trained from the same sentences and embedder: no start-up cost
                self.weights, self.bias = shipped
                return
            data = training_data()
            lasting, passing = data["lasting"], data["passing"]
        x = embedder.encode(list(lasting) + list(passing))
        y = np.concatenate([np.ones(len(lasting)), np.zeros(len(passing))])
        self.weights, self.bias = fit(x, y)

    def probability(self, sentences: list[str]) -> np.ndarray:
        import numpy as np
        if not sentences:
            return np.zeros(0)
        return _sigmoid(self.embedder.encode(sentences) @ self.weights + self.bias)

    def lasting(self, sentences: list[str]) -> list[bool]:
        return [bool(p >= THRESHOLD) for p in self.probability(sentences)]


def _resource(name: str) -> str:
    return importlib_resources.files("memdesk.resources.preferences").joinpath(name).read_text(encoding="utf-8")


def training_data() -> dict:
    return json.loads(_resource(DATA))


def data_digest() -> str:
    return hashlib.sha256(_resource(DATA).encode("utf-8")).hexdigest()


def shipped_weights(fingerprint: str) -> tuple[np.ndarray, float] | None:
    """The weights in resources, when they were trained on today's sentences with this embedder
    (python -m bench.disclosures --write-weights; a test checks they are what training gives)."""
    import numpy as np
    try:
        shipped = json.loads(_resource(WEIGHTS))
    except (OSError, ValueError):
        return None
    if shipped.get("fingerprint") != fingerprint or shipped.get("data_sha256") != data_digest():
        return None
    return np.array(shipped["weights"], dtype=np.float64), float(shipped["bias"])


def weights_record(embedder) -> dict:
    import numpy as np
    data = training_data()
    x = embedder.encode(data["lasting"] + data["passing"])
    y = np.concatenate([np.ones(len(data["lasting"])), np.zeros(len(data["passing"]))])
    w, b = fit(x, y)
    return {"fingerprint": embedder.fingerprint, "data_sha256": data_digest(),
            "weights": [round(float(v), 8) for v in w], "bias": round(b, 8)}


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by gradient descent, classes weighted to balance."""
    import numpy as np
    weight = np.where(y == 1, len(y) / (2 * max(1, y.sum())), len(y) / (2 * max(1, (1 - y).sum())))
    w, b = np.zeros(x.shape[1]), 0.0
    rate = 2.0
    for _ in range(_STEPS):
        error = (_sigmoid(x @ w + b) - y) * weight
        w -= rate * (x.T @ error / len(y) + _L2 * w)
        b -= rate * float(error.mean())
    return w, b


def _sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
