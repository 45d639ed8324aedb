"""Pure retrieval metrics: overlap, Jaccard, rank-biased overlap, Kendall tau, P@k, R@k, AP@k, nDCG@k."""

from __future__ import annotations

import math
from collections import Counter

from ..errors import OnnxSearchError
from ..ids import in_tie_order

RBO_P = 0.9  # rank-biased overlap persistence: top ranks weigh most


def trec_order(items: list, score, doc_id, what: str = "a ranking") -> list:
    """``items`` in trec_eval's order: score descending, then document id descending compared as text (trec_eval
    sorts a run by score, then ``strcmp`` of the docnos, larger first: "9" before "10"); ``score(item)`` and
    ``doc_id(item)`` read them. A document twice in one ranking is an OnnxSearchError naming ``what``."""
    ids = [str(doc_id(x)) for x in items]
    twice = [i for i, n in Counter(ids).items() if n > 1]
    if twice:
        raise OnnxSearchError(
            f"{what} lists image {twice[0]} {Counter(ids)[twice[0]]} times; a ranking holds each image once "
            "(rerun the experiment to get clean results)"
        )
    by_id = in_tie_order(items, doc_id)
    return sorted(by_id, key=lambda x: -float(score(x)))  # stable: ties keep the id order


def overlap_at_k(a: list, b: list, k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k."""
    return len(set(a[:k]) & set(b[:k])) / k if k else 0.0


def jaccard(a: list, b: list) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def rbo(a: list, b: list, p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap (Webber et al. 2010, eq. 32) of two rankings of equal depth.

    1 for identical rankings, 0 for disjoint ones; agreement at the top counts most.
    """
    k = min(len(a), len(b))
    if k == 0:
        return 1.0 if len(a) == len(b) else 0.0
    seen_a, seen_b, overlap, total = set(), set(), 0, 0.0
    for d in range(1, k + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += overlap / d * p**d
    return overlap / k * p**k + (1 - p) / p * total


def kendall_tau_union(a: list, b: list) -> float:
    """Kendall's tau-b of two top-k lists over their union; an item missing from a list ranks after its end.

    1 for identical rankings, -1 for the same items in reverse order; ties (items both lists miss) are
    handled as in tau-b.
    """
    items = list(dict.fromkeys([*a, *b]))
    if len(items) < 2:
        return 1.0
    ra = {x: i for i, x in enumerate(a)}
    rb = {x: i for i, x in enumerate(b)}
    pa = [ra.get(x, len(a)) for x in items]
    pb = [rb.get(x, len(b)) for x in items]
    conc = disc = tie_a = tie_b = 0
    n = len(items)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = pa[i] - pa[j], pb[i] - pb[j]
            if da == 0:
                tie_a += 1
            if db == 0:
                tie_b += 1
            if da * db > 0:
                conc += 1
            elif da * db < 0:
                disc += 1
    pairs = n * (n - 1) // 2
    denom = math.sqrt((pairs - tie_a) * (pairs - tie_b))
    return (conc - disc) / denom if denom else 0.0


def precision_at_k(rels: list[bool], k: int) -> float:
    return sum(rels[:k]) / k


def recall_at_k(rels: list[bool], k: int, n_relevant: int) -> float:
    return sum(rels[:k]) / n_relevant if n_relevant else 0.0


def average_precision_at_k(rels: list[bool], k: int, n_relevant: int) -> float:
    """trec_eval's map_cut_k: precision at each relevant hit within k, divided by all relevant items."""
    if not n_relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, r in enumerate(rels[:k], 1):
        if r:
            hits += 1
            total += hits / i
    return total / n_relevant


def ndcg_at_k(rels: list[bool], k: int, n_relevant: int) -> float:
    """Binary-gain nDCG@k (trec_eval's ndcg_cut_k)."""
    dcg = sum(1 / math.log2(i + 1) for i, r in enumerate(rels[:k], 1) if r)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(k, n_relevant) + 1))
    return dcg / ideal if ideal else 0.0
