"""report.html: one self-contained page per run that opens from disk; several runs give one page with a table
comparing them on top (multi.py, multi_html.py) and each run's report collapsed below it.

Everything is inline (CSS, a small script, thumbnails, SVG plots): no network at view time. The tables and the
query cards are plain HTML, so the page reads without JavaScript; the script only sorts and filters the cards.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from ..compare import rankings
from .card import CARD_CSS, card_html, hit_html, model_row_html, query_html
from .families import families_of, grouped_models
from .format import fmt, index_text, relative
from .hardware import cpu_clause, machine_line, note_lines, providers_ran
from .html_evidence import EVIDENCE_CSS, evidence_of, pairs_html, value_html, verdict_html
from .html_parts import esc, heatmap, svg_histograms, thumbnail_css
from .html_quality import robustness_html, variants_html
from .multi import Comparison, RunView, compare_runs
from .multi_html import MULTI_CSS, comparison_html

RAW_FILES = (
    "results.json",
    "comparison.json",
    "per_query.csv",
    "pairs.csv",
    "cost.json",
    "manifest.json",
    "summary.md",
)

STYLE = """
body{font:14px system-ui,sans-serif;margin:0 24px 40px;color:#222}h1{margin:18px 0 4px}h2{margin-top:28px}
.banner{background:#b00020;color:#fff;padding:10px 14px;font-weight:bold;border-radius:4px;margin:10px 0}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child{text-align:left}.heat td{min-width:60px;text-align:center}.heats{display:flex;gap:30px}
.controls{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ddd;z-index:1}
.controls label{margin-right:14px}.hidden{display:none}.meta{color:#555}
.warn{background:#fff4d6;border:1px solid #d9a520;padding:6px 12px;border-radius:4px;margin:6px 0;max-width:1100px}
"""

SCRIPT = """
document.querySelectorAll('section.run').forEach(function(run){
  var box=run.querySelector('.cards'); if(!box)return;
  var cards=Array.prototype.slice.call(box.querySelectorAll('.card'));
  function apply(){
    var by=run.querySelector('.sort').value, label=run.querySelector('.flabel').value;
    var shown={}; run.querySelectorAll('.fmodel').forEach(function(c){shown[c.value]=c.checked;});
    var sorted=cards.slice().sort(function(a,b){
      if(by==='order')return a.dataset.order-b.dataset.order;
      var x=parseFloat(a.dataset[by]),y=parseFloat(b.dataset[by]);
      if(isNaN(x))x=9;if(isNaN(y))y=9;return x-y||a.dataset.order-b.dataset.order;});
    sorted.forEach(function(c){box.appendChild(c);
      c.classList.toggle('hidden',label!=='*'&&c.dataset.label!==label);
      c.querySelectorAll('.row[data-model]').forEach(function(r){r.classList.toggle('hidden',!shown[r.dataset.model]);});});
  }
  run.querySelectorAll('select,input').forEach(function(e){e.addEventListener('change',apply);});
});
function openRun(){var d=location.hash&&document.querySelector('details'+location.hash);if(d)d.open=true;}
window.addEventListener('hashchange',openRun);openRun();
"""


def _load(run_dir: Path) -> dict:
    def read(name):
        p = run_dir / name
        return json.loads(p.read_text()) if p.is_file() else {}

    return {
        "dir": run_dir,
        "results": read("results.json"),
        "comparison": read("comparison.json"),
        "manifest": read("manifest.json"),
    }


def _header(run: dict, lead: str = "") -> str:
    """Title, run line, the random-weights banner, then ``lead`` (the verdict), then the machine, the run's
    warnings (a variant's low agreement, an INT8 file made for another CPU), provenance and versions."""
    r, m = run["results"], run["manifest"]
    out = [
        f"<h1>{esc(r['experiment'])}</h1>",
        f"<p class='meta'>finished {esc(m.get('finished_at', '?'))}, top_k {r['top_k']}, metric {esc(r['metric'])}, "
        f"{len(r['queries'])} queries, dataset {esc(r.get('dataset_root', ''))}</p>",
    ]
    if r.get("random_weights"):
        out.append(f"<div class='banner'>RANDOM WEIGHTS: {esc(', '.join(r['random_weights']))}. Distances and rankings "
                   "show the pipeline working, not what these models learned.</div>")  # fmt: skip
    out.append(lead)
    ran = providers_ran(m, run["comparison"].get("cost"))
    out.append(f"<p class='machine'>{esc(machine_line(m.get('machine'), ran))}</p>")
    out += [f"<div class='warn' role='note'><b>Warning:</b> {esc(w)}</div>" for w in note_lines(r, m)]
    rows = "".join(
        f"<tr><td>{esc(n)}</td><td>{esc(d.get('weights'))}</td><td>{esc(', '.join(d.get('providers_active', [])))}</td>"
        f"<td>{esc(index_text(m.get('store', {}).get('index', {}).get(n, {})))}</td></tr>"
        for n, d in m.get("models", {}).items()
    )
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    out.append(f"<table><tr><th>model</th><th>weights</th><th>providers that ran</th><th>index</th></tr>{rows}</table>")
    out.append(f"<p class='meta'>{esc(versions)}</p>")
    return "".join(out)


def _metrics(run: dict) -> str:
    """The model table, grouped by family (when the run recorded families): family, dim, vector source, quality
    and cost side by side."""
    s, cost = run["comparison"].get("summary", {}), run["comparison"].get("cost", {}).get("models", {})
    quality = evidence_of(run["comparison"]).get("quality") or {}
    fams = families_of(run["results"])
    keys = [("p_at_k", "P@k"), ("recall_at_k", "R@k"), ("ap_at_k", "mAP@k"), ("ndcg_at_k", "nDCG@k"),
            ("judged_at_k", "judged@k"), ("top1_z", "top-1 z")]  # fmt: skip
    keys = [(k, t) for k, t in keys if any(k in v for v in s.get("models", {}).values())]
    ci = " <span class='meta'>[95% CI]</span>"
    head = "<tr><th>model</th>" + ("<th>family</th><th>dim</th><th>vector</th>" if fams else "")
    head += "<th>top-1 cos</th>" + "".join(f"<th>{t}{ci if k in quality else ''}</th>" for k, t in keys)
    head += "<th>img/s (model)</th><th>query p50 ms</th><th>MB</th>" if cost else ""
    rows = []
    for m in grouped_models(run["results"], list(s.get("models", {}))):
        ms, f = s["models"][m], fams.get(m, {})
        cells = [esc(m)] + ([esc(f.get("family")), fmt(f.get("dim")), esc(f.get("vector"))] if fams else [])
        cells += [fmt(ms["top1_cosine"].get("median"), 4)]
        cells += [value_html(ms.get(k), quality.get(k, {}).get(m)) for k, _ in keys]
        if cost and m in cost:
            c = cost[m]
            cells += [fmt(c["img_per_s_model_only"], 1), fmt(c["query_embed"]["p50_ms"], 1), fmt(c["file_mb"], 1)]
        rows.append("<tr>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    gt = s.get("ground_truth") or {}
    note = ""
    if gt.get("kind") == "qrels":
        note = (f"<p class='meta'>Quality on judged relevance: {gt.get('judged_queries')} judged queries; "
                "unjudged hits are removed before scoring (condensed lists); judged@k is the share of each model's "
                "top-k that was judged.</p>")  # fmt: skip
    return f"<h2>Models</h2>{note}<table class='models'>{head}</tr>{''.join(rows)}</table>"


def _agreement_and_distances(run: dict) -> str:
    r, s = run["results"], run["comparison"].get("summary", {})
    models, pairs = r["models"], s.get("pairs", {})
    ivs = evidence_of(run["comparison"]).get("agreement") or {}
    ci = " [95% CI]" if ivs else ""
    out = ["<h2>Agreement</h2><div class='heats'>",
           heatmap(models, pairs, "overlap_at_k", f"overlap@{r['top_k']}{ci}", ivs),
           heatmap(models, pairs, "rbo", f"rank-biased overlap{ci}", ivs), "</div><h2>Distances</h2>"]  # fmt: skip
    ranked = rankings(r["hits"])
    out.append(
        svg_histograms(
            {m: [h["cosine"] for q in ranked.values() for h in q.get(m, [])] for m in models}, "top-k cosine per model"
        )
    )
    if all("z" in h for h in r["hits"]) and r["hits"]:
        out.append(
            svg_histograms(
                {m: [h["z"] for q in ranked.values() for h in q.get(m, [])] for m in models},
                "top-k z against each model's baseline",
            )
        )
    return "".join(out)


def _cards(run: dict, missing: set[int]) -> str:
    r, comp = run["results"], run["comparison"]
    models, root = r["models"], r.get("dataset_root")
    ranked = rankings(r["hits"])
    rbo = defaultdict(list)
    for p in comp.get("pairs", []):
        rbo[p["query"]].append(p["rbo"])
    pk = defaultdict(list)
    for row in comp.get("per_query", []):
        if "p_at_k" in row:
            pk[row["query"]].append(row["p_at_k"])
    labels = sorted({q["label"] for q in r["queries"] if q["label"]})
    ctrl = ["<div class='controls'><label>sort <select class='sort'><option value='order'>query order</option>"
            "<option value='rbo'>disagreement (lowest RBO first)</option>"
            "<option value='pk'>label metric (lowest P@k first)</option>"
            "</select></label><label>label <select class='flabel'><option value='*'>all</option>"]  # fmt: skip
    ctrl += [f"<option value='{esc(lb)}'>{esc(lb)}</option>" for lb in labels] + ["</select></label> models:"]
    ctrl += [f"<label><input type='checkbox' class='fmodel' value='{esc(m)}' checked> {esc(m)}</label>" for m in models]
    cards = []
    for order, q in enumerate(r["queries"]):
        per = ranked.get(q["query"], {})
        mean_rbo = sum(rbo[q["query"]]) / len(rbo[q["query"]]) if rbo[q["query"]] else ""
        mean_pk = sum(pk[q["query"]]) / len(pk[q["query"]]) if pk[q["query"]] else ""
        meta = f"<span class='meta'>[{esc(q['label'])}] RBO {fmt(mean_rbo or None)}</span>"
        title = f"{esc(relative(q['query'], root))} {meta}"
        rows = [query_html(q["id"], " missing" if q["id"] in missing else "")]
        for m in models:
            others = {h["id"] for o in models if o != m for h in per.get(o, [])}
            hits = [
                hit_html(h["id"], h["path"], h["label"], h["cosine"],
                         (" shared" if h["id"] in others else "") + (" missing" if h["id"] in missing else ""))
                for h in per.get(m, [])
            ]  # fmt: skip
            rows.append(model_row_html(m, hits))
        cards.append(card_html(title, rows, {"order": order, "rbo": mean_rbo, "pk": mean_pk, "label": q["label"]}))
    note = (
        "<p class='meta'>A green frame marks a hit another model also found; "
        "a dashed red one an image whose file is gone.</p>"
    )
    return "<h2>Queries</h2>" + "".join(ctrl) + "</div>" + note + "<div class='cards'>" + "".join(cards) + "</div>"


def _raw_links(run: dict, out: Path) -> str:
    links = [
        f"<a href='{esc(os.path.relpath(run['dir'] / n, out.parent))}'>{n}</a>"
        for n in RAW_FILES
        if (run["dir"] / n).is_file()
    ]
    return "<h2>Raw data</h2><p>" + " · ".join(links) + "</p>"


def _multi_top(cmp: Comparison) -> str:
    """The page head of several runs: the comparison first, then links to each run's (collapsed) section."""
    names = " vs ".join(esc(r.results.get("experiment", "?")) for r in cmp.runs)
    links = " · ".join(f"<a href='#run{i}'>{r.letter}: {esc(r.results.get('experiment', '?'))}</a>"
                       for i, r in enumerate(cmp.runs))  # fmt: skip
    return (f"<h1>{len(cmp.runs)} runs compared: {names}</h1>" + comparison_html(cmp)
            + f"<h2>Each run</h2><p class='meta'>Open a run to see its full report: {links}</p>")  # fmt: skip


def _with_cpu_clause(run: dict) -> dict:
    """The run's comparison with the CPU its verdict holds for after the verdict's text (a run with INT8)."""
    clause = cpu_clause(run["results"], run["manifest"])
    ev = evidence_of(run["comparison"])
    v = ev.get("verdict") or {}
    if not clause or not v.get("text"):
        return run["comparison"]
    return run["comparison"] | {"evidence": ev | {"verdict": v | {"text": f"{v['text']} {clause}"}}}


def _section(run: dict, i: int, missing: set[int], out: Path, view: RunView | None) -> str:
    """One run's full report; on a multi-run page it sits in a collapsed ``<details>`` headed by its letter."""
    variants = variants_html(run["results"], run["comparison"], run["manifest"].get("machine"))
    quality = robustness_html(run["results"], run["comparison"]) + variants
    body = _header(run, verdict_html(_with_cpu_clause(run))) + _metrics(run) + pairs_html(run["comparison"])
    body += _agreement_and_distances(run) + quality + _cards(run, missing)
    body += _raw_links(run, out)
    if view is None:
        return f"<section class='run' id='run{i}'>{body}</section>"
    r = view.results
    summary = (f"{view.letter} · {esc(r.get('experiment', '?'))} — {esc(view.dataset_text())}, "
               f"{len(view.models)} models, {len(r.get('queries', []))} queries")  # fmt: skip
    section = f"<section class='run'>{body}</section>"
    return f"<details class='runbox' id='run{i}'><summary>{summary}</summary>{section}</details>"


def build_report(run_dirs: list[Path], out: Path, reference: str | None = None) -> str:
    """The page for one or more run folders (each needs results.json and comparison.json). Several runs get the
    cross-run comparison on top (overlap measured against ``reference``, default run A's first model)."""
    runs = [_load(Path(d)) for d in run_dirs]
    cmp = compare_runs(runs, reference) if len(runs) > 1 else None
    paths: dict[int, str] = {}
    for run in runs:
        r = run["results"]
        paths |= {q["id"]: q["query"] for q in r["queries"]} | {h["id"]: h["path"] for h in r["hits"]}
    css, missing = thumbnail_css(paths)
    top = _multi_top(cmp) if cmp else ""
    sections = [_section(run, i, missing, out, cmp.runs[i] if cmp else None) for i, run in enumerate(runs)]
    title = " vs ".join(run["results"]["experiment"] for run in runs)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)} — onnx-search</title>"
            f"<style>{CARD_CSS}{STYLE}{EVIDENCE_CSS}{MULTI_CSS if cmp else ''}\n{css}</style></head>"
            f"<body>{top}{''.join(sections)}"
            f"<script>{SCRIPT}</script></body></html>")  # fmt: skip


def write_html_report(run_dirs: list[Path], out: Path, reference: str | None = None) -> Path:
    out.write_text(build_report(run_dirs, out, reference), encoding="utf-8")
    return out
