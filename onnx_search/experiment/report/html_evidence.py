"""report.html's evidence: the verdict at the top, figures with their 95% intervals, the pairwise test table.

Everything reads comparison["evidence"] (experiment/evidence_section.py); a run without it shows point figures.
"""

from __future__ import annotations

from .format import fmt, fmt_p, holm_intervals_note, num, one_model, pair_interval
from .html_parts import esc

EVIDENCE_CSS = """
.verdict{border-left:5px solid #2b6cb0;background:#eef4fb;padding:10px 14px;margin:12px 0;font-size:15px}
.verdict.unsure{border-color:#b7791f;background:#fdf6e7}.verdict b{font-weight:600}
.ci{display:block;color:#666;font-size:11px;white-space:nowrap}.sig{font-weight:bold}
.method{color:#555;max-width:900px}
"""

METRIC_TITLES = {"p_at_k": "P@k", "recall_at_k": "R@k", "ap_at_k": "mAP@k", "ndcg_at_k": "nDCG@k",
                 "judged_at_k": "judged@k", "recall_at_1": "recall@1 on copies",
                 "mrr_at_k": "MRR@k on copies"}  # fmt: skip


def evidence_of(comparison: dict) -> dict:
    return comparison.get("evidence") or {}


COST_NAMES = {"img_per_s": "model-only img/s", "query_p50": "query p50", "file_mb": "file size"}


def iv_html(iv: dict | None, digits: int = 3) -> str:
    """``0.950`` over ``[0.867, 1.000]`` (the interval on its own small line); ``–`` when there is no figure."""
    if not iv or iv.get("mean") is None:
        return "–"
    mean = num(iv["mean"], digits)
    if iv.get("low") is None or iv.get("high") is None:
        return mean
    if iv.get("note"):  # no spread to resample: the reason, not a zero-width interval
        return f"{mean}<span class='ci'>({esc(iv['note'])})</span>"
    return f"{mean}<span class='ci'>[{num(iv['low'], digits)}, {num(iv['high'], digits)}]</span>"


def pair_iv_html(iv: dict | None) -> str:
    """A pair's interval (format.pair_interval); one cut at 0 (a pair Holm separates at a later step) is open there:
    ``(0, 0.120]``."""
    if not iv or not iv.get("open_at_zero") or iv.get("mean") is None:
        return iv_html(iv)
    return f"{num(iv['mean'])}<span class='ci'>{esc(pair_interval(iv))}</span>"


def value_html(value, iv: dict | None, digits: int = 3) -> str:
    """The interval when the evidence has one, else the point figure."""
    return iv_html(iv, digits) if iv and iv.get("mean") is not None else fmt(value, digits)


def method_text(ev: dict) -> str:
    """One sentence saying how the intervals and the tests were made."""
    m = ev.get("method") or {}
    if not m:
        return ""
    conf = round(100 * float(m.get("confidence", 0.95)))
    return (
        f"Intervals: {conf}% {esc(m.get('interval', 'bootstrap over queries'))}, {esc(m.get('resamples'))} resamples, "
        f"seed {esc(m.get('seed'))}. Pairs: {esc(m.get('test', ''))}"
        + (f" ({esc(m['test_library'])})" if m.get("test_library") else "")
        + f" on the same queries, {esc(m.get('correction', 'Holm'))}-corrected across the pairs of each metric."
    )


def verdict_html(comparison: dict) -> str:
    """The verdict box for the top of the page; empty when the run has no evidence."""
    ev = evidence_of(comparison)
    v = ev.get("verdict") or {}
    if not v.get("text"):
        return ""
    unsure = "" if v.get("separable") else " unsure"
    lines = [f"<b>Verdict.</b> {esc(v['text'])}"]
    if one_model(v):  # no pairs, no top group
        lines.append(f"<br><span class='meta'>On {esc(v.get('metric_label'))}: only one model, {esc(v['best'])}: "
                     "there is nothing to compare, so no pairs are tested.</span>")  # fmt: skip
    elif v.get("best") is not None:
        tied = ", ".join(v.get("tied") or []) or "none"
        cost = COST_NAMES.get(v.get("cost"), v.get("cost"))
        lines.append(f"<br><span class='meta'>On {esc(v.get('metric_label'))}: best {esc(v['best'])}; not shown "
                     f"different from it (the top group: no model beats them, Holm-adjusted): {esc(tied)}; pick (the "
                     f"cheapest of the top group on {esc(cost)}): {esc(v.get('pick') or 'none')}."
                     "</span>")  # fmt: skip
    need = ", ".join(f"{esc(d)}: {esc(n)}" for d, n in (v.get("queries_for") or {}).items())
    if need:
        lines.append(f"<br><span class='meta'>Queries a paired test needs to detect a difference of (80% power): "
                     f"{need}.</span>")  # fmt: skip
    return f"<div class='verdict{unsure}' role='note'>{''.join(lines)}</div>"


def pairs_html(comparison: dict) -> str:
    """Every pair of models on every tested metric: mean difference [95% CI], p, Holm p; the method beside it."""
    ev = evidence_of(comparison)
    given = {k: rows for k, rows in (ev.get("pairs") or {}).items() if rows}
    pairs = {k: given[k] for k in sorted(given, key=lambda k: (list(METRIC_TITLES).index(k) if k in METRIC_TITLES
                                                               else len(METRIC_TITLES), k))}  # fmt: skip
    top_k = (comparison.get("summary") or {}).get("top_k", "k")
    if not pairs:
        return ""
    adjusted = all(r.get("diff_holm") for rs in pairs.values() for r in rs)
    ci = "Holm-consistent CI" if adjusted else "95% CI, unadjusted"
    head = (f"<tr><th>metric</th><th>model a</th><th>model b</th><th>difference a − b [{ci}]</th><th>p</th>"
            "<th>p (Holm-adjusted)</th><th>significant at 0.05 (Holm)</th></tr>")  # fmt: skip
    rows, levels = [], {}
    for metric, rs in pairs.items():
        for r in rs:
            iv = r["diff_holm"] if adjusted else r.get("diff")
            if adjusted and not r.get("significant"):
                levels[METRIC_TITLES.get(metric, metric).replace("@k", f"@{top_k}")] = iv.get("confidence")
            sig = "<span class='sig'>yes</span>" if r.get("significant") else "no (not shown different)"
            title = METRIC_TITLES.get(metric, metric).replace("@k", f"@{top_k}")
            rows.append(f"<tr><td>{esc(title)}</td><td>{esc(r['a'])}</td>"
                        f"<td>{esc(r['b'])}</td><td>{pair_iv_html(iv)}</td><td>{fmt_p(r.get('p'))}</td>"
                        f"<td>{fmt_p(r.get('p_holm'))}</td><td>{sig}</td></tr>")  # fmt: skip
    if adjusted:
        note = esc(holm_intervals_note(levels))
    else:
        note = "Intervals are unadjusted 95% intervals of each pair alone; significance follows the Holm-adjusted p."
    return (f"<h2>Paired tests between models</h2><p class='meta method'>{method_text(ev)} {note} A pair not shown "
            "different is not shown equal: this run cannot tell the two apart.</p>"
            f"<table class='pairs'>{head}{''.join(rows)}</table>")  # fmt: skip
