"""Which images an experiment queries: a seeded sample of catalogued images, a folder, or listed paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..embed.scan import scan_folder
from ..errors import ConfigError
from .config import DEFAULT_QUERY_SAMPLE, Experiment


def select_queries(exp: Experiment, catalogued: list[Path]) -> list[Path]:
    """The query paths; a sample draws (seeded) from images the ingest catalogued, never unreadable ones."""
    q = exp.queries
    if exp.ground_truth is not None and not (q.sample or q.folder or q.paths):
        return judged_queries(exp, catalogued)
    if q.sampled:
        if q.sample == "all":  # every catalogued image is a query
            return sorted(catalogued)
        n = q.sample or min(DEFAULT_QUERY_SAMPLE, len(catalogued))
        if n > len(catalogued):
            raise ConfigError(f"queries.sample = {n} but the dataset has {len(catalogued)} readable images")
        rng = np.random.default_rng(exp.seed)
        ordered = sorted(catalogued)
        picks = sorted(rng.choice(len(ordered), size=n, replace=False).tolist())
        return [ordered[i] for i in picks]
    if q.folder:
        return scan_folder(q.folder, exp.dataset.extensions).files
    return [p.expanduser().resolve() for p in q.paths or []]


def judged_queries(exp: Experiment, catalogued: list[Path]) -> list[Path]:
    """With ``ground_truth.qrels`` and no query source named: the judged queries that are catalogued images."""
    from ..ids import image_id
    from .qrels import read_qrels_ids

    judged = set(read_qrels_ids(exp.ground_truth.qrels))
    picks = [p for p in sorted(catalogued) if str(image_id(p)) in judged]
    if not picks:
        raise ConfigError(
            f"none of the {len(judged)} judged queries in {exp.ground_truth.qrels} is a catalogued image under "
            f"{exp.dataset.root}; judge queries of this dataset, or name the queries (queries.paths or folder)"
        )
    return picks


def query_rows(queries: list[Path], ok: set[str], catalogued_ids: set[int], exp: Experiment) -> list[dict]:
    """One row per query that could be embedded: its id, label and whether it is excluded from its own hits."""
    from ..ids import image_id

    rows = []
    for q in queries:
        if str(q) not in ok:
            continue
        qid = image_id(q)
        rows.append(
            {
                "query": str(q),
                "id": qid,
                "label": q.parent.name if exp.dataset.labels else "",
                "in_dataset": qid in catalogued_ids,
                "excluded": exp.queries.exclude_self and qid in catalogued_ids,
            }
        )
    return rows


REMOVED = "removed since the last run (no longer in the dataset folder; pruned from the catalogue and every collection)"


def skipped_queries(exp: Experiment, failed: list[tuple[str, str]], removed: list[str]) -> list[dict]:
    """The queries that could not be run, with why: a query file deleted since the last run (``removed``, pruned
    by this run's ingest) says so, and so does a judged query whose image was deleted (it is no longer drawn)."""
    gone = set(removed)
    rows = [{"path": p, "reason": REMOVED if str(p) in gone else r} for p, r in failed]
    q = exp.queries
    if removed and exp.ground_truth is not None and not (q.sample or q.folder or q.paths):
        from ..ids import image_id
        from .qrels import read_qrels_ids

        judged, seen = set(read_qrels_ids(exp.ground_truth.qrels)), {r["path"] for r in rows}
        rows += [{"path": p, "reason": REMOVED} for p in removed if str(image_id(p)) in judged and p not in seen]
    return rows
