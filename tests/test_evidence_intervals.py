"""Intervals at the edges: the score interval of a bounded figure on a few units, the exact bound when every value
sits at a bound, and pair intervals that agree with the Holm decisions (and hold together, by simulation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from onnx_search.bench import evidence_calibration as cal
from onnx_search.experiment import evidence as ev
from onnx_search.experiment.report.html_evidence import pairs_html

EASY = cal.EASY
TRUTH = EASY[0] / sum(EASY)


def _coverage(n: int, runs: int, **kw) -> float:
    rng = np.random.default_rng(n)
    hits = 0
    for e in range(runs):
        iv = ev.interval(rng.binomial(10, rng.beta(*EASY, n)) / 10, seed=e, **kw)
        hits += iv["low"] <= TRUTH <= iv["high"]
    return hits / runs


@pytest.mark.parametrize("n", [3, 4, 6, 9])
def test_score_interval_covers_95_percent_on_a_few_skewed_values(n):
    """Skewed, bounded P@10 (mean 0.71): a t interval misses above the truth ~8% of the time at n = 4; the score
    interval of a [0, 1] figure holds 95% within simulation error (1,500 runs: SE 0.6%)."""
    got = _coverage(n, 1500, bounds=(0.0, 1.0))
    assert got >= 0.93, got
    if n <= 6:
        assert _coverage(n, 1500) < 0.925  # without bounds (Student t): too short on the side away from the bound


def test_score_interval_is_wilson_on_binary_values_and_the_bound_is_clopper_pearson():
    x = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])  # binary: the score interval is Wilson's with z = t·√(n/(n−1))
    n = x.size
    z = stats.t.ppf(0.975, n - 1) * np.sqrt(n / (n - 1))
    ref = proportion_confint(int(x.sum()), n, alpha=2 * stats.norm.sf(z), method="wilson")
    iv = ev.interval(x, seed=0, bounds=(0.0, 1.0))
    assert (iv["low"], iv["high"]) == pytest.approx(ref, abs=1e-12)
    for units in (1, 4, 30):  # every value at 1: Clopper-Pearson at units of units
        cp = stats.binomtest(units, units).proportion_ci(0.95, method="exact")
        iv = ev.interval([1.0] * units, seed=0, bounds=(0.0, 1.0))
        assert (iv["low"], iv["high"]) == pytest.approx((cp.low, 1.0), abs=1e-12) and "note" not in iv
    iv = ev.interval([0.0] * 4, seed=0, bounds=(0.0, 1.0))
    assert (iv["low"], iv["high"]) == pytest.approx((0.0, 1 - 0.025**0.25), abs=1e-12)
    assert ev.interval([0.5] * 4, seed=0, bounds=(0.0, 1.0))["note"] == "all equal"  # inside: nothing to say
    assert ev.interval([1.0 + 1e-12, 0.5, 0.7], seed=0, bounds=(0.0, 1.0))["high"] <= 1.0  # float noise clipped
    with pytest.raises(ValueError, match=r"values outside the metric's bounds \(0.0, 1.0\).*pass the metric's real"):
        ev.interval([1.2, 0.5], seed=0, bounds=(0.0, 1.0))


def test_cluster_score_interval_solves_its_equation_with_the_cluster_robust_variance():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), [1, 2, 3, 4, 2, 3])
    v = rng.binomial(1, 0.7, groups.size).astype(float)
    iv = ev.interval(v, groups=groups, seed=0, bounds=(0.0, 1.0))
    sums, counts = np.bincount(groups, weights=v), np.bincount(groups).astype(float)
    m, g = v.mean(), 6
    var = g / (g - 1) * np.sum((sums - m * counts) ** 2) / counts.sum() ** 2
    t2 = stats.t.ppf(0.975, g - 1) ** 2
    for mu in (iv["low"], iv["high"]):
        assert (m - mu) ** 2 == pytest.approx(t2 * var * mu * (1 - mu) / (m * (1 - m)), abs=1e-12)
    assert iv["units"] == 6 and iv["low"] < m < iv["high"]


# --- pair intervals that agree with the decisions ---


def _family(seed: int, n: int, shifts, groups=None) -> list[dict]:
    cols = cal._draw_many(np.random.default_rng(seed), EASY, n, 10, shifts)
    return ev.pairwise({f"m{j}": cols[:, j] for j in range(cols.shape[1])}, seed=0, groups=groups)


def _check_agreement(rows: list[dict]) -> None:
    m = len(rows)
    a = sum(not r["significant"] for r in rows)
    for r in rows:
        iv = r["diff_holm"]
        holds_zero = iv["low"] <= 0 <= iv["high"] and not iv["open_at_zero"]
        assert holds_zero == (not r["significant"]), r  # 0 inside exactly when Holm does not separate the pair
        if r["significant"]:
            assert (iv["low"] >= 0 and iv["mean"] > 0) or (iv["high"] <= 0 and iv["mean"] < 0)
        assert iv["confidence"] == pytest.approx(1 - 0.05 / (m if r["significant"] else max(a, 1)))
        assert "Holm" in iv["adjustment"] and "Bonferroni" in iv["adjustment"]
        assert iv["low"] <= iv["mean"] <= iv["high"]


@pytest.mark.parametrize(
    ("seed", "n", "shifts", "separated"),
    [(0, 30, [0.0, 0.05, 0.1, 0.3], True), (1, 12, [0.0, 0.0, 0.4], True),
     (2, 200, [0.0] * 3 + [0.05] * 3 + [0.5] * 5, True), (3, 5, [0.0, 0.5], False), (4, 60, [0.0, 0.0, 0.0], False)],
)  # fmt: skip
def test_pair_interval_leaves_out_zero_exactly_when_holm_separates(seed, n, shifts, separated):
    rows = _family(seed, n, shifts)
    _check_agreement(rows)
    assert any(r["significant"] for r in rows) == separated  # both kinds of row are met across the cases
    if n == 5:  # too few queries for any bound at 0.05: the interval is the whole range of a difference
        assert (rows[0]["diff_holm"]["low"], rows[0]["diff_holm"]["high"]) == (-1.0, 1.0)


def test_a_pair_only_holms_step_down_separates_gets_an_interval_open_at_zero():
    rows = _family(18, 30, [0.0, 0.08, 0.16])  # m0-m1: p 0.0435 < 0.05 at Holm's last step, > 0.05/3
    _check_agreement(rows)
    late = rows[0]
    assert late["significant"] and late["p"] > 0.05 / 3 and late["diff_holm"]["open_at_zero"]
    assert late["diff_holm"]["low"] == 0.0 and late["diff_holm"]["high"] > late["diff_holm"]["mean"]
    page = pairs_html({"evidence": {"pairs": {"p_at_k": rows}}, "summary": {"top_k": 10}})
    assert "difference a − b [Holm-consistent CI]" in page and "(0, 0.171]" in page
    assert "at 0.05/m (Bonferroni over all m pairs) for those it separates" in page
    # the same pair the other way round: the mirror image, closed at its far end and open at 0
    cols = cal._draw_many(np.random.default_rng(18), EASY, 30, 10, [0.0, 0.08, 0.16])
    flipped = ev.pairwise({"m1": cols[:, 1], "m0": cols[:, 0], "m2": cols[:, 2]}, seed=0)[0]
    assert (flipped["a"], flipped["p"], flipped["diff_holm"]["open_at_zero"]) == ("m1", late["p"], True)
    assert (flipped["diff_holm"]["low"], flipped["diff_holm"]["high"]) == (-late["diff_holm"]["high"], 0.0)
    assert "[-0.171, 0)" in pairs_html({"evidence": {"pairs": {"p_at_k": [flipped]}}, "summary": {"top_k": 10}})


def test_summary_shows_the_same_holm_consistent_pair_intervals_as_the_report():
    from onnx_search.experiment.report.format import pair_interval
    from onnx_search.experiment.report.summary import paired_tables

    rows, tied = _family(18, 30, [0.0, 0.08, 0.16]), _family(4, 60, [0.0, 0.0, 0.0])  # all separated; none
    method = {"confidence": 0.95, "interval": "bootstrap", "resamples": 10, "seed": 0, "test": "sign-flip",
              "test_library": "numpy", "exact_up_to_n": 16, "correction": "Holm"}  # fmt: skip
    evidence = {"pairs": {"p_at_k": rows, "recall_at_k": tied}, "method": method}
    page = pairs_html({"evidence": evidence, "summary": {"top_k": 10}})
    md = "\n".join(paired_tables(evidence, 10))
    assert "| P@10: a vs b | a − b [Holm-consistent CI] | p | Holm-adjusted p | verdict |" in md
    assert "unadjusted" not in md and "at 0.05/m (Bonferroni over all m pairs) for those it separates" in md
    for r in rows + tied:
        iv = r["diff_holm"]
        text = pair_interval(iv)
        assert f"| {r['a']} vs {r['b']} | {iv['mean']:.3f} {text} |" in md
        assert f"<span class='ci'>{text}</span>" in page
        assert text.startswith("[") and text.endswith("]") or r["significant"]  # open only where separated
    assert f"| m0 vs m1 | {rows[0]['diff_holm']['mean']:.3f} (0, 0.171] | " in md  # the late pair, open at 0
    level = tied[0]["diff_holm"]["confidence"]
    assert f"(confidence: R@10 {100 * level:.2f}%)" in md and f"(confidence: R@10 {100 * level:.2f}%)" in page
    # a comparison.json written before the Holm-consistent intervals: each pair's own interval, said so
    old = {**evidence, "pairs": {"p_at_k": [{k: v for k, v in r.items() if k != "diff_holm"} for r in rows]}}
    md = "\n".join(paired_tables(old, 10))
    assert "a − b [95% CI, unadjusted]" in md and "The intervals are unadjusted 95% intervals" in md
    assert "Holm-consistent" not in md and "(0, " not in md


def test_pair_interval_ends_invert_the_test():
    """At each end the test of that shift keeps it (p >= level) and a step beyond rejects it (same signs)."""
    groups = np.repeat(np.arange(25), 2)
    for grp, n, kind in ((None, 14, "exact"), (None, 40, "monte-carlo"), (groups, 50, "monte-carlo")):
        rows = _family(7, n, [0.0, 0.1, 0.2], groups=grp)
        _check_agreement(rows)
        cols = cal._draw_many(np.random.default_rng(7), EASY, n, 10, [0.0, 0.1, 0.2])
        codes = None if grp is None else grp
        sizes = np.ones(n) if grp is None else np.bincount(grp).astype(float)
        for r, (a, b) in zip(rows, [(0, 1), (0, 2), (1, 2)], strict=True):
            assert r["test"] == kind
            d = cols[:, a] - cols[:, b]
            iv, level = r["diff_holm"], 1 - r["diff_holm"]["confidence"]
            for end, out in ((iv["high"], 1e-6), (iv["low"], -1e-6)):
                if iv["open_at_zero"] and end == 0 or abs(end) >= 1:
                    continue
                p_in, _ = ev.flip_pvalues(ev.unit_totals(d - end, codes), seed=0, flips=r["flips"] or 2000)
                p_out, _ = ev.flip_pvalues(ev.unit_totals(d - end - out, codes), seed=0, flips=r["flips"] or 2000)
                assert p_in[0] >= level > p_out[0], (kind, end)
        assert sizes.sum() == n


def test_pair_intervals_hold_together_by_simulation():
    """Four models with graded differences on 40 queries: every pair's interval holds its true difference in the
    same run at least ~95% of the time (300 runs; the bench measures 11 models at n = 200)."""
    shifts = [0.0, 0.03, 0.1, 0.3]
    truth = cal._true_means(EASY, shifts)
    rng = np.random.default_rng(9)
    cover = np.mean([cal._holm_covers(cal._draw_many(rng, EASY, 40, 10, shifts), truth, seed=e, resamples=500)
                     for e in range(300)])  # fmt: skip
    assert cover >= 0.92, cover


def test_exact_inversion_and_the_run_bounds_its_figures():
    d = np.array([0.3, 0.1, 0.2, -0.1, 0.4, 0.2, 0.0, 0.3, 0.1, 0.2])  # 10 units: exact over 1,024 flips
    (p0,), _ = ev.flip_pvalues(d[:, None], seed=0, flips=2000)
    low, high = ev.flip_intervals(d[:, None], np.ones(10), [p0], seed=0, flips=2000, level=0.05)
    for end, out in ((high[0], 1e-6), (low[0], -1e-6)):
        p_in, _ = ev.flip_pvalues((d - end)[:, None], seed=0, flips=2000)
        p_out, _ = ev.flip_pvalues((d - end - out)[:, None], seed=0, flips=2000)
        assert p_in[0] >= 0.05 > p_out[0]
    assert 0 < low[0] < d.mean() < high[0] < 0.4
    from onnx_search.experiment.evidence_section import _intervals

    got = _intervals({"m": np.ones(4)}, 0, 200)["m"]  # a run's figures are [0, 1]: all at 1 gets the exact bound
    assert (got["low"], got["high"]) == pytest.approx((0.025**0.25, 1.0))
