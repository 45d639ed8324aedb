"""Calibration of the evidence statistics by simulation: seeded synthetic experiments whose per-query values look
like real P@k (binomial hits over beta-distributed query difficulty: bounded, tied, skewed).

Rows, each from the functions a run uses (experiment.evidence: ``interval``, ``flip_pvalues`` with ``flips_for``,
``holm``, ``top_group``, ``queries_needed``; the same path as ``pairwise`` and ``verdict`` without the pairs'
intervals, which the decision does not read):

- two models at n = 12, 50, 100 on three difficulty shapes: size, power at 0.5 SD, coverage (percentile and BCa);
- many models (11 at n = 200, 55 pairs): family-wise type I error under Holm, coverage, the rate at which a
  0.5 P@10 difference is separated at n = 200, and power at the n the verdict advises (Holm's worst case);
- copies (21 originals × 6 copies) with a per-original model effect: type I error and coverage with the original
  as the unit and, for contrast, with the copy as the unit; power at the advised number of originals;
- few queries (n = 3 to 9): type I error, coverage (the score interval of a [0, 1] figure below 20 units), whether a
  pair can be separated at all, and power at the advised n;
- in the many-model, copies and few-query rows, the simultaneous coverage of the pair intervals that agree with the
  Holm decisions (every pair's true difference inside its interval at Holm's last level, in one run).

``python -m onnx_search.bench.evidence_calibration --experiments 1000`` writes evidence_calibration.json to this
machine's results folder (or ``--out``); every row records how many simulated experiments back it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import special, stats

from ..experiment import evidence as ev
from .results import default_out, write_result

SHAPES = {  # query difficulty ~ Beta(a, b); mean P@k = a / (a + b)
    "easy (Beta(2, 0.8), P@k ~0.71)": (2.0, 0.8),
    "skewed easy (Beta(5, 0.6), P@k ~0.89)": (5.0, 0.6),
    "hard (Beta(0.8, 2), P@k ~0.29)": (0.8, 2.0),
}
EASY = SHAPES["easy (Beta(2, 0.8), P@k ~0.71)"]


def _draw(rng: np.random.Generator, shape: tuple[float, float], n: int, k: int, shift: float = 0.0):
    """Two models' per-query P@k on the same n queries; the second finds ``shift`` less of each query."""
    q = rng.beta(*shape, n)
    return rng.binomial(k, q) / k, rng.binomial(k, np.clip(q - shift, 0.0, 1.0)) / k


def _draw_many(rng: np.random.Generator, shape, n: int, k: int, shifts) -> np.ndarray:
    """(n, models) per-query P@k on the same queries; model j finds ``shifts[j]`` less of each query."""
    q = rng.beta(*shape, n)[:, None]
    return rng.binomial(k, np.clip(q - np.asarray(shifts)[None, :], 0.0, 1.0)) / k


def _moments(shape, k: int, shift: float) -> tuple[float, float]:
    """Mean and SD of one query's P@k difference between a model and one finding ``shift`` less (100k quantiles)."""
    q = stats.beta.ppf((np.arange(100_000) + 0.5) / 100_000, *shape)
    q2 = np.clip(q - shift, 0.0, 1.0)
    d = q - q2
    return float(d.mean()), float(np.sqrt(np.mean(q * (1 - q) + q2 * (1 - q2)) / k + d.var()))


def planted_shift(shape: tuple[float, float], k: int, effect: float = 0.5) -> float:
    """The difficulty shift whose mean per-query difference is ``effect`` SDs of the per-query differences."""
    lo, hi = 0.0, 0.5
    for _ in range(40):  # bisection on the standardised effect
        s = (lo + hi) / 2
        mean, sd = _moments(shape, k, s)
        lo, hi = (s, hi) if mean / sd < effect else (lo, s)
    return (lo + hi) / 2


def _decide(values: np.ndarray, *, seed: int, resamples: int, groups=None) -> tuple[np.ndarray, list]:
    """Holm-adjusted significance of every pair of columns of ``values`` (n, models), as pairwise decides it, and
    the pairs as (a, b) column indices."""
    m = values.shape[1]
    pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
    d = np.stack([values[:, a] - values[:, b] for a, b in pairs], axis=1)
    codes = None if groups is None else np.unique(groups, return_inverse=True)[1].reshape(-1)
    p, _ = ev.flip_pvalues(ev.unit_totals(d, codes), seed=seed, flips=ev.flips_for(len(pairs), resamples))
    p = np.where(np.any(d, axis=0), p, 1.0)
    return np.asarray(ev.holm(p)) < ev.ALPHA, pairs


def _separates(values: np.ndarray, *, seed: int, resamples: int, groups=None) -> bool:
    """Whether the verdict's rule puts column 0 alone in the top group (column 0 planted best)."""
    sig, pairs = _decide(values, seed=seed, resamples=resamples, groups=groups)
    means = {str(j): float(values[:, j].mean()) for j in range(values.shape[1])}
    rows = [{"a": str(a), "b": str(b), "significant": bool(s), "diff": {"mean": means[str(a)] - means[str(b)]}}
            for (a, b), s in zip(pairs, sig, strict=True)]  # fmt: skip
    return ev.top_group(means, rows) == ["0"]


RUN = f"as a run (score below {ev.SCORE_BELOW} units, else BCa)"


def simulate(
    shape: tuple[float, float], *, experiments: int = 1000, n: int = 50, k: int = 10, seed: int = 0,
    resamples: int = ev.DEFAULT_RESAMPLES, methods: tuple[str, ...] = (ev.INTERVAL_METHOD,),
) -> dict:  # fmt: skip
    """Two models: size, power (0.5 SD planted) and interval coverage (per bootstrap method)."""
    rng = np.random.default_rng(seed)
    truth = shape[0] / (shape[0] + shape[1])
    shift = planted_shift(shape, k)
    null = power = 0
    cover = dict.fromkeys(methods, 0)
    for e in range(experiments):
        a, b = _draw(rng, shape, n, k)
        null += ev.sign_flip_p(a - b, seed=e, resamples=resamples) < ev.ALPHA  # the p of ev.paired
        for m in methods:
            iv = ev.interval(a, seed=e, resamples=resamples, method=m)
            cover[m] += iv["low"] <= truth <= iv["high"]
        iv = ev.interval(a, seed=e, resamples=resamples, bounds=BOUNDS)  # as a run makes it
        cover[RUN] = cover.get(RUN, 0) + (iv["low"] <= truth <= iv["high"])
        a, b = _draw(rng, shape, n, k, shift)
        power += ev.sign_flip_p(a - b, seed=e, resamples=resamples) < ev.ALPHA
    return {"regime": "two models", "beta": list(shape), "experiments": experiments, "n": n, "k": k,
            "planted_shift": round(shift, 4), "null_rejection": null / experiments,
            "power_half_sd": power / experiments, "resamples": resamples,
            "coverage": {m: c / experiments for m, c in cover.items()}}  # fmt: skip


BOUNDS = (0.0, 1.0)  # every simulated figure is a [0, 1] metric, as in a run (evidence_section.METRIC_BOUNDS)


def _true_means(shape, shifts) -> np.ndarray:
    """Each model's true mean P@k: E[clip(q - shift)] over the difficulty distribution (100k quantiles)."""
    q = stats.beta.ppf((np.arange(100_000) + 0.5) / 100_000, *shape)
    return np.array([float(np.clip(q - s, 0.0, 1.0).mean()) for s in shifts])


def _holm_covers(values: np.ndarray, truth: np.ndarray, *, seed: int, resamples: int, groups=None) -> bool:
    """Whether every pair's interval that agrees with the Holm decision (pairwise's "diff_holm") holds its true
    difference in this run: the interval is the set of shifts the sign-flip test keeps at the pair's level
    (evidence.holm_levels), so the truth is inside when the test of the truth, on the same signs, gives p >= that
    level and, for a separated pair, the truth has the sign claimed."""
    m = values.shape[1]
    pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
    d = np.stack([values[:, a] - values[:, b] for a, b in pairs], axis=1)
    codes = None if groups is None else np.unique(groups, return_inverse=True)[1].reshape(-1)
    flips = ev.flips_for(len(pairs), resamples)
    p, _ = ev.flip_pvalues(ev.unit_totals(d, codes), seed=seed, flips=flips)
    p = np.where(np.any(d, axis=0), p, 1.0)
    sig = np.asarray(ev.holm(p)) < ev.ALPHA
    levels = ev.holm_levels([{"significant": bool(x)} for x in sig])
    delta = np.array([truth[a] - truth[b] for a, b in pairs])
    p_true, _ = ev.flip_pvalues(ev.unit_totals(d - delta[None, :], codes), seed=seed, flips=flips)
    level = np.where(sig, levels[True], levels[False])
    right_sign = ~sig | (delta * d.mean(axis=0) > 0)  # a separated pair's interval is on one side of 0 (open there)
    return bool(np.all((p_true >= level) & right_sign))


def _coverage(draw, truth: float, experiments: int, resamples: int, groups=None) -> float:
    hits = 0
    for e in range(experiments):
        iv = ev.interval(draw(), seed=e, resamples=resamples, groups=groups, bounds=BOUNDS)
        hits += iv["low"] <= truth <= iv["high"]
    return hits / experiments


def _null_and_coverage(rng, shape, n: int, k: int, models: int, experiments: int, coverage_experiments: int,
                       resamples: int) -> tuple[int, float]:  # fmt: skip
    """Runs (of ``experiments``, all models alike) in which the verdict separated some pair, and the coverage of one
    model's interval over ``coverage_experiments``: the null half of the many-model and few-query regimes."""
    truth = shape[0] / sum(shape)
    rejected = sum(bool(_decide(_draw_many(rng, shape, n, k, [0.0] * models), seed=e, resamples=resamples)[0].any())
                   for e in range(experiments))  # fmt: skip
    cover = _coverage(lambda: _draw_many(rng, shape, n, k, [0.0])[:, 0], truth, coverage_experiments, resamples)
    return rejected, cover


GRADED = (0.0, 0.0, 0.03, 0.03, 0.06, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5)  # some pairs equal, some near, some far


def many_models(
    *, models: int = 11, n: int = 200, k: int = 10, effect: float = 0.3, experiments: int = 200,
    coverage_experiments: int = 200, seed: int = 0, resamples: int = ev.DEFAULT_RESAMPLES, shape=EASY,
) -> dict:  # fmt: skip
    """``models`` models on n queries: family-wise type I error (all alike), coverage of one model's interval,
    separation of a 0.5 P@10 difference at n, and power at the advised n for a difference of ``effect`` SDs
    (one model better, the rest alike)."""
    rng = np.random.default_rng(seed)
    m = models * (models - 1) // 2
    fwer, cover = _null_and_coverage(rng, shape, n, k, models, experiments, coverage_experiments, resamples)
    big = [0.0] + [0.5] * (models - 1)
    sep_big = sum(
        _separates(_draw_many(rng, shape, n, k, big), seed=e, resamples=resamples) for e in range(experiments)
    )
    shift = planted_shift(shape, k, effect)
    delta, sd = _moments(shape, k, shift)
    advised = ev.queries_needed(delta, sd, pairs=m)
    planted = [0.0] + [shift] * (models - 1)
    power = sum(bool(_decide(_draw_many(rng, shape, advised, k, planted), seed=e, resamples=resamples)[0][0])
                for e in range(experiments))  # fmt: skip
    graded = GRADED[:models]
    truth = _true_means(shape, graded)
    holm_cover = sum(_holm_covers(_draw_many(rng, shape, n, k, graded), truth, seed=e, resamples=resamples)
                     for e in range(experiments))  # fmt: skip
    return {"regime": f"{models} models", "beta": list(shape), "n": n, "k": k, "pairs": m,
            "graded_shifts": list(graded), "pair_intervals_cover_all": holm_cover / experiments,
            "flips": ev.flips_for(m, resamples), "holm_floor": m / (ev.flips_for(m, resamples) + 1),
            "experiments": experiments, "coverage_experiments": coverage_experiments,
            "type1_familywise": fwer / experiments, "coverage": cover, "separates_half_p_at_10": sep_big / experiments,
            "power_difference": round(delta, 4), "power_sd": round(sd, 4), "advised_n": advised,
            "power_at_advised_n": power / experiments}  # fmt: skip


def _copies_draw(rng, originals: int, copies: int, tau: float, shift: float = 0.0):
    """Binary hits (recall@1 on copies) of two models, ``copies`` per original; a per-original model effect on the
    logit scale, N(0, tau), with no average difference unless ``shift`` (added to model a's logit)."""
    base = rng.normal(1.0, 1.0, originals)
    eff = rng.normal(0.0, tau, originals)
    pa, pb = special.expit(base + eff / 2 + shift), special.expit(base - eff / 2)
    a = rng.binomial(1, np.repeat(pa, copies)).astype(float)
    b = rng.binomial(1, np.repeat(pb, copies)).astype(float)
    return np.stack([a, b], axis=1)


def copies(
    *, originals: int = 21, per_original: int = 6, tau: float = 2.0, shift: float = 0.6, experiments: int = 1000,
    coverage_experiments: int = 300, seed: int = 0, resamples: int = ev.DEFAULT_RESAMPLES,
) -> dict:  # fmt: skip
    """Copies of originals with a per-original effect: type I error and coverage with the original as the unit
    (groups) and with each copy counted as a query; power at the advised number of originals."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(originals), per_original)
    big = rng.normal(1.0, 1.0, 1_000_000), rng.normal(0.0, tau, 1_000_000)
    truth = float(special.expit(big[0] + big[1] / 2).mean())
    rej = {"original": 0, "query": 0}
    holm_cover = 0
    for e in range(experiments):
        v = _copies_draw(rng, originals, per_original, tau)
        rej["original"] += bool(_decide(v, seed=e, resamples=resamples, groups=groups)[0][0])
        rej["query"] += bool(_decide(v, seed=e, resamples=resamples)[0][0])
        holm_cover += _holm_covers(v, np.zeros(2), seed=e, resamples=resamples, groups=groups)
    cover = {
        "original": _coverage(lambda: _copies_draw(rng, originals, per_original, tau)[:, 0], truth,
                              coverage_experiments, resamples, groups),
        "query": _coverage(lambda: _copies_draw(rng, originals, per_original, tau)[:, 0], truth,
                           coverage_experiments, resamples),
    }  # fmt: skip
    pilot = _copies_draw(rng, 200_000, per_original, tau, shift)  # per-original mean differences: delta and SD
    per = (pilot[:, 0] - pilot[:, 1]).reshape(-1, per_original).mean(axis=1)
    delta, sd = float(per.mean()), float(per.std(ddof=1))
    advised = ev.queries_needed(delta, sd)
    g = np.repeat(np.arange(advised), per_original)
    power = sum(bool(_decide(_copies_draw(rng, advised, per_original, tau, shift), seed=e, resamples=resamples,
                             groups=g)[0][0]) for e in range(experiments))  # fmt: skip
    return {"regime": f"copies ({originals} originals × {per_original})", "tau_logit": tau,
            "experiments": experiments, "coverage_experiments": coverage_experiments,
            "type1": rej["original"] / experiments, "type1_copies_as_queries": rej["query"] / experiments,
            "pair_interval_covers": holm_cover / experiments,
            "coverage": cover["original"], "coverage_copies_as_queries": cover["query"],
            "power_difference": round(delta, 4), "power_sd_per_original": round(sd, 4),
            "advised_originals": advised, "power_at_advised_n": power / experiments}  # fmt: skip


def few_queries(
    n: int, *, models: int = 2, k: int = 10, shift: float = 0.5, experiments: int = 1000, seed: int = 0,
    resamples: int = ev.DEFAULT_RESAMPLES, shape=EASY,
) -> dict:  # fmt: skip
    """n queries (3-9): type I error, coverage, whether any pair can be separated at all, power at the advised n
    for a ``shift`` P@k difference (the verdict advises at least units_for_power queries), and the coverage of the
    pair interval (true difference ``shift``'s)."""
    rng = np.random.default_rng(seed)
    m = models * (models - 1) // 2
    null, cover = _null_and_coverage(rng, shape, n, k, models, experiments, experiments, resamples)
    delta, sd = _moments(shape, k, shift)
    advised = ev.queries_needed(delta, sd, pairs=m)
    planted = [0.0] + [shift] * (models - 1)
    power = sum(bool(_decide(_draw_many(rng, shape, advised, k, planted), seed=e, resamples=resamples)[0][0])
                for e in range(experiments))  # fmt: skip
    truth = _true_means(shape, planted)
    holm_cover = sum(_holm_covers(_draw_many(rng, shape, n, k, planted), truth, seed=e, resamples=resamples)
                     for e in range(experiments))  # fmt: skip
    return {"regime": f"few queries (n = {n})", "beta": list(shape), "n": n, "k": k, "models": models,
            "experiments": experiments, "separable_at_n": m * ev.p_floor(n, ev.flips_for(m)) < ev.ALPHA,
            "type1": null / experiments, "coverage": cover,
            "coverage_method": "score" if n < ev.SCORE_BELOW else "BCa",
            "pair_interval_covers": holm_cover / experiments,
            "power_difference": round(delta, 4), "advised_n": advised,
            "power_at_advised_n": power / experiments}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    ap.add_argument("--experiments", type=int, default=1000, help="simulated experiments per figure")
    ap.add_argument("--many-experiments", type=int, default=None,
                    help="experiments per figure of the 11-model rows (default: --experiments / 5)")  # fmt: skip
    ap.add_argument(
        "--coverage-experiments",
        type=int,
        default=None,
        help="experiments per coverage figure of the 11-model and copies rows (default: --experiments / 3)",
    )
    ap.add_argument("--skip-two-model", action="store_true", help="leave out the two-model rows (n = 12, 50, 100)")
    args = ap.parse_args()
    e = args.experiments
    many = args.many_experiments or max(20, e // 5)
    cov = args.coverage_experiments or max(20, e // 3)
    t = time.perf_counter()
    rows = []

    def add(row: dict) -> None:
        rows.append(row | {"seconds": round(time.perf_counter() - t, 1)})
        print(rows[-1], flush=True)

    add(many_models(experiments=many, coverage_experiments=cov))
    add(copies(experiments=e, coverage_experiments=cov))
    add(copies(originals=6, experiments=e, coverage_experiments=e))  # few clusters: the cluster score interval
    for n in range(3, 10):
        add(few_queries(n, experiments=e))
    if not args.skip_two_model:
        for name, shape in SHAPES.items():
            for n in (12, 50, 100):
                add({"shape": name} | simulate(shape, experiments=e, n=n, methods=("percentile", "BCa")))
    out = {"method": ev.method_record(0), "rows": rows, "seconds": round(time.perf_counter() - t, 1)}
    path = write_result(args.out, "evidence_calibration.json", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
