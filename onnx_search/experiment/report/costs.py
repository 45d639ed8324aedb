"""Variants beside their parents, and cost beside quality: tables for summary.md and the points of the plot."""

from __future__ import annotations

from collections.abc import Callable

from ..cost import pareto
from .format import fmt, fmt_iv
from .hardware import recipe_mismatch, recipe_text


def _evidence_quality(comparison: dict) -> tuple[str, str, dict[str, dict]] | None:
    """(metric, label, model -> interval) of the verdict's metric, when the run has evidence for it."""
    ev = comparison.get("evidence") or {}
    v = ev.get("verdict") or {}
    metric = v.get("metric")
    if not metric or v.get("best") is None:
        return None
    ivs = (ev.get("quality") or {}).get(metric)
    if ivs is None:  # a metric on copies
        ivs = {m: cells["all"][metric] for m, cells in (ev.get("robustness") or {}).items()}
    return metric, v["metric_label"], ivs


def quality_axis(comparison: dict) -> tuple[str, dict[str, float]]:
    """Quality per model: the verdict's metric when the run has one (P@k on labels, nDCG@k on judgments, MRR@k on
    copies), else P@k when labelled, else RBO with the reference (first) model."""
    s = comparison["summary"]
    models = list(s["models"])
    found = _evidence_quality(comparison)
    if found and all(m in found[2] and found[2][m]["mean"] is not None for m in models):
        return found[1], {m: found[2][m]["mean"] for m in models}
    if models and "p_at_k" in s["models"][models[0]]:
        return "P@k", {m: s["models"][m]["p_at_k"] for m in models}
    ref = models[0] if models else ""
    rbo = {ref: 1.0}
    for m in models[1:]:
        pair = s["pairs"].get(f"{ref}|{m}") or s["pairs"].get(f"{m}|{ref}") or {}
        rbo[m] = pair.get("rbo") or 0.0
    return f"RBO with {ref}", rbo


def significantly_better(comparison: dict) -> Callable[[str, str], bool] | None:
    """``better(a, b)``: a beats b on the verdict's metric in the paired test (Holm-adjusted p < 0.05); None when
    the run has no test (then the frontier is the point-wise one)."""
    found = _evidence_quality(comparison)
    rows = ((comparison.get("evidence") or {}).get("pairs") or {}).get(found[0]) if found else None
    if not rows:
        return None
    wins = set()
    for r in rows:
        if r["significant"]:
            wins.add((r["a"], r["b"]) if r["diff"]["mean"] > 0 else (r["b"], r["a"]))
    return lambda a, b: (a, b) in wins


def frontier(comparison: dict) -> list[str]:
    """The models on the cost frontier: none other is at least as fast and significantly better."""
    _, points = speed_quality_points(comparison)
    return pareto(points, significantly_better(comparison))


def speed_quality_points(comparison: dict) -> tuple[str, dict[str, tuple[float, float]]]:
    """(model-only img/s, quality) per model, and the quality's name."""
    label, quality = quality_axis(comparison)
    cost = comparison.get("cost", {}).get("models", {})
    return label, {m: (cost[m]["img_per_s_model_only"], q) for m, q in quality.items() if m in cost}


def variants_table(variants: dict, intervals: dict | None = None, machine: dict | None = None) -> list[str]:
    """Each variant beside its parent; overlap@k and RBO with their 95% intervals over queries when given; an INT8
    variant's recipe, with a warning where it was made for another CPU than ``machine`` (the run's)."""
    if not variants:
        return []
    intervals = intervals or {}
    ci = " [95% CI]" if intervals else ""
    lines = [
        "## Variants against their parents",
        "",
        f"| variant | parent | overlap@k{ci} | RBO{ci} | mean cosine to parent | min cosine to parent | INT8 recipe |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        why = recipe_mismatch(v.get("int8_recipe"), machine)
        lines.append(
            f"| {name} | {v['parent']} | {_iv_or(intervals, name, 'overlap_at_k', v)} | "
            f"{_iv_or(intervals, name, 'rbo', v)} | "
            f"{fmt(v['mean_parent_cosine'], 5)} | {fmt(v['min_parent_cosine'], 5)} | "
            f"{recipe_text(v.get('int8_recipe'))}{f' **⚠ {why}**' if why else ''} |"
        )
    return lines


def _iv_or(intervals: dict, name: str, key: str, point: dict) -> str:
    iv = (intervals.get(name) or {}).get(key)
    return fmt_iv(iv) if iv else fmt(point.get(key))


def cost_table(comparison: dict) -> list[str]:
    cost = comparison.get("cost")
    if not cost:
        return []
    label, points = speed_quality_points(comparison)
    front = set(frontier(comparison))
    found = _evidence_quality(comparison)
    ivs = found[2] if found and found[1] == label else {}
    tested = significantly_better(comparison) is not None
    lines = [
        f"## Cost (measured on {cost['images']} images, median of {cost['repeats']} interleaved passes)",
        "",
        f"| model | file MB | start-up s | img/s end to end | img/s model only | query embed p50/p99 ms | "
        f"search p50/p99 ms | {label} | frontier | providers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, c in cost["models"].items():
        q, s = c["query_embed"], c["search"] or {}
        quality = fmt_iv(ivs[m]) if m in ivs else fmt(points[m][1]) if m in points else "–"
        lines.append(
            f"| {m} | {fmt(c['file_mb'], 1)} | {fmt(c['startup_s'], 2)} | {fmt(c['img_per_s_end_to_end'], 1)} | "
            f"{fmt(c['img_per_s_model_only'], 1)} | {fmt(q['p50_ms'], 1)} / {fmt(q['p99_ms'], 1)} | "
            f"{fmt(s.get('p50_ms'), 2)} / {fmt(s.get('p99_ms'), 2)} | {quality} | "
            f"{'✓' if m in front else ''} | {', '.join(p.replace('ExecutionProvider', '') for p in c['providers'])} |"
        )
    rule = (
        f"Frontier: no other model is both at least as fast (model-only img/s) and significantly better "
        f"({label}, paired test, Holm-adjusted p < 0.05; a difference within the noise dominates nothing)."
        if tested
        else f"Frontier: no other model is both faster (model-only img/s) and better ({label})."
    )
    lines += ["", f"Peak RSS of the run's own process: {fmt(cost['peak_rss_mb'], 0)} MB.{children_line(cost)} {rule}"]
    return lines


def children_line(cost: dict) -> str:
    """Each conversion or quantisation child's own peak RSS (they ran in child processes, apart from the run)."""
    kids = cost.get("children") or []
    if not kids:
        return ""
    verb = {"convert": "convert", "variant": "quantise"}
    parts = [
        f"{c['model']} up to date (no child started)"
        if not c.get("child", True)  # runs recorded before the field had a child for every entry
        else f"{c['model']} {verb.get(c['task'], c['task'])} {fmt(c['peak_rss_mb'], 0)} MB"
        + (" (up to date, checked only)" if c["skipped"] else "")
        for c in kids
    ]
    return " Peak RSS of each conversion child: " + ", ".join(parts) + "."
