"""MemOperator: hybrid search over the vault.

Signals, each a ranked list of candidates:
- vector: cosine KNN in sqlite-vec (filters applied during the scan);
- keyword: FTS5 BM25 over the content words of the query;
- time: when the query names a period ("last May", "two weeks ago"), a second vector
  and keyword pass restricted to memories whose event time falls in that period.
They are fused as a weighted sum of min-max normalised scores ("convex" fusion; reciprocal
rank fusion is available too), then a graph step lets a memory borrow part of the score
of its FOLLOWS neighbours: in a chat the answer to a question often sits in the turn
right after the one that matches it. The default weights were chosen on LoCoMo
(bench/locomo.py), where convex fusion beat RRF because BM25 is much stronger than
MiniLM there and RRF gives the weaker ranking an equal say.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import apsw

from memdesk.engine.cube import Filters, MemoryItem, MemoryType, Relation, SearchHit, to_utc, ts, utcnow
from memdesk.engine.search.timeparse import TimeRange, find_time_range
from memdesk.engine.text import fts_query
from memdesk.engine.vault import items as vault
from memdesk.engine.vault import search_rows, vectors

if TYPE_CHECKING:  # numpy loads with the first vector, not before the window (bench.bundle)
    import numpy as np


@dataclass(frozen=True)
class SearchParams:
    candidates: int = 100  # per signal, before fusion
    rrf_k: float = 60.0
    w_vector: float = 1.0
    w_keyword: float = 2.0
    w_time: float = 1.0
    graph: float = 0.4  # share of a neighbour's fused score a memory inherits
    fusion: str = "convex"  # "rrf" (reciprocal rank) or "convex" (min-max normalised scores)
    # Vector neighbours less similar than this are noise (MiniLM gives unrelated text ~0-0.15);
    # without a floor every query "finds" the nearest memories however unrelated.
    min_similarity: float = 0.15
    bm25_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)  # memory, key, tags
    # A question naming someone is mostly answered by what that person said ("What does Melanie
    # do to destress?"): their own chat turns score this much more. Chosen on LoCoMo's first five
    # conversations, reported on the other five (docs/benchmarks.md).
    speaker_boost: float = 0.5
    # Each further turn from a session already in the results counts this much less, so the
    # evidence of a question that gathers across conversations is not crowded out by one.
    session_decay: float = 1.0
    # Pseudo-relevance feedback (Rocchio): the query vector moved toward the mean of the first
    # `feedback_top` results' vectors, searched again and fused with this weight (0: off). What a
    # multi-hop question gathers ("What activities does Melanie do?") is said in turns that
    # resemble each other more than they resemble the question.
    feedback: float = 0.0
    feedback_top: int = 3
    feedback_beta: float = 0.7


@dataclass
class _Candidate:
    rowid: int
    score: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryPlan:
    """What search understood of a query; exposed so callers can show it."""

    text: str
    keywords: str | None
    window: TimeRange | None
    filters: Filters


def plan(query: str, filters: Filters, reference: datetime | None) -> QueryPlan:
    window = None
    keyword_text = query
    if filters.since is None and filters.until is None:
        window = find_time_range(query, to_utc(reference) or utcnow())
        if window is not None:
            # "may" in "last May" is a date, not a topic word.
            keyword_text = query[:window.span[0]] + " " + query[window.span[1]:]
    return QueryPlan(query, fts_query(keyword_text), window, filters)


def _vector(conn: apsw.Connection, qvec: np.ndarray, f: Filters, limit: int, since=None, until=None):
    k = limit
    while True:
        hits = vectors.knn(conn, qvec, k, statuses=f.statuses, scope=f.scope, memory_types=f.memory_types,
                           sources=f.sources, since=since, until=until)
        keep = search_rows.passing_sql_only_filters(conn, [r for r, _ in hits], f)
        kept = [(r, d) for r, d in hits if r in keep]
        if len(kept) >= limit or len(hits) < k or k >= vectors.MAX_K:
            return kept[:limit]
        k = min(k * 4, vectors.MAX_K)


def search(conn: apsw.Connection, query_plan: QueryPlan, qvec: np.ndarray | None, k: int,
           params: SearchParams = SearchParams(), now: datetime | None = None,
           keep: Callable[[MemoryItem], bool] | None = None) -> list[SearchHit]:
    f = query_plan.filters
    since, until = ts(f.since), ts(f.until)
    n = max(params.candidates, k)
    vec = qvec if qvec is not None and search_rows.has_vector_table(conn) else None  # None: no vector search
    lists: dict[str, list[tuple[int, float]]] = {}
    if vec is not None:
        lists["vector"] = [(r, 1.0 - d) for r, d in _vector(conn, vec, f, n, since, until)
                           if 1.0 - d >= params.min_similarity]
    if query_plan.keywords:
        lists["keyword"] = [(r, -s) for r, s in search_rows.keyword_ranked(conn, query_plan.keywords, f, n,
                                                                           params.bm25_weights, since, until)]
    window = query_plan.window
    if window is not None:
        w_since, w_until = window.start.timestamp(), window.end.timestamp()
        if vec is not None:
            lists["time_vector"] = [(r, 1.0 - d) for r, d in _vector(conn, vec, f, n, w_since, w_until)
                                    if 1.0 - d >= params.min_similarity]
        if query_plan.keywords:
            lists["time_keyword"] = [(r, -s) for r, s in search_rows.keyword_ranked(
                conn, query_plan.keywords, f, n, params.bm25_weights, w_since, w_until)]
    weights = {"vector": params.w_vector, "keyword": params.w_keyword,
               "time_vector": params.w_time * params.w_vector, "time_keyword": params.w_time * params.w_keyword}
    pool: dict[int, _Candidate] = {}
    for name, ranked in lists.items():
        weight = weights[name]
        if not ranked or weight <= 0:
            continue
        top = ranked[0][1]
        bottom = ranked[-1][1]
        for rank, (rowid, raw) in enumerate(ranked):
            cand = pool.setdefault(rowid, _Candidate(rowid))
            if params.fusion == "rrf":
                cand.score += weight / (params.rrf_k + rank + 1)
            else:  # convex combination of min-max normalised scores
                cand.score += weight * ((raw - bottom) / (top - bottom) if top > bottom else 1.0)
            cand.signals.setdefault(name.removeprefix("time_") if name.startswith("time_") else name, raw)
            if name.startswith("time_"):
                cand.signals["time"] = 1.0
    if not pool:
        return []
    if vec is not None and params.feedback > 0:
        _feed_back(conn, pool, vec, f, n, since, until, params)
    _spread_over_graph(conn, pool, params.graph)
    ranked_pool = sorted(pool.values(), key=lambda c: c.score, reverse=True)
    # A `keep` filter may drop many candidates (a chat drops the assistant's own turns): read further.
    items = vault.fetch_many(conn, [c.rowid for c in ranked_pool[: k * (3 if keep is None else 8)]])
    now_ts = (to_utc(now) or utcnow()).timestamp()
    hits: list[SearchHit] = []
    # Dedup by provenance: a fact extracted from a turn says what the turn said, in a form
    # the model reads better (third person, dated, versioned). When both are candidates the
    # fact stands for the turn; two facts from the same turns keep only the better one.
    cands = [(c, items[c.rowid]) for c in ranked_pool if c.rowid in items
             and not _expired(items[c.rowid], now_ts) and _matches(items[c.rowid], f)
             and (keep is None or keep(items[c.rowid]))]
    cands = _reweigh(cands, query_plan.text, params)
    fact_for: dict[str, tuple[_Candidate, MemoryItem]] = {}  # message id -> best fact drawn from it
    for cand, item in cands:
        if item.memory_type != MemoryType.RAW_CHAT.value:
            for message_id in _said_in(item):
                fact_for.setdefault(message_id, (cand, item))
    emitted: set[int] = set()
    covered: set[str] = set()

    def emit(cand: _Candidate, item: MemoryItem) -> None:
        said_in = _said_in(item)
        if cand.rowid in emitted or (said_in and said_in <= covered):
            return
        emitted.add(cand.rowid)
        covered.update(said_in)
        hits.append(SearchHit(item=item, score=cand.score, signals=cand.signals))

    for cand, item in cands:
        if item.memory_type == MemoryType.RAW_CHAT.value and (facts := [fact_for[m] for m in _said_in(item)
                                                                          if m in fact_for]):
            for fact in facts:  # the fact takes the turn's place in the ranking
                emit(*fact)
            if _said_in(item) <= covered:
                continue
        emit(cand, item)
        if len(hits) >= k:
            break
    return hits[:k]


def _reweigh(cands: list[tuple[_Candidate, MemoryItem]], query: str,
             params: SearchParams) -> list[tuple[_Candidate, MemoryItem]]:
    """Speaker and session adjustments to the fused ranking (see SearchParams)."""
    if params.speaker_boost <= 0 and params.session_decay >= 1:
        return cands
    named = {w.lower() for w in re.findall(r"[A-Z][\w'-]+", query)} | {
        w[:-2].lower() for w in re.findall(r"[A-Z][\w-]+'s\b", query)}
    seen: dict[str, int] = {}
    weighed = []
    for cand, item in cands:
        factor = 1.0
        if item.memory_type == MemoryType.RAW_CHAT.value:
            source = item.sources[0] if item.sources else None
            if params.speaker_boost > 0 and source is not None and (source.role or "").lower() in named:
                factor *= 1.0 + params.speaker_boost
            if params.session_decay < 1 and source is not None and source.session_id:
                factor *= params.session_decay ** seen.get(source.session_id, 0)
                seen[source.session_id] = seen.get(source.session_id, 0) + 1
        weighed.append((factor * cand.score, cand, item))
    weighed.sort(key=lambda x: x[0], reverse=True)
    out = []
    for score, cand, item in weighed:
        cand.score = score
        out.append((cand, item))
    return out


def _feed_back(conn: apsw.Connection, pool: dict[int, _Candidate], qvec: np.ndarray, f: Filters, n: int,
               since, until, params: SearchParams) -> None:
    """Rocchio feedback from the best candidates so far (see SearchParams.feedback)."""
    import numpy as np
    top = [c.rowid for c in sorted(pool.values(), key=lambda c: c.score, reverse=True)[: params.feedback_top]]
    found = vectors.vectors_of(conn, top)
    if not found:
        return
    moved = qvec + params.feedback_beta * np.mean(list(found.values()), axis=0)
    moved = moved / (np.linalg.norm(moved) or 1.0)
    ranked = [(r, 1.0 - d) for r, d in _vector(conn, moved, f, n, since, until) if 1.0 - d >= params.min_similarity]
    if not ranked:
        return
    top_score, bottom = ranked[0][1], ranked[-1][1]
    for rowid, raw in ranked:
        cand = pool.setdefault(rowid, _Candidate(rowid))
        cand.score += params.feedback * ((raw - bottom) / (top_score - bottom) if top_score > bottom else 1.0)
        cand.signals.setdefault("feedback", raw)


def _spread_over_graph(conn: apsw.Connection, pool: dict[int, _Candidate], share: float) -> None:
    """Each candidate inherits `share` of its best FOLLOWS neighbour's score."""
    if share <= 0:
        return
    links = vault.neighbours(conn, list(pool), Relation.FOLLOWS.value)
    base = {rowid: cand.score for rowid, cand in pool.items()}
    for rowid, cand in pool.items():
        best = max((base.get(n, 0.0) for n in links.get(rowid, ())), default=0.0)
        if best:
            cand.score += share * best
            cand.signals["graph"] = best


def _matches(item: MemoryItem, f: Filters) -> bool:
    """A last check of the filters on the items returned (cheap, and guards every path)."""
    return ((not f.statuses or item.status in f.statuses)
            and (not f.memory_types or item.memory_type in f.memory_types)
            and (not f.sources or item.source in f.sources)
            and (f.scope is None or item.scope == f.scope)
            and (f.pinned is None or item.pinned == f.pinned)
            and all(tag in item.tags for tag in f.tags)
            and (f.since is None or (item.event_time or item.created_at) >= f.since)
            and (f.until is None or (item.event_time or item.created_at) < f.until))


def _said_in(item: MemoryItem) -> set[str]:
    return {s.message_id for s in item.sources if s.message_id}


def _expired(item: MemoryItem, now_ts: float) -> bool:
    return item.expires is not None and item.expires.timestamp() <= now_ts
