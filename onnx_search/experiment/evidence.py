"""How sure a comparison is: intervals over queries, paired tests between models, Holm, power, the verdict.

Pure functions over per-query values (one number per query and model), optionally grouped into clusters (copies of
one original, several queries from one source): with ``groups`` the independent unit is the cluster.

- Intervals: ``scipy.stats.bootstrap`` (BCa) over queries; with groups, over clusters resampled with their members
  (the statistic is the mean of every value in the drawn clusters, so the interval is for the same mean). A metric
  with known bounds (every quality and agreement figure lies in [0, 1]) below SCORE_BELOW units gets the
  quasi-binomial score interval instead (variance phi * mu * (1 - mu), Student t on units - 1 degrees of freedom):
  a bootstrap or a t interval of a few skewed, bounded values is too short on the side away from the bound
  (bench/evidence_calibration.json); all values at a bound give the exact bound of a [0, 1] mean.
- Pair intervals that agree with the decision (holm_levels): the sign-flip test inverted (the shifts of the mean
  difference the test keeps, on the same signs as the p), at alpha / a for the a pairs Holm does not separate and at
  alpha / m for those it separates, cut at 0 where only Holm's step-down separates them: an interval leaves out 0
  exactly when Holm separates the pair.
- Tests: the paired randomisation (sign-flip) test, two-sided, on |sum of differences|; with groups the sign of each
  cluster's total difference is flipped (the per-cluster mean difference weighted by its size). It is written out
  here, vectorised over every pair of a family at once (one sign matrix, one matrix product), because
  ``scipy.stats.permutation_test`` takes one pair per call and the family's resample count grows with the number
  of pairs; the tests check it against full enumeration and against scipy. Exact over all 2^u flips for u <= 16
  units (or when 2^u is no more than the Monte-Carlo count); otherwise Monte-Carlo with
  B = max(resamples, 20·m/alpha) flips for a family of m pairs, p = (hits + 1) / (B + 1), so the smallest Holm-
  adjusted p, m / (B + 1), is alpha / 20 or less; above MAX_FLIPS the asymptotic (normal) sign-flip p.
- Holm across the pairs of a metric (written out: scipy has no multiple-comparison correction; statsmodels is the
  tests' reference, not a dependency).
- Power advice at Holm's worst case, alpha / m, the level the smallest p must pass.
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
T_BELOW = 10  # fewer units, metric without bounds: Student t interval (a bootstrap of 4-6 values covers 77-89%)
SCORE_BELOW = 20  # fewer units, bounded metric: the quasi-binomial score interval (t covers ~91% at n 4, BCa 88-92%
# at n 10-15 on skewed P@10; the score interval 94-96%: bench/evidence_calibration.json)
EXACT_MAX_N = 16  # up to 2^16 sign flips are enumerated exactly
FLOOR_FACTOR = 20  # Monte-Carlo flips >= FLOOR_FACTOR * m / alpha: the smallest Holm-adjusted p is <= alpha / 20
MAX_FLIPS = 2_000_000  # a family needing more flips than this gets the asymptotic sign-flip p
_CHUNK = 1 << 22  # matrix elements per chunk of sign flips (32 MB of float64)

METHOD: dict = {
    "interval": f"bootstrap over queries ({INTERVAL_METHOD}, scipy.stats.bootstrap)",
    "resamples": DEFAULT_RESAMPLES,
    "confidence": CONFIDENCE,
    "small_n_interval": f"quasi-binomial score interval (variance phi·mu·(1 - mu), Student t on units - 1 df, "
    f"cluster-robust with groups) below {SCORE_BELOW} units for figures in [0, 1]; all values at 0 or 1: the exact "
    "bound of a [0, 1] mean",
    "pair_interval": "the sign-flip test inverted: at alpha/a for the a pairs Holm does not separate, at alpha/m "
    "(Bonferroni) for the pairs it separates, cut at 0 (open) where only Holm's step-down separates them; an "
    "interval leaves out 0 exactly when Holm separates the pair",
    "seed": None,  # the experiment's seed, filled by method_record
    "test": "paired randomisation (sign-flip), two-sided",
    "test_library": "numpy, vectorised over the pairs (checked against scipy.stats.permutation_test)",
    "exact_up_to_n": EXACT_MAX_N,
    "flips_rule": f"max(resamples, {FLOOR_FACTOR}·m/alpha) Monte-Carlo flips for m pairs, p = (hits + 1)/(flips + 1);"
    f" exact over all 2^n flips when n <= {EXACT_MAX_N} or 2^n <= that count",
    "correction": "Holm",
    "alpha": ALPHA,
    "unit": "query",
}


def flips_for(pairs: int, resamples: int = DEFAULT_RESAMPLES, alpha: float = ALPHA) -> int:
    """Monte-Carlo sign flips for a family of ``pairs`` tests: the smallest Holm-adjusted p is <= alpha / 20."""
    return max(int(resamples), math.ceil(FLOOR_FACTOR * max(1, int(pairs)) / alpha))


def flip_kind(units: int, flips: int) -> str:
    """How the p of ``units`` independent units is computed with ``flips`` Monte-Carlo flips."""
    if units <= EXACT_MAX_N or (units < 60 and 2**units <= flips):
        return "exact"
    return "asymptotic" if flips > MAX_FLIPS else "monte-carlo"


def p_floor(units: int, flips: int) -> float:
    """The smallest two-sided p the test can give: 2/2^u exact, 1/(flips + 1) Monte-Carlo, 0 asymptotic."""
    if units < 1:
        return 1.0
    kind = flip_kind(units, flips)
    return min(1.0, 2.0 / 2.0**units) if kind == "exact" else 1.0 / (flips + 1) if kind == "monte-carlo" else 0.0


def units_to_separate(pairs: int, alpha: float = ALPHA) -> int:
    """The fewest units at which the smallest exact p, times Holm's ``pairs``, is below ``alpha``."""
    return math.floor(math.log2(2 * max(1, pairs) / alpha)) + 1


def method_record(
    seed: int, resamples: int = DEFAULT_RESAMPLES, *, models: int | None = None, unit: str = "query"
) -> dict:
    """METHOD with the run's seed, resample count and unit; with ``models``, the flips of a family of all their
    pairs and the smallest attainable p, raw and Holm-adjusted (Monte-Carlo; an exact test's floor is 2/2^n)."""
    out = METHOD | {"seed": seed, "resamples": resamples, "unit": unit}
    if unit != "query":
        out["interval"] = (
            f"cluster bootstrap over {unit}s, each with its members ({INTERVAL_METHOD}, scipy.stats.bootstrap)"
        )
        out["test"] += f", signs flipped per {unit}"
    if models is not None and models > 1:
        m = models * (models - 1) // 2
        b = flips_for(m, resamples)
        out |= {"pairs": m, "flips": b, "p_floor": 1.0 / (b + 1), "holm_floor": min(1.0, m / (b + 1))}
    return out


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _ratio(s: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(s, axis=axis) / np.sum(c, axis=axis)


def _codes(groups, size: int) -> np.ndarray:
    """Cluster labels as 0..G-1 codes aligned with the values."""
    g = np.asarray(groups)
    if g.shape != (size,):
        raise ValueError(f"groups must give one cluster label per value: {g.shape} labels for {size} values")
    return np.unique(g, return_inverse=True)[1].reshape(-1)


def _unit(groups, unit: str | None) -> str:
    return unit or ("query" if groups is None else "original")


def _t_interval(v: np.ndarray, codes: np.ndarray | None, confidence: float) -> tuple[float, float]:
    """Student t interval of the mean of ``v``; with clusters, the cluster-robust (linearised ratio) standard error
    on G - 1 degrees of freedom."""
    codes = np.arange(v.size) if codes is None else codes
    sums, counts = np.bincount(codes, weights=v), np.bincount(codes).astype(np.float64)
    g, mean = sums.size, v.mean()
    se = math.sqrt(g / (g - 1) * float(np.sum((sums - mean * counts) ** 2))) / counts.sum()
    half = float(stats.t.ppf(0.5 + confidence / 2, g - 1)) * se
    return float(mean - half), float(mean + half)


def _robust_var(v: np.ndarray, codes: np.ndarray | None) -> tuple[float, int]:
    """Variance of the mean of ``v`` (cluster-robust with clusters) and the number of units."""
    codes = np.arange(v.size) if codes is None else codes
    sums, counts = np.bincount(codes, weights=v), np.bincount(codes).astype(np.float64)
    g = sums.size
    return g / (g - 1) * float(np.sum((sums - v.mean() * counts) ** 2)) / counts.sum() ** 2, g


def _score_interval(
    v: np.ndarray, codes: np.ndarray | None, confidence: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """Quasi-binomial score interval of the mean of values in ``bounds``: the mu with (m - mu)^2 <= t^2 * var(m) *
    mu (1 - mu) / (m (1 - m)) on the [0, 1] scale (the variance follows the mean as a binomial's does, scaled by the
    dispersion seen), t on units - 1 degrees of freedom. Near a bound the interval reaches further away from it."""
    lo, hi = bounds
    x = (v - lo) / (hi - lo)
    m = float(x.mean())
    var, g = _robust_var(x, codes)
    c = float(stats.t.ppf(0.5 + confidence / 2, g - 1)) ** 2 * var / (m * (1 - m))
    a, b = 1 + c, 2 * m + c  # (1 + c) mu^2 - (2 m + c) mu + m^2 <= 0
    root = math.sqrt(max(b * b - 4 * a * m * m, 0.0))
    return float(lo + (hi - lo) * (b - root) / (2 * a)), float(lo + (hi - lo) * (b + root) / (2 * a))


def _bound_interval(mean: float, units: int, confidence: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """Every value at a bound of a metric in ``bounds``: the exact interval of the mean. For values in [0, 1] with
    mean mu, P(a unit is 1) <= mu, so all u units at 1 has probability <= mu^u: mu >= ((1 - confidence)/2)^(1/u)
    (Clopper-Pearson at u of u); the same from the other bound."""
    lo, hi = bounds
    q = (hi - lo) * ((1 - confidence) / 2) ** (1 / units)
    return (float(lo + q), float(hi)) if mean >= hi else (float(lo), float(hi - q))


def interval(
    values,
    *,
    seed: int,
    groups=None,
    unit: str | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    method: str = INTERVAL_METHOD,
    bounds: tuple[float, float] | None = None,
) -> dict:
    """Seeded bootstrap interval of the mean: {"mean", "low", "high", "n", "unit", "units"}.

    ``bounds``: the range every value of the metric lies in (for example (0, 1)); below SCORE_BELOW units the
    interval is then the quasi-binomial score interval, and values all at one bound get the exact bound interval.
    Without bounds, Student t below T_BELOW units.

    ``groups`` (one cluster label per value): clusters are resampled with their members and the statistic is the mean
    of every value drawn, so "mean" stays the mean of all values. Degenerate inputs (fewer than 2 units, or all values
    equal) give low = high = mean and a "note" saying why; an empty input gives mean None.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(v)
    codes = None if groups is None else _codes(groups, v.size)[keep]
    v = v[keep]
    out = {"unit": _unit(groups, unit)}
    if v.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0} | out | {"units": 0}
    mean = float(v.mean())
    if codes is not None:
        codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
    units = int(v.size if codes is None else codes.max() + 1)
    out |= {"units": units}
    equal = np.ptp(v) <= 1e-12 * max(1.0, abs(mean))  # float noise of a - b on equal differences included
    if bounds is not None:
        slack = 1e-9 * (bounds[1] - bounds[0])  # float noise of a metric at its bound (an nDCG of 1.0000000002)
        if v.min() < bounds[0] - slack or v.max() > bounds[1] + slack:
            raise ValueError(f"values outside the metric's bounds {tuple(bounds)}: {v.min()} to {v.max()}; "
                             "pass the metric's real bounds, or none")  # fmt: skip
        v = np.clip(v, *bounds)
        mean = float(v.mean())
    if bounds is not None and equal and mean in bounds and units >= 1 and method == INTERVAL_METHOD:
        low, high = _bound_interval(mean, units, confidence, bounds)
        return {"mean": mean, "low": low, "high": high, "n": int(v.size)} | out
    if units < 2 or equal:
        note = "all equal" if v.size > 1 and equal else f"one {out['unit']}"
        return {"mean": mean, "low": mean, "high": mean, "n": int(v.size)} | out | {"note": note}
    if bounds is not None and units < SCORE_BELOW and method == INTERVAL_METHOD:
        low, high = _score_interval(v, codes, confidence, bounds)
        return {"mean": mean, "low": min(low, mean), "high": max(high, mean), "n": int(v.size)} | out
    if units < T_BELOW and method == INTERVAL_METHOD:
        low, high = _t_interval(v, codes, confidence)
        return {"mean": mean, "low": min(low, mean), "high": max(high, mean), "n": int(v.size)} | out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # BCa's acceleration on a nearly degenerate sample: NaN
        common = dict(n_resamples=resamples, confidence_level=confidence, method=method, vectorized=True,
                      rng=np.random.default_rng(seed))  # fmt: skip
        if codes is None:
            res = stats.bootstrap((v,), _mean, **common)
        else:
            sums, counts = np.bincount(codes, weights=v), np.bincount(codes).astype(np.float64)
            res = stats.bootstrap((sums, counts), _ratio, paired=True, **common)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa on a nearly degenerate sample: no interval
        return {"mean": mean, "low": mean, "high": mean, "n": int(v.size)} | out | {"note": "no interval"}
    return {"mean": mean, "low": min(low, mean), "high": max(high, mean), "n": int(v.size)} | out


def _sign_chunks(u: int, kind: str, flips: int, seed: int):
    """The sign matrices of the test, chunk by chunk: every one of the 2^u patterns (exact), or ``flips`` random
    ones from ``seed`` (Monte-Carlo). flip_pvalues and flip_intervals draw the same signs."""
    step = max(1, _CHUNK // max(u, 1))
    if kind == "exact":
        total, bits = 2**u, np.arange(u, dtype=np.int64)
        for start in range(0, total, step):
            k = np.arange(start, min(total, start + step), dtype=np.int64)
            yield 1.0 - 2.0 * ((k[:, None] >> bits) & 1)
        return
    rng = np.random.default_rng(seed)
    for start in range(0, flips, step):
        yield rng.integers(0, 2, size=(min(step, flips - start), u), dtype=np.int8).astype(np.float64) * 2 - 1


def flip_pvalues(diffs, *, seed: int, flips: int) -> tuple[np.ndarray, str]:
    """Two-sided sign-flip p of each column of ``diffs`` (units × pairs; one row per independent unit), with
    one sign matrix shared by the columns: exact over all 2^u flips, Monte-Carlo or asymptotic (see flip_kind)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d.reshape(d.shape[0], -1)
    u, ncol = d.shape
    obs = np.abs(d.sum(axis=0))
    tol = 1e-9 * np.abs(d).sum(axis=0) + 1e-12  # float noise in sums of the same values in another order
    kind = flip_kind(u, flips)
    if u == 0:
        return np.ones(ncol), kind
    if kind == "asymptotic":
        scale = np.sqrt((d**2).sum(axis=0))
        z = np.divide(obs, scale, out=np.zeros(ncol), where=scale > 0)
        return np.minimum(1.0, 2 * stats.norm.sf(z)), kind
    hits = np.zeros(ncol)
    for signs in _sign_chunks(u, kind, flips, seed):
        hits += (np.abs(signs @ d) >= obs - tol).sum(axis=0)
    if kind == "exact":
        return np.minimum(1.0, hits / 2**u), kind
    return np.minimum(1.0, (hits + 1) / (flips + 1)), kind


BISECTIONS = 34  # halvings of the search span for an interval's end: 2 / 2^34 ~ 1e-10 on a [-1, 1] difference


def flip_intervals(
    totals, sizes, p0, *, seed: int, flips: int, level: float, span: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The sign-flip test inverted: for each column of ``totals`` (units × pairs, per-unit sums of the differences;
    ``sizes``: values per unit), the shifts delta of the mean difference the test at ``level`` does not reject,
    {delta : p(delta) >= level}, p(delta) being the p of the totals shifted by delta per value (t - delta * size)
    with the same signs as flip_pvalues. ``p0``: each column's reported p at delta = 0, so that the interval leaves
    out 0 exactly when p0 < level. Each end is found by bisection between a shift inside (the estimate, whose p is
    1, or 0 when p0 >= level) and one outside (0 when p0 < level, else +-``span``); an end whose p stays >= level
    out to the span is the span's end (too few units to bound the difference at this level)."""
    t = np.asarray(totals, dtype=np.float64)
    t = t.reshape(t.shape[0], -1)
    c = np.asarray(sizes, dtype=np.float64).reshape(-1)
    u, ncol = t.shape
    n = float(c.sum())
    est = t.sum(axis=0) / n
    p0 = np.asarray(p0, dtype=np.float64).reshape(-1)
    kind = flip_kind(u, flips)
    low, high = np.full(ncol, -span), np.full(ncol, span)
    width = max(1, (1 << 22) // max(1, 2**u if kind == "exact" else flips))
    for cols in (range(j, min(ncol, j + width)) for j in range(0, ncol, width)):
        cols = np.asarray(list(cols))
        tb = t[:, cols]
        st, sc = np.zeros((0, len(cols))), np.zeros(0)  # the flipped sums of the totals and of the sizes
        if kind != "asymptotic":
            chunks = [(s @ tb, s @ c) for s in _sign_chunks(u, kind, flips, seed)]
            st, sc = np.concatenate([x[0] for x in chunks]), np.concatenate([x[1] for x in chunks])

        def p_at(delta: np.ndarray, tb=tb, st=st, sc=sc) -> np.ndarray:
            shifted = tb - delta[None, :] * c[:, None]
            obs = np.abs(shifted.sum(axis=0))
            if kind == "asymptotic":
                scale = np.sqrt((shifted**2).sum(axis=0))
                z = np.divide(obs, scale, out=np.zeros_like(obs), where=scale > 0)
                return np.minimum(1.0, 2 * stats.norm.sf(z))
            tol = 1e-9 * np.abs(shifted).sum(axis=0) + 1e-12
            hits = (np.abs(st - sc[:, None] * delta[None, :]) >= obs - tol).sum(axis=0)
            return np.minimum(1.0, hits / st.shape[0] if kind == "exact" else (hits + 1) / (st.shape[0] + 1))

        e, keep = est[cols], p0[cols] >= level
        for sign, ends in ((1.0, high), (-1.0, low)):
            toward_zero = sign * (0.0 - e) > 0  # 0 lies on this side of the estimate
            inside = np.where(toward_zero & keep, 0.0, e)
            outside = np.where(toward_zero & ~keep, 0.0, sign * span)
            open_end = ~(toward_zero & ~keep) & (p_at(outside) >= level)
            for _ in range(BISECTIONS):
                mid = (inside + outside) / 2
                ok = p_at(mid) >= level
                inside, outside = np.where(ok, mid, inside), np.where(ok, outside, mid)
            ends[cols] = np.where(open_end, sign * span, inside)
    return low, high


def unit_totals(d: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    """Per-unit totals of the differences (rows: queries, or clusters with their summed differences)."""
    if codes is None:
        return d
    codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
    out = np.zeros((int(codes.max()) + 1, *d.shape[1:]))
    np.add.at(out, codes, d)
    return out


def sign_flip_p(diff, *, seed: int, groups=None, resamples: int = DEFAULT_RESAMPLES, pairs: int = 1) -> float:
    """Two-sided p of the paired randomisation test on per-query differences; with ``groups``, signs flipped per
    cluster. ``pairs``: the size of the family it belongs to (sets the Monte-Carlo count, see flips_for)."""
    d = np.asarray(diff, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(d)
    codes = None if groups is None else _codes(groups, d.size)[keep]
    d = d[keep]
    if d.size < 2 or not np.any(d):
        return 1.0
    p, _ = flip_pvalues(unit_totals(d, codes), seed=seed, flips=flips_for(pairs, resamples))
    return float(p[0])


def _sd_units(d: np.ndarray, codes: np.ndarray | None) -> float:
    """SD of the per-unit mean differences (the spread the power formulas need)."""
    if codes is not None:
        codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
        d = np.bincount(codes, weights=d) / np.bincount(codes)
    return float(np.std(d, ddof=1)) if d.size > 1 else 0.0


def paired(
    a, b, *, seed: int, groups=None, unit: str | None = None, resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE, pairs: int = 1,
) -> dict:  # fmt: skip
    """Model a against model b on the same queries: {"diff": interval of mean(a - b), "p": two-sided p, ...}.

    The interval resamples query indices (or clusters) and takes both models' values at them: the same as
    resampling the per-query differences a - b. The p-value flips the sign of each difference (swaps a and b per
    query, or per cluster with ``groups``). Queries where either value is missing are left out.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same queries: {a.shape} vs {b.shape}")
    d = (a - b).reshape(-1)
    keep = ~np.isnan(d)
    codes = None if groups is None else _codes(groups, d.size)[keep]
    d = d[keep]
    flips = flips_for(pairs, resamples)
    diff = interval(d, seed=seed, groups=codes, unit=_unit(groups, unit), resamples=resamples, confidence=confidence)
    units = diff["units"]
    if d.size < 2 or not np.any(d):
        p, kind = 1.0, flip_kind(units, flips)
    else:
        ps, kind = flip_pvalues(unit_totals(d, codes), seed=seed, flips=flips)
        p = float(ps[0])
    return {"diff": diff, "p": p, "unit": diff["unit"], "units": units, "test": kind,
            "flips": flips if kind == "monte-carlo" else None, "p_floor": p_floor(units, flips),
            "sd_diff": _sd_units(d, codes)}  # fmt: skip


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


# The sign-flip test's null spread is the uncentred sum of squares, so against a true difference delta it behaves
# like a t test on SD sqrt(sd^2 + delta^2) (the formula below); on bounded, tied values it loses a little more:
# planned without this margin the verdict's rule separated 79.5-81% of simulated runs (bench evidence_calibration).
POWER_MARGIN = 1.05


def _factor(alpha: float, power: float, n: int) -> float:
    """t_{1-alpha/2} + t_power on n - 1 degrees of freedom (the paired t test's power approximation)."""
    return float(stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1))


def detectable_difference(sd_diff: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """Smallest mean difference delta the paired sign-flip test at ``alpha`` detects with ``power``: the t test's
    delta = F * sqrt(sd^2 + delta^2) / sqrt(n / POWER_MARGIN), F = t_{1-alpha/2} + t_power on n - 1 degrees of
    freedom, solved for delta (about 2.9 * sd / sqrt(n) at alpha 0.05 for large n; infinite when n <= F^2 *
    POWER_MARGIN). The verdict passes Holm's worst case, alpha / m for m pairs."""
    if n < 2:
        return math.inf
    g = _factor(alpha, power, n) ** 2 * POWER_MARGIN / n
    return math.inf if g >= 1 else float(sd_diff) * math.sqrt(g / (1 - g))


def units_for_power(pairs: int = 1, alpha: float = ALPHA) -> int:
    """The fewest units at which the exact sign-flip test's floor, 2/2^u, is a quarter of Holm's worst-case level
    alpha / pairs or less (at the bare floor only a difference of one sign on every unit can pass)."""
    return math.floor(math.log2(8 * max(1, pairs) / alpha)) + 1


def queries_needed(delta: float, sd_diff: float, alpha: float = ALPHA, power: float = 0.8, pairs: int = 1) -> int:
    """Queries (units) a paired test at ``alpha`` / ``pairs`` (Holm's worst case) needs to detect a mean
    difference ``delta`` with ``power``: the smallest n whose detectable_difference is <= delta, and never fewer
    than units_for_power."""
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    a = alpha / max(1, pairs)
    z = float(stats.norm.ppf(1 - a / 2) + stats.norm.ppf(power))
    n = max(2, math.ceil(z**2 * (float(sd_diff) ** 2 + delta**2) / delta**2))
    while detectable_difference(sd_diff, n, a, power) > delta:
        n = max(n + 1, math.ceil(n * 1.05)) if n > 200 else n + 1
    while n > 2 and detectable_difference(sd_diff, n - 1, a, power) <= delta:
        n -= 1
    return max(n, units_for_power(pairs, alpha))


def pairwise(
    values: dict[str, np.ndarray], *, seed: int, groups=None, unit: str | None = None,
    resamples: int = DEFAULT_RESAMPLES,
) -> list[dict]:  # fmt: skip
    """Every pair of models (in the given order) on the queries both have: diff interval (the pair alone), p, Holm
    p, "diff_holm" (the interval that agrees with the Holm decision, see holm_intervals), and the test's unit,
    kind, flips and floor. The Monte-Carlo count grows with the family (flips_for); one sign matrix serves every
    pair with the same queries. ``groups``: one cluster label per query (see paired)."""
    names = list(values)
    arr = {m: np.asarray(values[m], dtype=np.float64).reshape(-1) for m in names}
    codes_all = None if groups is None else _codes(groups, arr[names[0]].size if names else 0)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    flips = flips_for(len(pairs), resamples)
    rows, by_mask = [], {}
    for a, b in pairs:
        keep = ~(np.isnan(arr[a]) | np.isnan(arr[b]))
        d = arr[a][keep] - arr[b][keep]
        codes = None if codes_all is None else codes_all[keep]
        diff = interval(d, seed=seed, groups=codes, unit=_unit(groups, unit), resamples=resamples)
        rows.append({"a": a, "b": b, "diff": diff, "p": 1.0, "unit": diff["unit"], "units": diff["units"],
                     "test": flip_kind(diff["units"], flips), "sd_diff": _sd_units(d, codes)})  # fmt: skip
        by_mask.setdefault(keep.tobytes(), []).append(len(rows) - 1)
    for idx in by_mask.values():  # one sign matrix per set of shared queries
        keep = ~(np.isnan(arr[rows[idx[0]]["a"]]) | np.isnan(arr[rows[idx[0]]["b"]]))
        d = np.stack([arr[rows[i]["a"]][keep] - arr[rows[i]["b"]][keep] for i in idx], axis=1)
        live = [j for j in range(d.shape[1]) if d.shape[0] >= 2 and np.any(d[:, j])]
        if live:
            codes = None if codes_all is None else codes_all[keep]
            ps, _ = flip_pvalues(unit_totals(d[:, live], codes), seed=seed, flips=flips)
            for j, p in zip(live, ps, strict=True):
                rows[idx[j]]["p"] = float(p)
    for r, ph in zip(rows, holm([r["p"] for r in rows]), strict=True):
        r |= {"p_holm": ph, "significant": ph < ALPHA, "flips": flips if r["test"] == "monte-carlo" else None,
              "p_floor": p_floor(r["units"], flips)}  # fmt: skip
    levels = holm_levels(rows)
    span = max([1.0] + [float(np.nanmax(v) - np.nanmin(v)) for v in arr.values() if np.any(~np.isnan(v))])
    for idx in by_mask.values():
        keep = ~(np.isnan(arr[rows[idx[0]]["a"]]) | np.isnan(arr[rows[idx[0]]["b"]]))
        if not keep.any():
            continue
        d = np.stack([arr[rows[i]["a"]][keep] - arr[rows[i]["b"]][keep] for i in idx], axis=1)
        codes = None if codes_all is None else codes_all[keep]
        sizes = np.ones(d.shape[0]) if codes is None else unit_totals(np.ones(d.shape[0]), codes)
        for sig, level in levels.items():
            cols = [j for j, i in enumerate(idx) if rows[i]["significant"] == sig]
            if not cols:
                continue
            low, high = flip_intervals(unit_totals(d[:, cols], codes), sizes, [rows[idx[j]]["p"] for j in cols],
                                       seed=seed, flips=flips, level=level, span=span)  # fmt: skip
            for j, lo, hi in zip(cols, low, high, strict=True):
                r = rows[idx[j]]
                mean = r["diff"]["mean"]
                cut = sig and lo <= 0 <= hi  # separated by a later Holm step: the sign is what is claimed
                if cut:
                    lo, hi = (0.0, hi) if mean > 0 else (lo, 0.0)
                r["diff_holm"] = {"mean": mean, "low": float(lo), "high": float(hi), "open_at_zero": bool(cut),
                                  "confidence": 1 - level, "adjustment": HOLM_INTERVAL}  # fmt: skip
                if not np.any(d[:, j]):  # no difference to resample: say so rather than a zero-width interval
                    r["diff"]["note"] = r["diff_holm"]["note"] = EQUAL_PAIR
    return rows


EQUAL_PAIR = "equal on every query"  # a pair's note where the two models give the same value on every query


HOLM_INTERVAL = (
    "simultaneous with the Holm decisions: the sign-flip test inverted at alpha/a for the a pairs Holm does not "
    "separate, at alpha/m (Bonferroni over all m) for the pairs it separates, cut at 0 (open) where Holm separates a "
    "pair Bonferroni would not"
)


def holm_levels(rows: list[dict], alpha: float = ALPHA) -> dict[bool, float]:
    """The levels of the pair intervals, by decision: pairs Holm does not separate, alpha / a for the a of them (the
    level of Holm's last step: their p is >= it, so their intervals hold 0); pairs it separates, alpha / m, the
    Bonferroni level over all m pairs (their interval at that level is cut at 0 where it reaches 0: Holm claims the
    sign, not more). So an interval leaves out 0 exactly when Holm separates the pair, and the set is simultaneous
    (compatible with Holm's step-down, Strassburger and Bretz 2008; bench evidence_calibration measures it)."""
    m = len(rows)
    a = sum(not r["significant"] for r in rows)
    return {False: alpha / max(1, a), True: alpha / max(1, m)}


def top_group(means: dict[str, float], pairs: list[dict]) -> list[str]:
    """The models no other model beats significantly (Holm-adjusted, ``pairs`` from pairwise), best mean first."""
    beaten = set()
    for r in pairs:
        if r["significant"] and r["diff"]["mean"] not in (None, 0):
            beaten.add(r["b"] if r["diff"]["mean"] > 0 else r["a"])
    order = sorted(means, key=lambda m: -round(means[m], 9))
    return [m for m in order if m not in beaten]


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
    """The verdict on ``metric`` from ``pairs`` (the all-pairs table of ``pairwise``).

    The top group is the models no other model beats significantly (Holm-adjusted p < ALPHA); the pick is the
    cheapest of the top group on ``cost`` (the best mean when a cost is missing). When no pair can reach ALPHA after
    Holm at this many queries (2/2^n times the number of pairs), there is no pick: the text says how many queries
    would be needed. Power advice is at Holm's worst case, ALPHA / pairs."""
    vals = _aligned(values)
    models = [m for m in vals if vals[m].size]
    n = int(vals[models[0]].size) if models else 0
    costs = cost_values(cost_models or {}, cost)
    sizes = cost_values(cost_models or {}, "file_mb")
    empty = {"best": None, "tied": [], "top_group": [], "pick": None, "separable": False, "detectable": None,
             "queries_for": {}}  # fmt: skip
    out = {"metric": metric, "metric_label": metric_label, "cost": cost, "n": n}
    if not models:
        return out | empty | {"text": f"No {metric_label} values: no verdict."}
    means = {m: float(vals[m].mean()) for m in models}
    best = max(models, key=lambda m: round(means[m], 9))  # first listed wins a tie (float noise ignored)
    out["means"] = means
    if len(models) == 1:
        text = f"{best}: {metric_label} {means[best]:.3f} (only one model: nothing to compare)."
        return out | empty | {"best": best, "pick": best, "top_group": [best], "pairs_tested": 0, "text": text}
    m_pairs = len(pairs) or len(models) * (len(models) - 1) // 2
    with_best = {(r["b"] if r["a"] == best else r["a"]): r for r in pairs if best in (r["a"], r["b"])}
    unit = next((r.get("unit") for r in pairs if r.get("unit")), "query")
    units = max((r.get("units", n) for r in pairs), default=n)
    word = "queries" if unit == "query" else f"{unit}s"
    floor = min(
        (r.get("p_floor", p_floor(units, flips_for(m_pairs))) for r in pairs),
        default=p_floor(units, flips_for(m_pairs)),
    )
    holm_floor = min(1.0, m_pairs * floor)
    alpha_pair = ALPHA / m_pairs
    out |= {"unit": unit, "units": units, "pairs_tested": m_pairs, "alpha_per_pair": alpha_pair,
            "holm_floor": holm_floor}  # fmt: skip
    if holm_floor >= ALPHA:  # no pair can be significant: say so, claim nothing about detectability
        need = units_to_separate(m_pairs)
        text = (f"Too few {word} to decide: with {units} {word} no pair of these {len(models)} models can reach "
                f"Holm-adjusted p < {ALPHA} (the smallest attainable is {fmt_p(holm_floor)}); at least {need} {word} "
                f"are needed. Highest {metric_label}: {best} ({means[best]:.3f}), not a pick.")  # fmt: skip
        return out | empty | {"best": best, "queries_needed_to_separate": need, "text": text}
    top = top_group(means, pairs)
    if best not in top:  # cannot happen with consistent pairs; keep the best listed first
        top = [best, *top]
    tied = [m for m in top if m != best]
    lower = COSTS[cost][1]
    pick = best
    if all(m in costs for m in top):
        pick = min(top, key=lambda m: (costs[m] if lower else -costs[m], top.index(m)))
    others = tied or sorted((m for m in models if m != best), key=lambda m: -means[m])[:1]
    sd = max((float(with_best[m]["sd_diff"]) if m in with_best and "sd_diff" in with_best[m]
              else float(np.std(vals[best] - vals[m], ddof=1)) for m in others), default=0.0)  # fmt: skip
    detectable = detectable_difference(sd, units, alpha_pair)
    queries_for = {str(d): queries_needed(d, sd, pairs=m_pairs) for d in deltas} if sd > 0 else {}
    out |= {"best": best, "tied": tied, "top_group": top, "pick": pick, "separable": not tied,
            "detectable": detectable, "queries_for": queries_for}  # fmt: skip

    def adj(m: str) -> str:
        p = with_best[m]["p_holm"] if m in with_best else 1.0
        return f"Holm-adjusted p {fmt_p(p)}"

    if not tied:
        sig_all = all(with_best.get(m, {}).get("significant") for m in models if m != best)
        if sig_all:
            worst_p = max(with_best[m]["p_holm"] for m in models if m != best)
            text = (f"{best} is the best on {metric_label} ({means[best]:.3f}): better than every other model "
                    f"(Holm-adjusted p {fmt_p(worst_p) if worst_p < 0.001 else '≤ ' + fmt_p(worst_p)}).")  # fmt: skip
        else:
            text = (f"{best} is the best on {metric_label} ({means[best]:.3f}): every other model is significantly "
                    f"worse than at least one model (Holm-adjusted p < {ALPHA}).")  # fmt: skip
        return out | {"text": text}
    if pick != best:
        phrase = _cost_phrase(pick, best, cost, costs, sizes)
        text = (f"{pick} — not shown different from the best, {best} ({metric_label} {means[pick]:.3f} vs "
                f"{means[best]:.3f}, {adj(pick)}){', ' + phrase if phrase else ''}.")  # fmt: skip
    else:
        cheapest = " and the cheapest of the top group" if all(m in costs for m in top) else ""
        text = f"{best} is the best on {metric_label} ({means[best]:.3f}){cheapest}."
    rest = [m for m in tied if m != pick]
    if rest:
        text += f" {'Also not' if pick != best else 'Not'} shown different from the best: " + ", ".join(
            f"{m} ({adj(m)})" for m in rest) + "."  # fmt: skip
    if all(not np.any(vals[best] - vals[m]) for m in tied):
        text += " They give the same value on every query."
    elif queries_for:
        d = deltas[len(deltas) // 2]
        level = (
            f"80% power at Holm's worst case, alpha {ALPHA}/{m_pairs}" if m_pairs > 1 else f"80% power, alpha {ALPHA}"
        )
        if units < queries_for[str(d)]:
            need = queries_for[str(d)]
            text += (f" Too few {word} to separate a difference of {d}: with {units} {word} this run detects "
                     f"differences of {detectable:.3f} or more ({level}); {d} would need {need} {word}.")  # fmt: skip
        else:
            text += (f" With {units} {word} this run detects differences of {detectable:.3f} or more ({level}): "
                     "any difference between these models is likely smaller.")  # fmt: skip
    out["power_ok"] = bool(queries_for) and units >= queries_for.get(str(deltas[len(deltas) // 2]), math.inf)
    return out | {"text": text}
