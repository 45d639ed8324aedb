"""Figures of a run (PNG): the index sweep's recall against queries per second, frontier drawn as a line."""

from __future__ import annotations

from pathlib import Path


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, out: Path) -> Path:
    """Labels, grid, legend, then save and close: every figure of a run ends the same way."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def sweep_plot(sweep: list[dict], out: Path, title: str) -> Path:
    """Recall@k (y) vs QPS (x), one marker per index setting and model; each model's Pareto frontier as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..sweep import frontier

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for mi, model in enumerate(dict.fromkeys(r["model"] for r in sweep)):
        rows = [r for r in sweep if r["model"] == model]
        color = f"C{mi}"
        for r in rows:
            marker = {"FLAT": "s", "IVF_FLAT": "o", "HNSW": "^"}.get(r["index"], "x")
            ax.scatter(r["qps"], r["recall_at_k"], color=color, marker=marker, s=36)
            ax.annotate(
                f"{r['index']} {r['search'] or ''}",
                (r["qps"], r["recall_at_k"]),
                fontsize=6,
                alpha=0.7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        front = sorted(frontier([r | {"p50_ms": -r["qps"]} for r in rows]), key=lambda r: r["qps"])
        ax.plot([r["qps"] for r in front], [r["recall_at_k"] for r in front], color=color, label=f"{model} frontier")
    return _finish(fig, ax, "queries per second (one at a time)", "recall@k vs exact search", title, out)


def quality_error(comparison: dict, model: str, y: float) -> tuple[float, float]:
    """The 95% interval (comparison["evidence"]) of the figure plotted at ``y`` for ``model``: the verdict's
    metric when its mean is that point; (y, y) when the run has no interval for it."""
    ev = comparison.get("evidence") or {}
    metric = (ev.get("verdict") or {}).get("metric")
    ivs = [((ev.get("quality") or {}).get(metric) or {}).get(model),
           (((ev.get("robustness") or {}).get(model) or {}).get("all") or {}).get(metric)]  # fmt: skip
    for iv in ivs:
        if iv and iv.get("mean") is not None and abs(iv["mean"] - y) < 1e-9 and iv.get("low") is not None:
            return float(iv["low"]), float(iv["high"])
    return y, y


def quality_speed_plot(comparison: dict, out: Path, title: str) -> Path | None:
    """Quality (P@k or RBO with the reference model) against model-only img/s, the Pareto frontier as a line."""
    from .costs import frontier, speed_quality_points

    label, points = speed_quality_points(comparison)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, (x, y) in points.items():  # each model's 95% interval on the quality axis
        low, high = quality_error(comparison, name, y)
        if high > low:
            ax.errorbar(x, y, yerr=[[y - low], [high - y]], fmt="none", ecolor="0.45", elinewidth=1, capsize=3)
    front = frontier(comparison)  # dominated only by a model at least as fast and significantly better
    for i, (name, (x, y)) in enumerate(points.items()):
        ax.scatter(x, y, s=50, color="C3" if name in front else "C0", zorder=3)
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4 - 10 * (i % 3)), textcoords="offset points")
    line = sorted(points[n] for n in front)
    ax.plot([p[0] for p in line], [p[1] for p in line], color="C3", label="Pareto frontier", zorder=2)
    return _finish(fig, ax, "img/s, model only (higher is cheaper)", label, title, out)
