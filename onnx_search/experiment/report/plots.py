"""Figures of a run (PNG): the index sweep's recall against queries per second, frontier drawn as a line."""

from __future__ import annotations

from pathlib import Path


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
    ax.set_xlabel("queries per second (one at a time)")
    ax.set_ylabel("recall@k vs exact search")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
