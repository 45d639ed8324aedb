"""Models grouped by family (CNN, self-supervised ViT, CLIP/SigLIP, user model), with what each vector is and
what it costs, side by side: the family table of summary.md and the order of the HTML model table."""

from __future__ import annotations

from ...models.family import family_order
from .format import fmt


def families_of(results: dict) -> dict[str, dict]:
    """Each model's family row as the run recorded it (older runs: none)."""
    return results.get("families") or {}


def grouped_models(results: dict, models: list[str]) -> list[str]:
    """``models`` grouped by family when the run recorded families, else as given."""
    fams = families_of(results)
    if not fams:
        return list(models)
    return family_order({m: fams.get(m, {}).get("family", "unknown") for m in models})


def families_table(results: dict, comparison: dict) -> list[str]:
    """One row per model, grouped by family: dimension, vector source (pooling), source, and cost."""
    fams = families_of(results)
    if not fams:
        return []
    cost = (comparison.get("cost") or {}).get("models", {})
    lines = [
        "## Models by family",
        "",
        "| family | model | dim | vector (pooling) | source | file MB | img/s model only | query embed p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in grouped_models(results, list(fams)):
        f, c = fams[m], cost.get(m, {})
        lines.append(
            f"| {f['family']} | {m} | {f.get('dim') or '–'} | {f['vector']} | {f.get('source') or '–'} | "
            f"{fmt(c.get('file_mb'), 1)} | {fmt(c.get('img_per_s_model_only'), 1)} | "
            f"{fmt((c.get('query_embed') or {}).get('p50_ms'), 1)} |"
        )
    return lines
