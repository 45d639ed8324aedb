"""Results on disk: results.json, per-query CSVs, a Markdown summary and side-by-side result grids (PNG)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .preprocess import DecodeError, decode, read_bytes

THUMB = 112
TITLE_H = 26


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def summary_markdown(comparison: dict, header: list[str]) -> str:
    """The summary table shown at the end of ``run`` and saved as summary.md."""
    s = comparison["summary"]
    lines = [*header, "", f"top_k = {s['top_k']}, queries = {s['queries']}", "", "## Models", ""]
    label = any("p_at_k" in m for m in s["models"].values())
    cols = ["model", "top-1 cos (median)", "top-k cos (median)", "top-k cos (p25–p75)"]
    cols += ["P@k", "R@k", "mAP@k", "nDCG@k"] if label else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for m, ms in s["models"].items():
        t1, tk = ms["top1_cosine"], ms["topk_cosine"]
        row = [m, _fmt(t1.get("median")), _fmt(tk.get("median")), f"{_fmt(tk.get('p25'))}–{_fmt(tk.get('p75'))}"]
        if label:
            row += [_fmt(ms.get(k)) for k in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k")]
        lines.append("| " + " | ".join(row) + " |")
    if s["pairs"]:
        lines += [
            "",
            "## Agreement between models",
            "",
            "| pair | overlap@k | Jaccard | RBO | Kendall τ (union) | most disagreed query |",
            "|---|---|---|---|---|---|",
        ]
        for pair, ps in s["pairs"].items():
            worst = ps["most_disagreed"][0] if ps["most_disagreed"] else {"query": "–", "rbo": None}
            lines.append(
                f"| {pair.replace('|', ' vs ')} | {_fmt(ps['overlap_at_k'])} | {_fmt(ps['jaccard'])} | "
                f"{_fmt(ps['rbo'])} | {_fmt(ps['kendall_tau'])} | {Path(worst['query']).name} "
                f"(RBO {_fmt(worst['rbo'])}) |"
            )
    return "\n".join(lines) + "\n"


def _thumb(path: str) -> Image.Image:
    try:
        img = decode(read_bytes(path), draft_size=THUMB)
        img.thumbnail((THUMB, THUMB))
    except DecodeError:
        img = Image.new("RGB", (THUMB, THUMB), (200, 60, 60))
    canvas = Image.new("RGB", (THUMB, THUMB), (240, 240, 240))
    canvas.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return canvas


def result_grid(hits: list[dict], queries: list[str], models: list[str], top_k: int, out: Path) -> Path:
    """One row per query: the query image, then each model's top-k with cosine in the titles."""
    from .compare import rankings

    ranked = rankings(hits)
    cols = 1 + len(models) * top_k
    gap = 8
    w = cols * THUMB + len(models) * gap
    h = len(queries) * (THUMB + TITLE_H)
    grid = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for r, q in enumerate(queries):
        y = r * (THUMB + TITLE_H)
        grid.paste(_thumb(q), (0, y + TITLE_H))
        draw.text((2, y + 2), f"Q {Path(q).name}"[:20], fill="black", font=font)
        draw.text((2, y + 13), f"[{Path(q).parent.name}]"[:20], fill="darkred", font=font)
        for mi, m in enumerate(models):
            for k, hit in enumerate(ranked.get(q, {}).get(m, [])[:top_k]):
                x = (1 + mi * top_k + k) * THUMB + (mi + 1) * gap
                grid.paste(_thumb(hit["path"]), (x, y + TITLE_H))
                draw.text((x + 2, y + 1), f"{m[:10]} #{hit['rank']}", fill="navy", font=font)
                draw.text((x + 2, y + 13), f"cos {hit['cosine']:.3f} {hit['label'][:8]}", fill="black", font=font)
    grid.save(out)
    return out


def write_report(run_dir: Path, results: dict, comparison: dict, header: list[str], grid_queries: int) -> dict:
    """Write every result file into ``run_dir``; returns name -> path."""
    files = {}
    (run_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, sort_keys=True))
    files["results"] = run_dir / "results.json"
    (run_dir / "comparison.json").write_text(json.dumps(comparison, indent=1, ensure_ascii=False, sort_keys=True))
    write_csv(run_dir / "per_query.csv", comparison["per_query"])
    write_csv(run_dir / "pairs.csv", comparison["pairs"])
    md = summary_markdown(comparison, header)
    (run_dir / "summary.md").write_text(md)
    files["summary"] = run_dir / "summary.md"
    qs = [q["query"] for q in results["queries"]][:grid_queries]
    if qs:
        files["grid"] = result_grid(
            results["hits"], qs, results["models"], results["top_k"], run_dir / "result_grid.png"
        )
    return files
