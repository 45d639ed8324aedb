"""The top of a multi-run page: the runs, what keeps their figures apart, and one table of models across runs."""

from __future__ import annotations

from .format import fmt, fmt_p, index_text
from .hardware import cpu_text, gpu_text, isa_text
from .html_evidence import num, value_html
from .html_parts import esc
from .multi import COLUMNS, RSS, Column, Comparison, RunView

MULTI_CSS = """
.notice{background:#fff4d6;border:1px solid #d9a520;padding:8px 12px;border-radius:4px;margin:8px 0;max-width:1100px}
table.xrun td,table.xrun th{white-space:nowrap;padding:3px 5px}table.xrun small{display:block;color:#555}
table.xrun th.grp{border-left:2px solid #888;text-align:center;white-space:normal}
table.xrun td.first,table.xrun th.first{border-left:2px solid #888}table.xrun tbody th{text-align:left}
.delta{background:#f6f6f6}.better{color:#17751a;font-weight:bold}.worse{color:#b00020;font-weight:bold}
.nc{color:#888;font-style:italic}.absent{color:#aaa}.differs{background:#fff4d6;font-weight:bold}
table.runs td,table.runs th{text-align:left}table.runs td{max-width:300px;overflow-wrap:anywhere}
table.runs td.delta{white-space:nowrap}
.hw{color:#8a5a00;font-weight:bold;font-size:10px;margin-left:2px;cursor:help}td.hwdiff{background:#fff4d6}
.wv{font-weight:normal;font-size:11px;color:#555}.wv.differs{color:#222}.scroll{overflow-x:auto}
details.runbox{border-top:2px solid #888;margin-top:18px}details.runbox>summary{cursor:pointer;font-size:17px;
font-weight:bold;padding:10px 0}
"""


HW_LEGEND = (
    "<p class='meta hwlegend'><sup class='hw'>≠CPU</sup> / <sup class='hw'>≠EP</sup>: measured on a different CPU "
    "(other instruction sets, e.g. AVX2 without VNNI against AVX-512 VNNI, or another CPU model, cores or GPU) or "
    "with a different execution provider than run A; hover the cell for which. Speed depends on all of these; an "
    "INT8 or FP16 variant's quality depends on the instruction sets and the provider (INT8 kernels without VNNI can "
    "saturate), so its figures in the two runs are not the same model's. A full-precision model's quality is not "
    "marked.</p>"
)


def _signed(v: float, digits: int) -> str:
    return f"{v:+.{digits}f}".replace("-", "−")


def _mark(note: str) -> str:
    """The mark beside a cell measured on other hardware than run A (its title says what differs)."""
    if not note:
        return ""
    word = "≠CPU" if "different CPU" in note or "different machine" in note else "≠EP"
    return f"<sup class='hw' title='{esc(note)}'>{word}</sup>"


def _hw(cell: str, note: str) -> str:
    """``cell`` (a ``<td ...>`` string) marked as measured on other hardware than run A: class, title, mark."""
    if not note:
        return cell
    head, _, rest = cell.partition(">")
    head = head.replace("class='", "class='hwdiff ", 1)
    if " title='" in head:
        head = head.replace(" title='", f" title='{esc(note)}. ", 1)
    else:
        head += f" title='{esc(note)}'"
    return f"{head}>{rest.removesuffix('</td>')}{_mark(note)}</td>"


def _delta_cell(cmp: Comparison, run: RunView, col: Column, a: float | None, b: float | None) -> str:
    d, why = cmp.delta(run, col, a, b)
    attrs = f"class='delta{{cls}}' data-run='{run.letter}' data-col='{col.key}'"
    if why:
        return f"<td {attrs.format(cls=' nc')} title='not comparable: {esc(why)}'>n/c</td>"
    if d is None:
        return f"<td {attrs.format(cls='')}></td>"
    cls = " better" if d * col.better > 0 else " worse" if d * col.better < 0 else ""
    text = _signed(d, col.digits) + (
        f"<br><small>{_signed(100 * d / a, 0)}%</small>" if col.key == "img_s" and a else ""
    )
    return f"<td {attrs.format(cls=cls)} title='{run.letter} − A'>{text}</td>"


def _paired_cell(cmp: Comparison, run: RunView, col: Column, model: str) -> str:
    """The paired difference (run − A) with its 95% interval and p; n/c with the reason where not paired."""
    res, why = cmp.paired(run, col, model)
    attrs = f"class='delta{{cls}}' data-run='{run.letter}' data-col='{col.key}'"
    if why:
        return f"<td {attrs.format(cls=' nc')} title='not comparable: {esc(why)}'>n/c</td>"
    if res is None:
        return f"<td {attrs.format(cls='')}></td>"
    d, p = res["diff"], res["p"]
    sig = p < 0.05 and (d["low"] > 0 or d["high"] < 0)
    cls = (" better" if d["mean"] * col.better > 0 else " worse" if d["mean"] * col.better < 0 else "") if sig else ""
    text = (f"{_signed(d['mean'], col.digits)}<span class='ci'>[{num(d['low'], col.digits)}, "
            f"{num(d['high'], col.digits)}]</span><small>p {fmt_p(p)}</small>")  # fmt: skip
    title = f"{run.letter} − A on the same {res['n']} {'copies' if col.paired == 'copy' else 'queries'}, paired"
    return f"<td {attrs.format(cls=cls)} title='{title}'>{text}</td>"


def _runs_table(cmp: Comparison) -> str:
    """One row per run: what it searched, how, where, and its whole-run peak memory."""
    head = ("<tr><th>run</th><th>experiment</th><th>folder</th><th>dataset</th><th>queries</th><th>top_k</th>"
            "<th>index</th><th>augmented copies</th><th>machine</th><th>finished</th>"
            f"<th>{RSS.title}</th><th>Δ&nbsp;vs&nbsp;A</th></tr>")  # fmt: skip
    rows = []
    a_rss = cmp.runs[0].peak_rss_mb
    for run in cmp.runs:
        r, m = run.results, run.manifest
        indexes = {index_text(i) for i in m.get("store", {}).get("index", {}).values()}
        cp = run.copies()
        cells = [run.letter, esc(r.get("experiment", "?")), esc(run.run["dir"]), esc(run.dataset_text()),
                 str(len(r.get("queries", []))), str(r.get("top_k", "?")), esc(", ".join(sorted(indexes)) or "–"),
                 f"{cp[0]} originals × {', '.join(cp[1])}, seed {cp[2]}" if cp else "–",
                 _machine_cell(cmp, run),
                 esc(m.get("finished_at", "?")), fmt(run.peak_rss_mb, 0)]  # fmt: skip
        delta = "<td></td>" if run is cmp.runs[0] else _delta_cell(cmp, run, RSS, a_rss, run.peak_rss_mb)
        rows.append(f"<tr data-run='{run.letter}'>" + "".join(f"<td>{c}</td>" for c in cells) + delta + "</tr>")
    return f"<h2>Runs</h2><table class='runs'>{head}{''.join(rows)}</table>"


def _machine_cell(cmp: Comparison, run: RunView) -> str:
    """The run's hardware: CPU and cores, ISA flags, GPU, onnxruntime and the providers that ran; highlighted
    where it differs from run A's."""
    m = run.machine
    if not m:
        return "–"
    ran = sorted({p for p in (run.provider(x) for x in run.models) if p})
    lines = [cpu_text(m), isa_text(m), f"GPU: {gpu_text(m)}",
             f"onnxruntime {m.get('onnxruntime') or '?'}, ran on {', '.join(ran) or '?'}"]  # fmt: skip
    a = cmp.runs[0].machine or {}
    a_ran = sorted({p for p in (cmp.runs[0].provider(x) for x in cmp.runs[0].models) if p})
    mine = [cpu_text(m), isa_text(m), gpu_text(m), ran]
    theirs = [cpu_text(a), isa_text(a), gpu_text(a), a_ran]
    differs = run is not cmp.runs[0] and bool(a) and mine != theirs
    cls = " class='differs'" if differs else ""
    return f"<span{cls} data-hw='{esc(isa_text(m))}'>" + "<br>".join(esc(x) for x in lines) + "</span>"


def _notices(cmp: Comparison) -> str:
    """Say where runs differ in what they measured, instead of letting the table pretend the numbers compare."""
    out = []
    for run in cmp.runs[1:]:
        diffs = cmp.differences.get(run.letter, {})
        if diffs:
            hit = [cmp.column_title(c) for c in COLUMNS if set(c.needs) & set(diffs)]
            out.append(f"<div class='notice' data-run='{run.letter}'><b>{run.letter} and A are not like for like:</b> "
                       f"{esc('; '.join(diffs.values()))}. Their figures stand side by side, but the Δ column shows "
                       f"n/c instead of a difference for {esc(', '.join(hit))}.</div>")  # fmt: skip
    lacking = [r.letter for r in cmp.runs if cmp.reference not in r.models]
    if lacking:
        out.append(f"<div class='notice'>Run{'s' if len(lacking) > 1 else ''} {', '.join(lacking)} "
                   f"{'have' if len(lacking) > 1 else 'has'} no model {esc(cmp.reference)}: no overlap figures there "
                   "(choose another with <code>--reference</code>).</div>")  # fmt: skip
    random = [
        f"{r.letter}: {', '.join(r.results['random_weights'])}" for r in cmp.runs if r.results.get("random_weights")
    ]
    if random:
        out.append(f"<div class='banner'>RANDOM WEIGHTS ({esc('; '.join(random))}): the figures show the pipeline "
                   "working, not what these models learned.</div>")  # fmt: skip
    return "".join(out)


def _weights(cmp: Comparison, model: str) -> str:
    """Weights and variant under the model's name: once when every run that has the model agrees, else per run
    (highlighted: the same name with other weights, e.g. before and after fine-tuning)."""
    seen = {r.letter: r.model_info(model) for r in cmp.runs if model in r.models}
    text = {k: f"{i.get('weights') or '?'} · {i.get('variant') or 'fp32'}" for k, i in seen.items()}
    if len(set(text.values())) <= 1:
        return f"<div class='wv'>{esc(next(iter(text.values()), ''))}</div>"
    return "<div class='wv differs'>" + "<br>".join(f"{k}: {esc(t)}" for k, t in text.items()) + "</div>"


def _models_table(cmp: Comparison) -> str:
    """Rows: models matched by name. Columns: per figure, each run's value and its difference from run A."""
    figs = {(r.letter, m): r.figures(m, cmp.reference) for r in cmp.runs for m in r.models}
    cols = [c for c in COLUMNS if any(f[c.key] is not None for f in figs.values())]
    later = cmp.runs[1:]
    head1 = ["<th rowspan='2'>model <span class='meta'>(weights · variant)</span></th>"]
    head1 += [f"<th class='grp' colspan='{2 * len(cmp.runs) - 1}'>{esc(cmp.column_title(c))}</th>" for c in cols]
    per_col = "<th class='first'>A</th>" + "".join(f"<th>{r.letter}</th><th>Δ {r.letter}−A</th>" for r in later)
    head2 = per_col * len(cols)
    rows, marked = [], False
    for m in cmp.models:
        cells = [f"<th>{esc(m)}{_weights(cmp, m)}</th>"]
        for c in cols:
            a = figs.get(("A", m), {}).get(c.key)
            for i, r in enumerate(cmp.runs):
                first = " first" if i == 0 else ""
                if m not in r.models:
                    cells.append(f"<td class='absent{first}' data-run='{r.letter}' data-col='{c.key}' "
                                 f"title='not in run {r.letter}'>–</td>")  # fmt: skip
                else:
                    v = figs[(r.letter, m)][c.key]
                    iv = r.interval(m, c.key, cmp.reference) if c.paired else None
                    text = value_html(v, iv, c.digits)
                    cell = f"<td class='v{first}' data-run='{r.letter}' data-col='{c.key}'>{text}</td>"
                    cells.append(_hw(cell, cmp.hardware_note(r, c, m) if v is not None else ""))
                note = cmp.hardware_note(r, c, m)
                if i and c.paired:
                    cells.append(_hw(_paired_cell(cmp, r, c, m), note))
                elif i:
                    b = figs.get((r.letter, m), {}).get(c.key)
                    delta = _delta_cell(cmp, r, c, a if m in cmp.runs[0].models else None, b)
                    cells.append(_hw(delta, note if "n/c" not in delta else ""))  # n/c's title already says why
                marked = marked or bool(note)
        rows.append(f"<tr data-model='{esc(m)}'>{''.join(cells)}</tr>")
    return (f"<h2>Models across runs</h2><div class='scroll'><table class='xrun'><thead><tr>{''.join(head1)}</tr>"
            f"<tr>{head2}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            "<p class='meta'>Models are matched by name. Each quality figure shows its 95% interval. Δ: the run's "
            "figure minus run A's. For quality figures the difference is paired on the same queries (or copies) of "
            "both runs: mean difference, its 95% paired bootstrap interval and a paired randomisation p (not "
            "corrected across cells); green better, red worse only where p < 0.05 and the interval excludes 0, so an "
            "uncoloured Δ is a tie. n/c: not comparable (other data, queries, copies, k or ground truth), hover for "
            "why; –: not measured, or the model is not in that run. img/s: model only, median of the cost phase; "
            "peak RSS: the run's own process.</p>" + (HW_LEGEND if marked else ""))  # fmt: skip


def comparison_html(cmp: Comparison) -> str:
    """Runs, notices, then the models table: the part of a multi-run page above the per-run sections."""
    return _runs_table(cmp) + _notices(cmp) + _models_table(cmp)
