"""How sure a comparison is: intervals over queries, paired tests between models, Holm, power, the verdict.

Pure functions over per-query values (one number per query and model). The statistics are scipy.stats':
``bootstrap`` for intervals (resampling queries) and ``permutation_test`` for the paired randomisation
(sign-flip) test, exact over all 2^n flips when n is small. Holm is written out here because scipy has no
multiple-comparison correction for p-values (statsmodels does; it is the tests' reference, not a dependency).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from .report.format import fmt_p

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95
ALPHA = 0.05
INTERVAL_METHOD = "BCa"  # scipy.stats.bootstrap method (bench/evidence_calibration.json: BCa covers better)
EXACT_MAX_N = 16  # up to 2^16 sign flips are enumerated exactly (scipy does so when n_resamples >= 2^n)

METHOD: dict = {
    "interval": f"bootstrap over queries ({INTERVAL_METHOD}, scipy.stats.bootstrap)",
    "resamples": DEFAULT_RESAMPLES,
    "confidence": CONFIDENCE,
    "seed": None,  # the experiment's seed, filled by method_record
    "test": "paired randomisation (sign-flip), two-sided",
    "test_library": "scipy.stats.permutation_test(permutation_type='samples')",
    "exact_up_to_n": EXACT_MAX_N,
    "correction": "Holm",
    "alpha": ALPHA,
}


def method_record(seed: int, resamples: int = DEFAULT_RESAMPLES) -> dict:
    """METHOD with the run's seed and resample count, as written into the results."""
    return METHOD | {"seed": seed, "resamples": resamples}


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def interval(
    values,
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    method: str = INTERVAL_METHOD,
) -> dict:
    """Seeded bootstrap interval of the mean over queries: {"mean", "low", "high", "n"}.

    Degenerate inputs (fewer than 2 values, or all equal) give low = high = mean (no resampling can vary them);
    an empty input gives mean None.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(v.mean())
    if v.size < 2 or np.ptp(v) == 0:
        return {"mean": mean, "low": mean, "high": mean, "n": int(v.size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (v,),
            _mean,
            n_resamples=resamples,
            confidence_level=confidence,
            method=method,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa on a nearly degenerate sample: no interval
        low = high = mean
    return {"mean": mean, "low": min(low, mean), "high": max(high, mean), "n": int(v.size)}


def sign_flip_p(diff, *, seed: int, resamples: int = DEFAULT_RESAMPLES) -> float:
    """Two-sided p of the paired randomisation test on per-query differences (exact for n <= EXACT_MAX_N)."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size < 2 or not np.any(d):
        return 1.0
    n_res = max(resamples, 2**d.size) if d.size <= EXACT_MAX_N else resamples
    res = stats.permutation_test(
        (d,),
        _mean,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=n_res,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, res.pvalue))


def paired(a, b, *, seed: int, resamples: int = DEFAULT_RESAMPLES, confidence: float = CONFIDENCE) -> dict:
    """Model a against model b on the same queries: {"diff": interval of mean(a - b), "p": two-sided p}.

    The interval resamples query indices and takes both models' values at them: the same as resampling the
    per-query differences a - b. The p-value flips the sign of each difference (swaps a and b per query).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same queries: {a.shape} vs {b.shape}")
    d = a - b
    return {
        "diff": interval(d, seed=seed, resamples=resamples, confidence=confidence),
        "p": sign_flip_p(d, seed=seed, resamples=resamples),
    }


def holm(pvalues) -> list[float]:
    """Holm step-down adjusted p-values, in the input order (family-wise error under any dependence)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return [float(x) for x in out]


def _z(alpha: float, power: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def detectable_difference(sd_diff: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """Smallest mean difference a paired two-sided test at ``alpha`` detects with ``power`` (normal
    approximation): (z_{1-alpha/2} + z_power) * sd / sqrt(n), about 2.8 * sd / sqrt(n)."""
    if n < 1:
        return math.inf
    return _z(alpha, power) * float(sd_diff) / math.sqrt(n)


def queries_needed(delta: float, sd_diff: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Queries a paired test needs to detect a mean difference ``delta`` with ``power``."""
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    return max(2, math.ceil((_z(alpha, power) * float(sd_diff) / delta) ** 2))


def pairwise(values: dict[str, np.ndarray], *, seed: int, resamples: int = DEFAULT_RESAMPLES) -> list[dict]:
    """Every pair of models (in the given order) on the queries both have: diff interval, p, Holm p."""
    names = list(values)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            va, vb = np.asarray(values[a], float), np.asarray(values[b], float)
            keep = ~(np.isnan(va) | np.isnan(vb))
            rows.append({"a": a, "b": b} | paired(va[keep], vb[keep], seed=seed, resamples=resamples))
    for r, ph in zip(rows, holm([r["p"] for r in rows]), strict=True):
        r["p_holm"] = ph
        r["significant"] = ph < ALPHA
    return rows


DELTAS = (0.02, 0.05, 0.1)  # differences the verdict says how many queries would detect
COSTS = {  # cost name -> (what it reads in comparison["cost"]["models"][m], lower is cheaper)
    "img_per_s": ("img_per_s_model_only", False),
    "query_p50": ("query_embed.p50_ms", True),
    "file_mb": ("file_mb", True),
}


def cost_values(cost_models: dict, cost: str) -> dict[str, float]:
    """model -> the chosen cost figure, from comparison["cost"]["models"] (models without it left out)."""
    path = COSTS[cost][0].split(".")
    out = {}
    for m, c in (cost_models or {}).items():
        v = c
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            out[m] = float(v)
    return out


def _cost_phrase(pick: str, best: str, cost: str, costs: dict[str, float], sizes: dict[str, float]) -> str:
    if pick not in costs or best not in costs:
        return ""
    x, y = costs[pick], costs[best]
    if cost == "img_per_s":
        text = f"{x / y:.1f}× faster" if y > 0 else f"{x:.0f} img/s"
    elif cost == "query_p50":
        text = f"query p50 {x:.1f} ms vs {y:.1f} ms"
    else:
        text = f"{x:.1f} MB vs {y:.1f} MB"
    if cost != "file_mb" and pick in sizes:
        text += f", {sizes[pick]:.1f} MB"
    return text


def _aligned(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each model's values on the queries every model has (NaN = no value for that query)."""
    arr = {m: np.asarray(v, dtype=np.float64) for m, v in values.items()}
    keep = np.logical_and.reduce([~np.isnan(v) for v in arr.values()])
    return {m: v[keep] for m, v in arr.items()}


def verdict(
    values: dict[str, np.ndarray],
    pairs: list[dict],
    *,
    metric: str,
    metric_label: str,
    cost: str = "img_per_s",
    cost_models: dict | None = None,
    deltas: tuple[float, ...] = DELTAS,
) -> dict:
    """The best model on ``metric``, those tied with it (Holm p >= ALPHA in ``pairs``, the all-pairs table of
    ``pairwise``), the cheapest of best + tied on ``cost``, and what this many queries can detect."""
    vals = _aligned(values)
    models = [m for m in vals if vals[m].size]
    n = int(vals[models[0]].size) if models else 0
    costs = cost_values(cost_models or {}, cost)
    sizes = cost_values(cost_models or {}, "file_mb")
    out = {"metric": metric, "metric_label": metric_label, "cost": cost, "n": n}
    if not models:
        return out | {
            "best": None,
            "tied": [],
            "pick": None,
            "separable": False,
            "detectable": None,
            "queries_for": {},
            "text": f"No {metric_label} values: no verdict.",
        }
    means = {m: float(vals[m].mean()) for m in models}
    best = max(models, key=lambda m: round(means[m], 9))  # first listed wins a tie (float noise ignored)
    holm_p = {}
    for r in pairs:
        if best in (r["a"], r["b"]):
            holm_p[r["b"] if r["a"] == best else r["a"]] = r["p_holm"]
    tied = [m for m in models if m != best and holm_p.get(m, 1.0) >= ALPHA]
    group = [best, *tied]
    lower = COSTS[cost][1]
    pick = best
    if all(m in costs for m in group):
        pick = min(group, key=lambda m: (costs[m] if lower else -costs[m], group.index(m)))
    others = tied or sorted((m for m in models if m != best), key=lambda m: -means[m])[:1]
    sd = max((float(np.std(vals[best] - vals[m], ddof=1)) if n > 1 else 0.0 for m in others), default=0.0)
    detectable = detectable_difference(sd, n) if others else None
    queries_for = {str(d): queries_needed(d, sd) for d in deltas} if others and sd > 0 else {}
    out |= {
        "best": best,
        "tied": tied,
        "pick": pick,
        "separable": bool(others) and not tied,
        "detectable": detectable,
        "queries_for": queries_for,
        "means": means,
    }
    if len(models) == 1:
        return out | {"text": f"{best}: {metric_label} {means[best]:.3f} (only one model: nothing to compare)."}
    if not tied:
        worst_p = max(holm_p.get(m, 1.0) for m in models if m != best)
        text = (
            f"{best} is the best on {metric_label} ({means[best]:.3f}): better than every other model "
            f"(Holm-adjusted p {fmt_p(worst_p) if worst_p < 0.001 else '≤ ' + fmt_p(worst_p)})."
        )
        return out | {"text": text}
    if pick != best:
        phrase = _cost_phrase(pick, best, cost, costs, sizes)
        text = (
            f"{pick} — tied with the best, {best} ({metric_label} {means[pick]:.3f} vs {means[best]:.3f}, "
            f"p = {fmt_p(holm_p.get(pick, 1.0))}){', ' + phrase if phrase else ''}."
        )
    else:
        cheapest = " and the cheapest of those tied with it" if all(m in costs for m in group) else ""
        text = f"{best} is the best on {metric_label} ({means[best]:.3f}){cheapest}."
    rest = [m for m in tied if m != pick]
    if rest:
        text += f" {'Also tied' if pick != best else 'Tied'} with the best: {', '.join(rest)}."
    if sd > 0:
        d = deltas[len(deltas) // 2]
        text += (
            f" Too few queries to separate them: with {n} queries this run detects differences of "
            f"{detectable:.3f} or more (80% power, alpha {ALPHA}); {d} would need {queries_for[str(d)]} queries."
        )
    else:
        text += " They give the same value on every query."
    return out | {"text": text}
