"""Every file of a run folder: results.json, comparison.json, CSVs, summary.md, manifest.json and the figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..duplicates import FILE as DUPLICATES_FILE
from .grid import result_grid
from .html import write_html_report
from .plots import quality_speed_plot, sweep_plot
from .robust import robustness_plot, split_decisions_grid
from .summary import header_lines, summary_markdown


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True, default=str))
    return path


def write_report(
    run_dir: Path,
    results: dict,
    comparison: dict,
    manifest: dict,
    grid_queries: int,
    skipped: dict | None = None,
    copies: list | None = None,
) -> dict[str, Path]:
    """Write every result file into ``run_dir``; returns name -> path."""
    files = {"results": _json(run_dir / "results.json", results)}
    files["comparison"] = _json(run_dir / "comparison.json", comparison)
    if results.get("duplicates"):
        files["duplicates"] = _json(run_dir / DUPLICATES_FILE, results["duplicates"])
    write_csv(run_dir / "per_query.csv", comparison["per_query"])
    write_csv(run_dir / "pairs.csv", comparison["pairs"])
    sweep = manifest.get("sweep") or []
    if sweep:
        write_csv(run_dir / "sweep.csv", sweep)
        files["sweep_plot"] = sweep_plot(sweep, run_dir / "sweep.png", f"{results['experiment']}: index sweep")
    header = header_lines(results["experiment"], results["random_weights"], manifest, results)
    md = summary_markdown(comparison, header, results.get("dataset_root"), sweep, skipped, results, manifest)
    (run_dir / "summary.md").write_text(md)
    files["summary"] = run_dir / "summary.md"
    robust = results.get("robustness")
    if robust:
        files["robustness"] = robustness_plot(
            robust,
            run_dir / "robustness.png",
            f"{results['experiment']}: recall@1 per transform",
            (comparison.get("evidence") or {}).get("robustness"),
        )
        if copies and (grid := split_decisions_grid(robust, copies, run_dir / "robustness_grid.png")):
            files["robustness_grid"] = grid
    if comparison.get("cost"):
        files["cost"] = _json(run_dir / "cost.json", comparison["cost"])
        plot = quality_speed_plot(
            comparison, run_dir / "quality_speed.png", f"{results['experiment']}: quality vs speed"
        )
        if plot:
            files["quality_speed"] = plot
    qs = [q["query"] for q in results["queries"]][:grid_queries]
    if qs:
        files["grid"] = result_grid(
            results["hits"],
            qs,
            results["models"],
            results["top_k"],
            run_dir / "result_grid.png",
            results.get("dataset_root"),
            labels=bool(results.get("label_counts")),  # folders are labels only when the run used them
            query_labels={q["query"]: q.get("label") or "" for q in results["queries"]},
        )
    files["manifest"] = _json(run_dir / "manifest.json", manifest)
    files["report"] = write_html_report([run_dir], run_dir / "report.html")  # reads the files written above
    return files
