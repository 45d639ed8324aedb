"""Agreement between judges: Cohen's kappa (scikit-learn) on the pairs two judges both marked.

Per pair of judges: ``sklearn.metrics.cohen_kappa_score`` of their grades on their shared (query, doc) pairs,
unweighted (every grade is its own category). Overall: the mean of the pairwise kappas weighted by their numbers
of shared pairs. Fleiss' kappa (statsmodels) would be the textbook "overall", but it needs every pair rated by
the same number of judges; judges here share some pools and not others, and the weighted mean of Cohen's kappas
uses every shared pair without dropping the pairs a third judge skipped. With two judges the overall equals
their kappa.

Kappa is undefined when the two judges' grades leave no room for chance agreement (both gave one and the same
grade on every shared pair: 0/0); such a pair of judges reports ``kappa: None`` with its observed agreement and
a reason, and is left out of the overall. No shared pairs: ``kappa: None`` and the reason, never NaN.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from pathlib import Path

from ..errors import ConfigError
from .qrels import JudgmentStore, judges_path


def _kappa(a: list[int], b: list[int]) -> float | None:
    try:
        from sklearn.metrics import cohen_kappa_score
    except ImportError:  # pragma: no cover - scikit-learn comes with the serve extra
        raise ConfigError(
            "agreement needs scikit-learn: pip install 'onnx-search[serve]' (or pip install scikit-learn)"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0/0 is reported as None below, not as a RuntimeWarning
        k = float(cohen_kappa_score(a, b))
    return None if math.isnan(k) else k


def agreement(store_or_path: JudgmentStore | str | Path) -> dict:
    """Cohen's kappa per pair of judges and overall, on shared pairs.

    Returns ``{"judges": [names], "pairs": [{"judges": [a, b], "shared": n, "kappa": float|None,
    "observed": share of shared pairs with the same grade|None, "reason": str|None}], "overall": {"kappa":
    float|None, "shared": total shared pairs behind it, "rule": str, "reason": str|None}, "conflicts": n}``.
    """
    store = store_or_path if isinstance(store_or_path, JudgmentStore) else JudgmentStore(store_or_path)
    marks = store.marks()
    judges = sorted({j for js in marks.values() for j in js})
    pairs = []
    for a, b in combinations(judges, 2):
        shared = sorted(p for p, js in marks.items() if a in js and b in js)
        ga = [marks[p][a] for p in shared]
        gb = [marks[p][b] for p in shared]
        row = {"judges": [a, b], "shared": len(shared), "kappa": None, "observed": None, "reason": None}
        if not shared:
            row["reason"] = "no shared pairs: deal the same pools to both judges"
        else:
            row["observed"] = sum(x == y for x, y in zip(ga, gb, strict=True)) / len(shared)
            row["kappa"] = _kappa(ga, gb)
            if row["kappa"] is None:
                row["reason"] = "both judges gave one and the same grade on every shared pair: kappa is undefined"
        pairs.append(row)
    scored = [r for r in pairs if r["kappa"] is not None]
    weight = sum(r["shared"] for r in scored)
    overall = {
        "kappa": sum(r["kappa"] * r["shared"] for r in scored) / weight if weight else None,
        "shared": weight,
        "rule": "mean of the pairwise Cohen's kappas, weighted by shared pairs",
        "reason": None,
    }
    if not weight:
        overall["reason"] = (
            "fewer than two judges" if len(judges) < 2 else "no pair of judges with a defined kappa on shared pairs"
        )
    conflicts = sum(1 for js in marks.values() if len(set(js.values())) > 1)
    return {"judges": judges, "pairs": pairs, "overall": overall, "conflicts": conflicts}


def format_agreement(result: dict) -> str:
    """The text ``onnx-search judgments agreement`` prints: one line per pair of judges, then the overall."""

    def k(v: float | None) -> str:
        return "undefined" if v is None else f"{v:.3f}"

    lines = [f"judges: {', '.join(result['judges']) or 'none'}"]
    for r in result["pairs"]:
        a, b = r["judges"]
        line = f"{a} vs {b}: kappa {k(r['kappa'])} on {r['shared']} shared pairs"
        if r["observed"] is not None:
            line += f", same grade on {r['observed']:.0%}"
        if r["reason"]:
            line += f" ({r['reason']})"
        lines.append(line)
    o = result["overall"]
    tail = f" ({o['reason']})" if o["reason"] else f" ({o['rule']})"
    lines.append(f"overall: kappa {k(o['kappa'])} on {o['shared']} shared pairs{tail}")
    n = result["conflicts"]
    lines.append(f"conflicts: {n} pairs whose judges disagree (the qrels file holds the lower median)")
    return "\n".join(lines)


def judges_record(qrels_file: str | Path | None) -> dict | None:
    """What a run scored on ``qrels_file`` reports about its judges: ``agreement`` plus ``"sidecar"`` (the
    record's file name), or None when the file has no judges record beside it. Without scikit-learn the record
    holds the judges and ``"error"`` (the line saying what to install) instead of kappas."""
    if qrels_file is None or not judges_path(qrels_file).is_file():
        return None
    store = JudgmentStore(qrels_file)
    try:
        out = agreement(store)
    except ConfigError as e:
        out = {"judges": store.judges(), "error": str(e)}
    return out | {"sidecar": judges_path(qrels_file).name}


def summary_line(record: dict | None) -> str | None:
    """One line on how far the judges agree, for summary.md and the console (None with fewer than two judges)."""
    if not record or len(record.get("judges") or []) < 2:
        return None
    who = f"Judges {', '.join(record['judges'])} ({record.get('sidecar', 'judges record')})"
    if record.get("error"):
        return f"{who}: agreement not computed: {record['error']}"

    def k(v: float | None) -> str:
        return "undefined" if v is None else f"{v:.3f}"

    o = record["overall"]
    pairs = "; ".join(f"{r['judges'][0]} vs {r['judges'][1]} {k(r['kappa'])} on {r['shared']}" for r in record["pairs"])
    overall = f"{k(o['kappa'])} on {o['shared']} shared pairs" + (f" ({o['reason']})" if o["reason"] else "")
    n = record["conflicts"]
    return (
        f"{who}: Cohen's kappa {overall}; per pair of judges (kappa on shared pairs): {pairs}; "
        f"{n} open conflict{'s' if n != 1 else ''} (pairs whose judges disagree; the qrels hold the lower median)."
    )
