"""Variants beside their parents, and cost beside quality: tables for summary.md and the points of the plot."""

from __future__ import annotations

from ..cost import pareto
from .format import fmt


def quality_axis(comparison: dict) -> tuple[str, dict[str, float]]:
    """Quality per model: P@k when the run has labels, else RBO with the reference (first) model."""
    s = comparison["summary"]
    models = list(s["models"])
    if models and "p_at_k" in s["models"][models[0]]:
        return "P@k", {m: s["models"][m]["p_at_k"] for m in models}
    ref = models[0] if models else ""
    rbo = {ref: 1.0}
    for m in models[1:]:
        pair = s["pairs"].get(f"{ref}|{m}") or s["pairs"].get(f"{m}|{ref}") or {}
        rbo[m] = pair.get("rbo") or 0.0
    return f"RBO with {ref}", rbo


def speed_quality_points(comparison: dict) -> tuple[str, dict[str, tuple[float, float]]]:
    """(model-only img/s, quality) per model, and the quality's name."""
    label, quality = quality_axis(comparison)
    cost = comparison.get("cost", {}).get("models", {})
    return label, {m: (cost[m]["img_per_s_model_only"], q) for m, q in quality.items() if m in cost}


def variants_table(variants: dict) -> list[str]:
    if not variants:
        return []
    lines = [
        "## Variants against their parents",
        "",
        "| variant | parent | overlap@k | RBO | mean cosine to parent | min cosine to parent |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        lines.append(
            f"| {name} | {v['parent']} | {fmt(v['overlap_at_k'])} | {fmt(v['rbo'])} | "
            f"{fmt(v['mean_parent_cosine'], 5)} | {fmt(v['min_parent_cosine'], 5)} |"
        )
    return lines


def cost_table(comparison: dict) -> list[str]:
    cost = comparison.get("cost")
    if not cost:
        return []
    label, points = speed_quality_points(comparison)
    front = set(pareto(points))
    lines = [
        f"## Cost (measured on {cost['images']} images, median of {cost['repeats']} interleaved passes)",
        "",
        f"| model | file MB | start-up s | img/s end to end | img/s model only | query embed p50/p99 ms | "
        f"search p50/p99 ms | {label} | frontier | providers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, c in cost["models"].items():
        q, s = c["query_embed"], c["search"] or {}
        lines.append(
            f"| {m} | {fmt(c['file_mb'], 1)} | {fmt(c['startup_s'], 2)} | {fmt(c['img_per_s_end_to_end'], 1)} | "
            f"{fmt(c['img_per_s_model_only'], 1)} | {fmt(q['p50_ms'], 1)} / {fmt(q['p99_ms'], 1)} | "
            f"{fmt(s.get('p50_ms'), 2)} / {fmt(s.get('p99_ms'), 2)} | {fmt(points[m][1]) if m in points else '–'} | "
            f"{'✓' if m in front else ''} | {', '.join(p.replace('ExecutionProvider', '') for p in c['providers'])} |"
        )
    lines += ["", f"Peak RSS of the run's own process: {fmt(cost['peak_rss_mb'], 0)} MB.{children_line(cost)} "
              f"Frontier: no other model is both faster (model-only img/s) and better ({label})."]  # fmt: skip
    return lines


def children_line(cost: dict) -> str:
    """Each conversion or quantisation child's own peak RSS (they ran in child processes, apart from the run)."""
    kids = cost.get("children") or []
    if not kids:
        return ""
    verb = {"convert": "convert", "variant": "quantise"}
    parts = [
        f"{c['model']} {verb.get(c['task'], c['task'])} {fmt(c['peak_rss_mb'], 0)} MB"
        + (" (up to date, checked only)" if c["skipped"] else "")
        for c in kids
    ]
    return " Peak RSS of each conversion child: " + ", ".join(parts) + "."
