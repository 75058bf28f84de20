"""The lasting-disclosure classifier (engine.search.disclosures): threshold by cross-validation, then held out.

    python -m bench.disclosures --out bench/results/disclosures.json

1. 5-fold cross-validation on its training sentences (resources/preferences/disclosures.json):
   for each threshold, the share of held-out lasting sentences taken and of passing ones
   taken. engine.search.disclosures.THRESHOLD is the lowest with passing taken under 5%.
2. Once, on bench/data/preferences_holdout.json (written apart, never trained or tuned on):
   statements taken by the rules alone, by the classifier alone, and by both as MemReader
   runs them; filler messages taken (false positives).
"""
from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from memdesk.engine.reader.preferences import preferences  # noqa: E402
from memdesk.engine.reader.rules import Utterance, extract  # noqa: E402
from memdesk.engine.search.disclosures import (  # noqa: E402
    THRESHOLD,
    WEIGHTS,
    DisclosureClassifier,
    _sigmoid,
    fit,
    training_data,
    weights_record,
)
from memdesk.engine.search.embed import Embedder  # noqa: E402

HOLDOUT = Path(__file__).parent / "data" / "preferences_holdout.json"
THRESHOLDS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
PREF = "PreferenceMemory"


def cross_validate(embedder, data: dict, folds: int = 5, seed: int = 3) -> dict:
    texts = data["lasting"] + data["passing"]
    y = np.concatenate([np.ones(len(data["lasting"])), np.zeros(len(data["passing"]))])
    x = embedder.encode(texts)
    fold = np.random.default_rng(seed).permutation(len(texts)) % folds
    prob = np.zeros(len(texts))
    for f in range(folds):
        w, b = fit(x[fold != f], y[fold != f])
        prob[fold == f] = _sigmoid(x[fold == f] @ w + b)
    return {str(t): {"lasting_taken": round(float((prob[y == 1] >= t).mean()), 3),
                     "passing_taken": round(float((prob[y == 0] >= t).mean()), 3)} for t in THRESHOLDS}


def _taken(text: str, lasting) -> bool:
    u = [Utterance(text, "user", datetime.now(UTC), "m")]
    rules = [e for e in extract(u) if e.memory_type == PREF]
    return bool(rules or preferences(u, lasting=lasting))


def holdout(embedder, path: Path) -> dict:
    data = json.loads(path.read_text())
    classifier = DisclosureClassifier.for_embedder(embedder)
    statements = [p["statement"] for p in data["preferences"]]
    rules = [_taken(s, None) for s in statements]
    alone = classifier.lasting(statements)
    both = [_taken(s, classifier.lasting) for s in statements]
    fillers = data["fillers"]
    return {"statements": len(statements), "fillers": len(fillers),
            "recall_rules": round(float(np.mean(rules)), 3),
            "recall_classifier_alone": round(float(np.mean(alone)), 3),
            "recall_shipped": round(float(np.mean(both)), 3),
            "fillers_taken_rules": round(float(np.mean([_taken(f, None) for f in fillers])), 3),
            "fillers_taken_shipped": round(float(np.mean([_taken(f, classifier.lasting) for f in fillers])), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--holdout", type=Path, default=HOLDOUT)
    parser.add_argument("--write-weights", action="store_true",
                        help="train on resources/preferences/disclosures.json and ship the weights")
    args = parser.parse_args(argv)
    embedder = Embedder()
    if args.write_weights:
        target = Path(__file__).resolve().parents[1] / "resources" / "preferences" / WEIGHTS
        target.write_text(json.dumps(weights_record(embedder)) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    report = {"threshold": THRESHOLD, "cross_validation": cross_validate(embedder, training_data()),
              "holdout": holdout(embedder, args.holdout)}
    write_report(report, args.out, "bench.disclosures", argv)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
