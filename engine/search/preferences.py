"""Preference memory: finding the preferences that govern a request.

A request rarely names the preference that governs it ("Plan my Saturday in Lisbon" is
governed by "I can't stand crowds"), so keyword search finds almost nothing and fused
hybrid scores, tuned for facts, bury what the vectors do find. Preferences are searched on
their own, over the user's preferences only, and scored in two parts:
- meaning: the MiniLM cosine of the request and the preference;
- what it applies to: resources/preferences/considerations.json is general knowledge of
  what shapes the answer to some 200 common kinds of request ("plan a day out in a city":
  crowds and queues, walking a lot, budget, food, opening hours...). A preference applies
  to the kinds of request whose considerations it is closest to ("I can't stand crowds" ~
  "crowds and queues" -> day out in a city, concerts, museums...), and scores by how close
  the request is to one of those kinds ("Plan my Saturday in Lisbon" ~ "Plan my Saturday
  in Rome"). This bridges what requests and preferences never share: words.
score = cosine + BRIDGE_WEIGHT * bridge (both set on the dev half of
bench/data/preferences.json; figures in docs/benchmarks.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING

from memdesk.engine.cube import MemoryItem, MemoryType
from memdesk.engine.search.embed import PerEmbedder

if TYPE_CHECKING:  # numpy loads with the first vector, not before the window (bench.bundle)
    import numpy as np

BRIDGE_WEIGHT = 0.5
APPLIES_TO = 8  # kinds of request a preference is taken to apply to
MAX_PREFERENCES = 5000  # scored at once; a person states far fewer


@dataclass(frozen=True)
class ScoredPreference:
    item: MemoryItem
    score: float
    cosine: float
    bridge: float  # closeness to a consideration of the request's kind (0 without the table)


class Considerations(PerEmbedder):
    """The table's vectors, computed once per embedder (a few seconds) and kept in memory."""


    def __init__(self, embedder):
        import numpy as np
        data = json.loads(importlib_resources.files("memdesk.resources.preferences")
                          .joinpath("considerations.json").read_text(encoding="utf-8"))
        self.situations = data["situations"]
        texts, owner = [], []
        for n, situation in enumerate(self.situations):
            for text in [situation["request"], *situation.get("examples", [])]:
                texts.append(text)
                owner.append(n)
        self.owner = np.array(owner)
        self.request_vectors = embedder.encode(texts)
        phrases = [c for s in self.situations for c in s["considerations"]]
        self.phrase_owner = np.array([n for n, s in enumerate(self.situations) for _ in s["considerations"]])
        self.phrase_vectors = embedder.encode(phrases)
        self.count = len(self.situations)
        self._applies: dict[tuple[str, int], np.ndarray] = {}  # (memory id, version) -> situation indices

    def _by_situation(self, scores: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Best score per situation for each row of `scores` (columns belong to `owner` situations)."""
        import numpy as np
        out = np.full((scores.shape[0], self.count), -1.0)
        for n in range(self.count):
            out[:, n] = scores[:, owner == n].max(axis=1)
        return out

    def applies_to(self, vectors: np.ndarray) -> np.ndarray:
        """For each preference vector, the kinds of request whose considerations it is closest to."""
        import numpy as np
        closeness = self._by_situation(vectors @ self.phrase_vectors.T, self.phrase_owner)
        return np.argsort(-closeness, axis=1)[:, :APPLIES_TO]

    def describe(self, vector: np.ndarray) -> dict:
        """What a preference is about, to store on it: its area and the requests it applies to."""
        kinds = self.applies_to(vector[None, :])[0]
        return {"area": self.situations[kinds[0]]["area"],
                "applies_to": [self.situations[k]["request"] for k in kinds[:3]]}

    def bridge(self, query: np.ndarray, items: list[MemoryItem], vectors: np.ndarray) -> np.ndarray:
        """How close the request is to the kinds of request each preference applies to."""
        import numpy as np
        missing = [n for n, item in enumerate(items) if (item.id, item.version) not in self._applies]
        if missing:
            for n, kinds in zip(missing, self.applies_to(vectors[missing])):
                self._applies[(items[n].id, items[n].version)] = kinds
        to_kind = self._by_situation((self.request_vectors @ query)[None, :], self.owner)[0]
        return np.array([to_kind[self._applies[(item.id, item.version)]].max() for item in items])


def rank(query_vector: np.ndarray, candidates: list[tuple[MemoryItem, np.ndarray]],
         considerations: Considerations | None) -> list[ScoredPreference]:
    import numpy as np
    if not candidates:
        return []
    items = [item for item, _ in candidates]
    vectors = np.stack([v for _, v in candidates])
    cosine = vectors @ query_vector
    bridge = (considerations.bridge(query_vector, items, vectors) if considerations is not None
              else np.zeros(len(vectors)))
    scores = cosine + BRIDGE_WEIGHT * bridge
    order = np.argsort(-scores)
    return [ScoredPreference(items[i], float(scores[i]), float(cosine[i]), float(bridge[i])) for i in order]


def is_preference(item: MemoryItem) -> bool:
    return item.memory_type == MemoryType.PREFERENCE.value
