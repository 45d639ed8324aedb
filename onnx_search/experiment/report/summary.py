"""The Markdown summary printed at the end of ``run`` and saved as summary.md."""

from __future__ import annotations

from .costs import cost_table, variants_table
from .families import families_table
from .format import fmt, relative
from .robust import calibration_table, robustness_tables


def header_lines(experiment: str, random_models: list[str]) -> list[str]:
    lines = [f"# {experiment}"]
    if random_models:
        lines.append(
            f"**WARNING: {', '.join(random_models)} use RANDOM weights (ImageNet weights could not be "
            "had). Distances and rankings show the pipeline working, not what these models learned.**"
        )
    return lines


def _models_table(s: dict) -> list[str]:
    label = any("p_at_k" in m for m in s["models"].values())
    cols = ["model", "top-1 cos (median)", "top-k cos (median)", "top-k cos (p25–p75)"]
    cols += ["P@k", "R@k", "mAP@k", "nDCG@k"] if label else []
    lines = ["## Models", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for m, ms in s["models"].items():
        t1, tk = ms["top1_cosine"], ms["topk_cosine"]
        row = [m, fmt(t1.get("median")), fmt(tk.get("median")), f"{fmt(tk.get('p25'))}–{fmt(tk.get('p75'))}"]
        if label:
            row += [fmt(ms.get(k)) for k in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _pairs_table(s: dict, root: str | None) -> list[str]:
    if not s["pairs"]:
        return []
    lines = [
        "## Agreement between models",
        "",
        "| pair | overlap@k | Jaccard | RBO | Kendall τ (union) | most disagreed query |",
        "|---|---|---|---|---|---|",
    ]
    for pair, ps in s["pairs"].items():
        worst = ps["most_disagreed"][0] if ps["most_disagreed"] else {"query": "–", "rbo": None}
        lines.append(
            f"| {pair.replace('|', ' vs ')} | {fmt(ps['overlap_at_k'])} | {fmt(ps['jaccard'])} | "
            f"{fmt(ps['rbo'])} | {fmt(ps['kendall_tau'])} | {relative(worst['query'], root)} "
            f"(RBO {fmt(worst['rbo'])}) |"
        )
    return lines


def _sweep_table(sweep: list[dict]) -> list[str]:
    if not sweep:
        return []
    lines = [
        "## Index sweep (recall@k against exact search)",
        "",
        "| model | index | build params | search params | recall@k | p50 ms | p99 ms | QPS | build s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sweep:
        lines.append(
            f"| {r['model']} | {r['index']} | {r['params'] or '–'} | {r['search'] or '–'} | {fmt(r['recall_at_k'])} | "
            f"{fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} | {fmt(r['qps'], 1)} | {fmt(r['build_s'], 2)} |"
        )
    return lines


def summary_markdown(
    comparison: dict,
    header: list[str],
    root: str | None = None,
    sweep: list[dict] | None = None,
    skipped: dict | None = None,
    results: dict | None = None,
) -> str:
    """Header, the skipped files, then the computed tables (models, agreement, variants), then the measured ones
    (cost, index sweep)."""
    s = comparison["summary"]
    lines = [*header, "", f"top_k = {s['top_k']}, queries = {s['queries']}"]
    if skipped is not None:
        lines += ["", f"Ingest skipped {skipped['count']} files (listed with reasons in {skipped['list']})."]
    results = results or {}
    tables = (
        _models_table(s),
        families_table(results, comparison),
        _pairs_table(s, root),
        calibration_table(results.get("calibration"), comparison),
        robustness_tables(results.get("robustness")),
        variants_table(results.get("variants") or {}),
        cost_table(comparison),
    )
    for section in (*tables, _sweep_table(sweep or [])):
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"
