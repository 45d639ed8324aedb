"""Duplicates in a run's folder: exact ones by content hash, near ones by a stated rule on a trained model's
vectors, grouped as connected components; the map of what counts as the same picture for the copies ground truth.

Rules:
- exact: two files with one content hash (the catalogue's BLAKE2b-128 of the bytes), always;
- near: an image and one of its ``NEAR_NEIGHBOURS`` nearest neighbours (its own stored vector searched in the
  collection) with cosine >= ``NEAR_COSINE``, with the first model whose weights are trained. Random weights
  say nothing about what a picture shows, so when every model has them near duplicates are not sought.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..store.catalog import ImageRecord
from ..store.stores import Stores
from ..vectors import to_cosine

NEAR_COSINE = 0.97
NEAR_NEIGHBOURS = 5
SEARCH_BATCH = 256  # query vectors per search call
FILE = "duplicates.json"


@dataclass
class DuplicateReport:
    """Groups of ids (each sorted, groups ordered by their first id) and the rule that made them."""

    images: int
    exact: list[list[int]]
    near: list[list[int]] = field(default_factory=list)
    model: str | None = None  # the model whose vectors the near rule used
    near_skipped: str | None = None  # why near duplicates were not sought
    near_cosine: dict[int, float] = field(default_factory=dict)  # per near group (by first id): weakest link kept
    threshold: float = NEAR_COSINE
    neighbours: int = NEAR_NEIGHBOURS

    def rule(self) -> str:
        exact = "exact: same content hash"
        if self.model is None:
            return f"{exact}; near: not sought ({self.near_skipped})"
        return (
            f"{exact}; near: cosine >= {self.threshold} to one of its {self.neighbours} nearest neighbours "
            f"with {self.model}"
        )

    def same_image(self) -> dict[int, set[int]]:
        """id -> every id that counts as the same picture (itself included), for ids in any group."""
        out: dict[int, set[int]] = {}
        for group in _merge([*self.exact, *self.near]):
            members = set(group)
            for i in group:
                out[i] = members
        return out

    def as_dict(self, records: dict[int, ImageRecord]) -> dict:
        """duplicates.json: the rule, the counts, each group with its paths."""

        def paths(ids: list[int]) -> list[str]:
            return [records[i].path if i in records else "" for i in ids]

        return {
            "rule": self.rule(),
            "images": self.images,
            "model": self.model,
            "near_cosine": self.threshold,
            "neighbours": self.neighbours,
            "near_skipped": self.near_skipped,
            "counts": self.counts(),
            "exact": [
                {"sha": records[g[0]].sha if g[0] in records else "", "ids": g, "paths": paths(g)} for g in self.exact
            ],  # fmt: skip
            "near": [{"ids": g, "paths": paths(g), "min_cosine": self.near_cosine.get(g[0])} for g in self.near],
        }

    def counts(self) -> dict:
        return {
            "exact_groups": len(self.exact),
            "exact_files": sum(len(g) for g in self.exact),
            "near_groups": len(self.near),
            "near_files": sum(len(g) for g in self.near),
        }


def _groups(n: int, kind: str) -> str:
    return f"{n} {kind} group" + ("" if n == 1 else "s")


def summary_line(dup: dict | None) -> str:
    """One line of summary.md from duplicates.json's content."""
    if not dup:
        return ""
    c = dup["counts"]
    return (
        f"Duplicates ({FILE}): {_groups(c['exact_groups'], 'exact')} ({c['exact_files']} files), "
        f"{_groups(c['near_groups'], 'near')} ({c['near_files']} files); rule: {dup['rule']}. The copies ground truth "
        "counts the original or any file in its group as a hit."
    )


def exact_groups(records: dict[int, ImageRecord]) -> list[list[int]]:
    """Ids that share a content hash, two or more to a group."""
    by_sha: dict[str, list[int]] = defaultdict(list)
    for i, rec in records.items():
        if rec.sha:
            by_sha[rec.sha].append(i)
    return sorted(sorted(g) for g in by_sha.values() if len(g) > 1)


def trained_model(weights: dict[str, str | None]) -> str | None:
    """The first model (in the run's order) whose weights are not random; ``weights``: model -> its weights."""
    return next((m for m, w in weights.items() if not str(w or "").startswith("random")), None)


def near_pairs(
    stores: Stores, model: str, ids: list[int], threshold: float = NEAR_COSINE, k: int = NEAR_NEIGHBOURS
) -> list[tuple[int, int, float]]:
    """(a, b, cosine) with a < b, both in ``ids``, b among a's ``k`` nearest (or a among b's) at cosine >=
    ``threshold``; each image searched with its own stored vector."""
    wanted = set(ids)
    found: dict[tuple[int, int], float] = {}
    ordered = sorted(ids)
    for s in range(0, len(ordered), SEARCH_BATCH):
        stored = stores.fetch_present(model, ordered[s : s + SEARCH_BATCH])
        qids = [i for i in ordered[s : s + SEARCH_BATCH] if i in stored]
        if not qids:
            continue
        rows = stores.search(model, np.stack([stored[i] for i in qids]), k, exclude=qids)
        for a, row in zip(qids, rows, strict=True):
            for b, d in row:
                cos = float(to_cosine(d, stores.index.metric))
                if b in wanted and cos >= threshold:
                    key = (min(a, b), max(a, b))
                    found[key] = max(cos, found.get(key, -1.0))
    return sorted((a, b, c) for (a, b), c in found.items())


def find_duplicates(
    stores: Stores, records: dict[int, ImageRecord], weights: dict[str, str | None], collections: set[str]
) -> DuplicateReport:
    """The duplicate report over ``records`` (the run's catalogued images); ``weights``: model -> weights in the
    run's order, ``collections``: the models whose collection holds the images."""
    exact = exact_groups(records)
    model = trained_model({m: w for m, w in weights.items() if m in collections})
    if model is None:
        why = "every model has random weights" if weights else "no model ran"
        return DuplicateReport(len(records), exact, near_skipped=why)
    pairs = near_pairs(stores, model, list(records))
    near, weakest = near_groups(exact, pairs, records)
    return DuplicateReport(len(records), exact, near, model, near_cosine=weakest)


def near_groups(
    exact: list[list[int]], pairs: list[tuple[int, int, float]], records: dict[int, ImageRecord]
) -> tuple[list[list[int]], dict[int, float]]:
    """Connected components of the near pairs (exact groups joined in), kept when they hold two or more
    distinct contents; with each group's weakest near link."""
    groups = _merge([*exact, *([a, b] for a, b, _ in pairs)])
    shas = {i: records[i].sha if i in records else str(i) for g in groups for i in g}
    near = [g for g in groups if len({shas[i] for i in g}) > 1]
    weakest = {}
    for g in near:
        members = set(g)
        weakest[g[0]] = round(min(c for a, b, c in pairs if a in members and b in members), 6)
    return near, weakest


def _merge(groups: list[list[int]]) -> list[list[int]]:
    """Connected components of the graph whose edges join each group's members (union-find by scipy)."""
    nodes = sorted({i for g in groups for i in g})
    if not nodes:
        return []
    index = {i: n for n, i in enumerate(nodes)}
    rows = [index[g[0]] for g in groups for _ in g]
    cols = [index[i] for g in groups for i in g]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=False)
    out: dict[int, list[int]] = defaultdict(list)
    for i, lab in zip(nodes, label, strict=True):
        out[int(lab)].append(i)
    return sorted(sorted(g) for g in out.values() if len(g) > 1)
