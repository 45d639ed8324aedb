"""report.html sections on robustness (recall@1 of each copy's original per transform) and on deployment
variants against their parents (agreement beside speed and size)."""

from __future__ import annotations

from .format import fmt
from .hardware import recipe_mismatch, recipe_text
from .html_evidence import evidence_of, value_html
from .html_parts import esc


def _shade(value: float | None) -> str:
    """A green-to-red background for a 0..1 score, so the weak cells stand out."""
    if value is None:
        return ""
    return f" style='background:hsl({round(120 * value)},60%,85%)'"


def robustness_html(results: dict, comparison: dict | None = None) -> str:
    """recall@1 per model x transform, over all copies and MRR@k, each with its 95% interval over copies when the
    run has evidence; empty when the run made no augmented copies."""
    rob = results.get("robustness") or {}
    per_model, transforms = rob.get("per_model") or {}, rob.get("transforms") or []
    if not per_model:
        return ""
    ivs = evidence_of(comparison or {}).get("robustness") or {}
    ci = " <span class='meta'>[95% CI]</span>" if ivs else ""
    random = set(results.get("random_weights") or [])
    head = "<tr><th>model</th>" + "".join(f"<th>{esc(t)}{ci}</th>" for t in transforms)
    head += f"<th>all copies{ci}</th><th>MRR@k{ci}</th></tr>"
    rows = []
    for m, cell in per_model.items():
        iv = ivs.get(m) or {}
        r1 = [(cell["transforms"].get(t, {}).get("recall_at_1"), iv.get(t, {}).get("recall_at_1")) for t in transforms]
        mean, all_iv = cell["mean"], iv.get("all") or {}
        name = esc(m) + (" <span class='meta'>(random weights)</span>" if m in random else "")
        overall = value_html(mean.get("recall_at_1"), all_iv.get("recall_at_1"))
        rows.append(f"<tr><td>{name}</td>" + "".join(f"<td{_shade(v)}>{value_html(v, i, 2)}</td>" for v, i in r1)
                    + f"<td{_shade(mean.get('recall_at_1'))}><b>{overall}</b></td>"
                    f"<td>{value_html(mean.get('mrr_at_k'), all_iv.get('mrr_at_k'))}</td></tr>")  # fmt: skip
    n = rob.get("originals")
    n = len(n) if isinstance(n, list) else n
    return (f"<h2>Robustness</h2><p class='meta'>recall@1 of the original among each perturbed copy's hits "
            f"({esc(n)} originals × {len(transforms)} transforms, seed {esc(rob.get('seed'))}).</p>"
            f"<table class='robust'>{head}{''.join(rows)}</table>")  # fmt: skip


def variants_html(results: dict, comparison: dict, machine: dict | None = None) -> str:
    """Each variant beside its parent: agreement (overlap@k, RBO, cosine of the same image), cost ratios and, for
    INT8, its recipe, marked where it was made for another CPU than ``machine`` (the run's)."""
    variants = results.get("variants") or {}
    if not variants:
        return ""
    cost = (comparison.get("cost") or {}).get("models", {})
    quality = (comparison.get("summary") or {}).get("models", {})
    ev = evidence_of(comparison)
    agree, pk_iv = ev.get("variants") or {}, (ev.get("quality") or {}).get("p_at_k") or {}
    ci = " <span class='meta'>[95% CI]</span>" if agree else ""
    head = (f"<tr><th>variant</th><th>parent</th><th>overlap@k{ci}</th><th>RBO{ci}</th><th>mean cosine</th>"
            "<th>min cosine</th><th>speed-up (model only)</th><th>size</th>"
            f"<th>P@k{ci if pk_iv else ''}</th><th>P@k of the parent{ci if pk_iv else ''}</th>"
            "<th>INT8 recipe</th></tr>")  # fmt: skip
    rows = []
    for name, v in variants.items():
        parent, c, p = v.get("parent"), cost.get(name, {}), cost.get(v.get("parent"), {})
        speed = (
            c.get("img_per_s_model_only") / p["img_per_s_model_only"] if c and p.get("img_per_s_model_only") else None
        )
        size = f"{fmt(c.get('file_mb'), 1)} / {fmt(p.get('file_mb'), 1)} MB" if c and p else "–"
        pk_v, pk_p = quality.get(name, {}).get("p_at_k"), quality.get(parent, {}).get("p_at_k")
        pk = f"{value_html(pk_v, pk_iv.get(name))}</td><td>{value_html(pk_p, pk_iv.get(parent))}"
        a = agree.get(name) or {}
        rec = v.get("int8_recipe")
        why = recipe_mismatch(rec, machine)
        flag = f" <b class='isa-mismatch' title='{esc(why)}'>⚠ {esc(why)}</b>" if why else ""
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(parent)}</td>"
                    f"<td>{value_html(v.get('overlap_at_k'), a.get('overlap_at_k'))}</td>"
                    f"<td>{value_html(v.get('rbo'), a.get('rbo'))}</td><td>{fmt(v.get('mean_parent_cosine'), 4)}</td>"
                    f"<td>{fmt(v.get('min_parent_cosine'), 4)}</td>"
                    f"<td>{'×' + fmt(speed, 2) if speed else '–'}</td><td>{size}</td><td>{pk}</td>"
                    f"<td class='recipe'>{esc(recipe_text(rec))}{flag}</td></tr>")  # fmt: skip
    return ("<h2>Variants against their parents</h2><p class='meta'>Agreement on the same queries and images; "
            "speed from the run's interleaved cost phase.</p>"
            f"<table class='variants'>{head}{''.join(rows)}</table>")  # fmt: skip
