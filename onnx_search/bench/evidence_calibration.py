"""Calibration of the evidence statistics by simulation: seeded synthetic experiments whose per-query values look
like real P@k (binomial hits over beta-distributed query difficulty: bounded, tied, skewed).

For each shape: how often the paired randomisation test rejects at 0.05 with no true difference (size), how
often it rejects a planted difference of half a standard deviation of the per-query differences (power), and
how often the 95% bootstrap interval covers the true mean (coverage). Every figure runs experiment.evidence,
the code a run uses. ``python -m onnx_search.bench.evidence_calibration --out bench`` writes
bench/evidence_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..experiment import evidence as ev

SHAPES = {  # query difficulty ~ Beta(a, b); mean P@k = a / (a + b)
    "easy (Beta(2, 0.8), P@k ~0.71)": (2.0, 0.8),
    "skewed easy (Beta(5, 0.6), P@k ~0.89)": (5.0, 0.6),
    "hard (Beta(0.8, 2), P@k ~0.29)": (0.8, 2.0),
}


def _draw(rng: np.random.Generator, shape: tuple[float, float], n: int, k: int, shift: float = 0.0):
    """Two models' per-query P@k on the same n queries; the second finds ``shift`` less of each query."""
    q = rng.beta(*shape, n)
    return rng.binomial(k, q) / k, rng.binomial(k, np.clip(q - shift, 0.0, 1.0)) / k


def planted_shift(shape: tuple[float, float], k: int, effect: float = 0.5) -> float:
    """The difficulty shift whose mean per-query difference is ``effect`` SDs of the per-query differences.

    Exact moments over the difficulty distribution (100k quantiles): with q' = clip(q - s), the difference has
    mean E[q - q'] and variance E[q(1-q) + q'(1-q')] / k + Var(q - q').
    """
    from scipy import stats

    q = stats.beta.ppf((np.arange(100_000) + 0.5) / 100_000, *shape)
    lo, hi = 0.0, 0.5
    for _ in range(40):  # bisection on the standardised effect
        s = (lo + hi) / 2
        q2 = np.clip(q - s, 0.0, 1.0)
        d = q - q2
        sd = np.sqrt(np.mean(q * (1 - q) + q2 * (1 - q2)) / k + d.var())
        lo, hi = (s, hi) if d.mean() / sd < effect else (lo, s)
    return (lo + hi) / 2


def simulate(
    shape: tuple[float, float], *, experiments: int = 1000, n: int = 50, k: int = 10, seed: int = 0,
    resamples: int = ev.DEFAULT_RESAMPLES, methods: tuple[str, ...] = (ev.INTERVAL_METHOD,),
) -> dict:  # fmt: skip
    """Size, power (0.5 SD planted) and interval coverage (per bootstrap method) over ``experiments`` seeded
    synthetic experiments."""
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
        a, b = _draw(rng, shape, n, k, shift)
        power += ev.sign_flip_p(a - b, seed=e, resamples=resamples) < ev.ALPHA
    return {
        "beta": list(shape),
        "experiments": experiments,
        "n": n,
        "k": k,
        "planted_shift": round(shift, 4),
        "null_rejection": null / experiments,
        "power_half_sd": power / experiments,
        "resamples": resamples,
        "coverage": {m: c / experiments for m, c in cover.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench"))
    ap.add_argument("--experiments", type=int, default=1000)
    args = ap.parse_args()
    t = time.perf_counter()
    rows = []
    for name, shape in SHAPES.items():
        for n in (12, 50, 100):
            sim = simulate(shape, experiments=args.experiments, n=n, methods=("percentile", "BCa"))
            rows.append({"shape": name} | sim)
            print(rows[-1], flush=True)
    out = {"method": ev.method_record(0), "rows": rows, "seconds": round(time.perf_counter() - t, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "evidence_calibration.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
