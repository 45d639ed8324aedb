"""The Markdown summary printed at the end of ``run`` and saved as summary.md."""

from __future__ import annotations

from collections import Counter

from ..duplicates import summary_line as duplicates_line
from ..judges import summary_line as judges_line
from .costs import cost_table, variants_table
from .families import families_table
from .format import fmt, fmt_iv, fmt_p, holm_intervals_note, num, one_model, pair_interval, relative
from .hardware import cpu_clause, machine_line, providers_ran
from .hardware import note_lines as hardware_notes
from .robust import calibration_table, robustness_tables


def header_lines(
    experiment: str, random_models: list[str], manifest: dict | None = None, results: dict | None = None
) -> list[str]:
    """The title, the random-weights warning, then (given the run's manifest) the machine it ran on, and (given its
    results) the run's warnings and each INT8 variant made for another CPU."""
    lines = [f"# {experiment}"]
    if random_models:
        lines.append(
            f"**WARNING: {', '.join(random_models)} use RANDOM weights (ImageNet weights could not be "
            "had). Distances and rankings show the pipeline working, not what these models learned.**"
        )
    if manifest is not None:
        lines += ["", machine_line(manifest.get("machine"), providers_ran(manifest))]
    if results is not None:
        lines += [line for w in hardware_notes(results, manifest) for line in ("", f"**Warning:** {w}")]
    return lines


QUALITY_COLUMNS = {"p_at_k": "P@k", "recall_at_k": "R@k", "ap_at_k": "mAP@k", "ndcg_at_k": "nDCG@k",
                   "judged_at_k": "judged@k"}  # fmt: skip


def method_line(ev: dict) -> str:
    """How the intervals and tests were made, written next to every table that shows them."""
    m = ev["method"]
    return (f"Intervals: {int(m['confidence'] * 100)}% {m['interval']}, {m['resamples']} resamples, seed {m['seed']}. "
            f"Tests: {m['test']} on the same queries ({m['test_library']}, exact up to n = {m['exact_up_to_n']}), "
            f"{m['correction']}-adjusted across the pairs of each metric.")  # fmt: skip


def verdict_lines(ev: dict | None, clause: str = "") -> list[str]:
    """The verdict; ``clause``: the CPU it holds for (``hardware.cpu_clause``), after its text."""
    if not ev or not ev.get("verdict"):
        return []
    v = ev["verdict"]
    lines = ["## Verdict", "", f"**{' '.join(filter(None, (v['text'], clause)))}**"]
    if one_model(v):  # no pairs, no tests, no floor
        lines += ["", f"Primary metric {v['metric_label']} on {v.get('n', '?')} queries. Only one model: there is "
                  "nothing to compare, so no pairs are tested."]  # fmt: skip
    elif v.get("best") is not None:
        cost = {"img_per_s": "model-only img/s", "query_p50": "query embed p50", "file_mb": "file size"}[v["cost"]]
        unit = v.get("unit", "query")
        units = f" ({v['units']} {unit}s, the unit resampled and tested)" if unit != "query" else ""
        lines += ["", f"Primary metric {v['metric_label']} on {v.get('n', '?')} queries{units}. Top group: the models "
                  f"no other model beats significantly (Holm-adjusted p < 0.05 over the {v.get('pairs_tested', '?')} "
                  f"pairs); the pick is the cheapest of the top group on {cost} (set `verdict: {{metric, cost}}` in "
                  "the YAML). Smallest attainable Holm-adjusted p: "
                  f"{fmt_p(v['holm_floor']) if v.get('holm_floor') is not None else '–'}."]  # fmt: skip
    return lines


def _models_table(s: dict, ev: dict | None = None) -> list[str]:
    quality = (ev or {}).get("quality") or {}
    shown = [k for k in QUALITY_COLUMNS if any(k in m for m in s["models"].values())]
    cols = ["model", "top-1 cos (median)", "top-k cos (median)", "top-k cos (p25–p75)"]
    cols += [QUALITY_COLUMNS[k] + (" [95% CI]" if k in quality else "") for k in shown]
    lines = ["## Models", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for m, ms in s["models"].items():
        t1, tk = ms["top1_cosine"], ms["topk_cosine"]
        row = [m, fmt(t1.get("median")), fmt(tk.get("median")), f"{fmt(tk.get('p25'))}–{fmt(tk.get('p75'))}"]
        row += [fmt_iv(quality[k].get(m)) if k in quality else fmt(ms.get(k)) for k in shown]
        lines.append("| " + " | ".join(row) + " |")
    if shown and quality:
        lines += ["", method_line(ev)]
    return lines


def paired_tables(ev: dict | None, top_k: int) -> list[str]:
    """Every pair of models on each tested metric: difference [interval], p, Holm p, not shown different or better.
    The intervals are the Holm-consistent ones where every pair has one (as in report.html), else each pair's own,
    labelled unadjusted."""
    pairs = (ev or {}).get("pairs") or {}
    if not pairs:
        return []
    from ..evidence_section import metric_label

    adjusted = all(r.get("diff_holm") for rows in pairs.values() for r in rows)
    ci = "Holm-consistent CI" if adjusted else "95% CI, unadjusted"
    lines, levels = ["## Paired differences between models (same queries)", "", method_line(ev)], {}
    for metric, rows in pairs.items():
        lines += ["", f"| {metric_label(metric, top_k)}: a vs b | a − b [{ci}] | p | Holm-adjusted p | verdict |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            d = r["diff"]
            word = "not shown different" if not r["significant"] else f"{r['a'] if d['mean'] > 0 else r['b']} better"
            if adjusted:
                iv = r["diff_holm"]
                cell = f"{num(iv['mean'])} {pair_interval(iv)}"
                if not r["significant"]:
                    levels[metric_label(metric, top_k)] = iv.get("confidence")
            else:
                cell = fmt_iv(d)
            lines.append(f"| {r['a']} vs {r['b']} | {cell} | {fmt_p(r['p'])} | {fmt_p(r['p_holm'])} | {word} |")
    if adjusted:
        note = holm_intervals_note(levels) + " The verdict column follows the Holm-adjusted p (< 0.05)."
    else:
        note = ("The intervals are unadjusted 95% intervals of each pair alone; the verdict column follows the "
                "Holm-adjusted p (< 0.05), which accounts for every pair of the metric.")  # fmt: skip
    return [*lines, "", note + " A pair not shown different is not shown equal: this run cannot tell the two apart."]


def _pairs_table(s: dict, root: str | None, ev: dict | None = None) -> list[str]:
    if not s["pairs"]:
        return []
    agreement = (ev or {}).get("agreement") or {}
    lines = [
        "## Agreement between models",
        "",
        "| pair | overlap@k [95% CI] | Jaccard | RBO [95% CI] | Kendall τ (union) | most disagreed query |",
        "|---|---|---|---|---|---|",
    ]
    for pair, ps in s["pairs"].items():
        worst = ps["most_disagreed"][0] if ps["most_disagreed"] else {"query": "–", "rbo": None}
        iv = agreement.get(pair) or {}
        lines.append(
            f"| {pair.replace('|', ' vs ')} | {fmt_iv(iv['overlap_at_k']) if iv else fmt(ps['overlap_at_k'])} | "
            f"{fmt(ps['jaccard'])} | {fmt_iv(iv['rbo']) if iv else fmt(ps['rbo'])} | {fmt(ps['kendall_tau'])} | "
            f"{relative(worst['query'], root)} (RBO {fmt(worst['rbo'])}) |"
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
    manifest: dict | None = None,
) -> str:
    """Header, the skipped files, then the computed tables (models, agreement, variants), then the measured ones
    (cost, index sweep). ``manifest``: the run's, for the CPU its verdict holds for."""
    s = comparison["summary"]
    ev = comparison.get("evidence")
    verdict = verdict_lines(ev, cpu_clause(results or {}, manifest))
    lines = [*header, *(["", *verdict] if verdict else []), "", f"top_k = {s['top_k']}, queries = {s['queries']}"]
    lines += note_lines(skipped, results)
    results = results or {}
    tables = (
        _models_table(s, ev),
        paired_tables(ev, s["top_k"]),
        families_table(results, comparison),
        _pairs_table(s, root, ev),
        calibration_table(results.get("calibration"), comparison),
        robustness_tables(results.get("robustness"), (ev or {}).get("robustness")),
        variants_table(results.get("variants") or {}, (ev or {}).get("variants"), (manifest or {}).get("machine")),
        cost_table(comparison),
    )
    for section in (*tables, _sweep_table(sweep or [])):
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"


def console_summary(
    comparison: dict, header: list[str], skipped: dict | None, results: dict, run_dir, manifest: dict | None = None
) -> str:
    """What ``run`` prints at the end: the verdict (with the CPU it holds for, given the manifest), the notes on
    the data, one table of the models (the verdict's metric with its interval, and model-only speed where
    measured), and where the rest is."""
    s = comparison["summary"]
    ev = comparison.get("evidence") or {}
    v = ev.get("verdict") or {}
    clause = cpu_clause(results, manifest)
    lines = [*header, *(["", f"**{' '.join(filter(None, (v['text'], clause)))}**"] if v.get("text") else [])]
    lines += ["", f"top_k = {s['top_k']}, queries = {s['queries']}", *note_lines(skipped, results)]
    metric = v.get("metric")
    ivs = (ev.get("quality") or {}).get(metric) or {
        m: cell["all"].get(metric) for m, cell in (ev.get("robustness") or {}).items() if metric in cell.get("all", {})
    }
    speed = (comparison.get("cost") or {}).get("models") or {}
    cols = ["model", *([f"{v['metric_label']} [95% CI]"] if ivs else []), *(["img/s (model only)"] if speed else [])]
    lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for m in s["models"]:
        row = [m, *([fmt_iv(ivs.get(m))] if ivs else [])]
        if speed:
            row.append(fmt((speed.get(m) or {}).get("img_per_s_model_only"), 1))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Every table, the paired tests and the method: {run_dir}/summary.md (and report.html)"]
    return "\n".join(lines) + "\n"


def note_lines(skipped: dict | None, results: dict | None) -> list[str]:
    """The notes on the data under the verdict: skipped files, files removed since the last run, skipped queries,
    the labels decision, the duplicate report and the judges' agreement (results["judges"])."""
    lines = []
    if skipped is not None:
        lines += ["", f"Ingest skipped {skipped['count']} files (listed with reasons in {skipped['list']})."]
    results = results or {}
    if (removed := results.get("removed_since_last_run") or {}).get("count"):  # pruned by this run's ingest
        lines += ["", f"Removed since the last run: {removed['count']} files no longer in the folder, pruned from the "
                      f"catalogue and every collection (listed in {removed['list']} in the run folder)."]  # fmt: skip
    if failed := results.get("skipped_queries"):  # each reason once, with how many queries it cost
        why = Counter(q["reason"] for q in failed)
        lines += ["", f"Skipped {len(failed)} queries (paths in results.json): "
                      + "; ".join(f"{n} {r}" for r, n in why.most_common()) + "."]  # fmt: skip
    if (results.get("labels") or {}).get("text"):  # whether folder names were labels, and why
        lines += ["", results["labels"]["text"]]
    if results.get("duplicates"):  # the duplicate report, and the rule the copies ground truth follows
        lines += ["", duplicates_line(results["duplicates"])]
    if judges := judges_line(results.get("judges")):  # how far the judges behind the qrels agree (2+ judges)
        lines += ["", judges]
    return lines
