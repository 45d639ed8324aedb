"""Robustness and calibrated distances in the report: tables, a small-multiples plot, a grid of split decisions."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .format import fmt, fmt_iv
from .grid import LINE_H, THUMB, _thumb, wrap_name


def robustness_tables(robust: dict | None, intervals: dict | None = None) -> list[str]:
    """recall@1 of the original per model x transform; with ``intervals`` (evidence["robustness"]) each figure
    carries its 95% interval over copies."""
    if not robust:
        return []
    transforms, per_model = robust["transforms"], robust["per_model"]
    iv = intervals or {}
    ci = " [95% CI]" if iv else ""
    grouped = any(c.get("all", {}).get("recall_at_1", {}).get("unit") == "original" for c in iv.values())
    unit = "; intervals and tests resample originals, each with its copies" if grouped else ""
    lines = [
        f"## Robustness: recall@1 of the original ({robust['originals']} originals x {len(transforms)} transforms, "
        f"seed {robust['seed']}{unit})",
        "",
        "| model | " + " | ".join(transforms) + f" | all copies{ci} | MRR@k (all copies){ci} | margin z (median) |",
        "|---|" + "---|" * (len(transforms) + 3),
    ]
    for m, pm in per_model.items():
        cells = iv.get(m)
        if cells:
            row = [fmt_iv(cells[t]["recall_at_1"], 2) for t in transforms]
            row += [fmt_iv(cells["all"]["recall_at_1"]), fmt_iv(cells["all"]["mrr_at_k"])]
        else:
            row = [fmt(pm["transforms"][t]["recall_at_1"], 2) for t in transforms]
            row += [fmt(pm["mean"]["recall_at_1"]), fmt(pm["mean"]["mrr_at_k"])]
        lines.append(f"| {m} | " + " | ".join(row) + f" | {fmt(robust['margin_z'].get(m), 2)} |")
    wins = {m: [t for t, ws in robust["winners"].items() if m in ws] for m in per_model}
    lines += [
        "",
        "Transforms each model wins (ties shared): "
        + "; ".join(f"{m}: {', '.join(w) or '–'}" for m, w in wins.items()),
    ]
    for m, paths in robust.get("missing_originals", {}).items():
        lines.append(f"- {m}: {len(paths)} originals are not in its collection (left out of its figures): {paths[:3]}")
    for s in robust.get("skipped_originals", []):
        lines.append(f"- skipped original {s['path']}: {s['reason']}")
    return lines


def calibration_table(calibration: dict | None, comparison: dict) -> list[str]:
    if not calibration:
        return []
    lines = [
        "## Distances in comparable units (each model's baseline: queries x a seeded sample of its collection)",
        "",
        "| model | baseline mean cos | baseline std | baseline p99 | top-1 cos (median) | top-1 percentile (median) | "
        "top-1 z (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, b in calibration.items():
        t1 = comparison["summary"]["models"].get(m, {})
        lines.append(
            f"| {m} | {fmt(b['mean'], 4)} | {fmt(b['std'], 4)} | {fmt(b['p99'], 4)} | "
            f"{fmt(t1.get('top1_cosine', {}).get('median'), 4)} | {fmt(t1.get('top1_percentile'), 4)} | "
            f"{fmt(t1.get('top1_z'), 2)} |"
        )
    return lines


def robustness_plot(robust: dict, out: Path, title: str, intervals: dict | None = None) -> Path:
    """Small multiples: one panel per transform, recall@1 per model, so a model's weak spots stand out; with
    ``intervals`` (evidence["robustness"]) each bar carries its 95% interval over copies as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transforms, models = robust["transforms"], list(robust["per_model"])
    cols = min(5, len(transforms))
    rows = -(-len(transforms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.2 * rows), dpi=110, sharey=True, squeeze=False)
    for ax, t in zip(axes.flat, transforms, strict=False):
        vals = [robust["per_model"][m]["transforms"][t]["recall_at_1"] or 0.0 for m in models]
        ax.bar(range(len(models)), vals, color=[f"C{i}" for i in range(len(models))])
        ivs = [((intervals or {}).get(m) or {}).get(t, {}).get("recall_at_1") or {} for m in models]
        if any(iv.get("low") is not None for iv in ivs):
            low = [v if iv.get("low") is None else min(v, iv["low"]) for v, iv in zip(vals, ivs, strict=True)]
            high = [v if iv.get("high") is None else max(v, iv["high"]) for v, iv in zip(vals, ivs, strict=True)]
            err = [[v - lo for v, lo in zip(vals, low, strict=True)], [h - v for v, h in zip(vals, high, strict=True)]]
            ax.errorbar(range(len(models)), vals, yerr=err, fmt="none", ecolor="0.2", elinewidth=1, capsize=2)
        ax.set_title(t, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_xticks(range(len(models)), models, fontsize=6, rotation=30, ha="right")
    for ax in list(axes.flat)[len(transforms) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("recall@1")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def split_decisions_grid(robust: dict, copies: list, out: Path, limit: int = 8) -> Path | None:
    """Copies whose original one model found at rank 1 and another missed: copy, original, then each model's top-1."""
    models = list(robust["per_model"])
    by_copy: dict[int, dict[str, dict]] = {}
    for r in robust["rows"]:
        by_copy.setdefault(r["copy"], {})[r["model"]] = r
    split = [i for i, per in sorted(by_copy.items()) if len({per.get(m, {}).get("rank") == 1 for m in models}) > 1]
    if not split:
        return None
    split = split[:limit]
    font = ImageFont.load_default()
    heads = [wrap_name(m, THUMB - 4, font.getlength) for m in models]  # each model's full name, wrapped
    title_h = LINE_H * (max(len(h) for h in heads) + 1) + 4
    grid = Image.new("RGB", ((2 + len(models)) * THUMB, len(split) * (THUMB + title_h)), "white")
    draw = ImageDraw.Draw(grid)
    for row, i in enumerate(split):
        y = row * (THUMB + title_h)
        c = copies[i]
        try:  # the copy is made again from its original, which may have gone since
            thumb = c.image.copy()
            thumb.thumbnail((THUMB, THUMB))
            grid.paste(thumb, (0, y + title_h))
        except (OSError, ValueError):  # DecodeError is a ValueError
            draw.text((2, y + title_h + 2), "original unreadable", fill="red", font=font)
        draw.text((2, y + 2), f"copy: {c.transform}"[:20], fill="black", font=font)
        grid.paste(_thumb(str(c.original)), (THUMB, y + title_h))
        draw.text((THUMB + 2, y + 2), "original", fill="black", font=font)
        for mi, m in enumerate(models):
            r = by_copy[i].get(m, {})
            ok = r.get("rank") == 1
            x = (2 + mi) * THUMB
            for n, line in enumerate(heads[mi]):
                draw.text((x + 2, y + 2 + n * LINE_H), line, fill="navy", font=font)
            draw.text(
                (x + 2, y + 2 + len(heads[mi]) * LINE_H),
                "found" if ok else f"missed (rank {r.get('rank') or '>k'})",
                fill="darkgreen" if ok else "red",
                font=font,
            )
            if r.get("top1_path"):
                grid.paste(_thumb(r["top1_path"]), (x, y + title_h))
            draw.rectangle(
                (x, y + title_h, x + THUMB - 1, y + title_h + THUMB - 1), outline="green" if ok else "red", width=3
            )
    grid.save(out)
    return out
