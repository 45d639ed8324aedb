"""Several runs on one page: each run's headline figures per model, models matched by name, and what makes two
runs' figures comparable (same data, same queries, same k, same copies, same machine) or not.

Runs are lettered A, B, ... in the order given; differences are always against run A. A difference is only
computed where both runs measured the figure under the same conditions: otherwise the reason is given instead. A
quality figure's difference is paired: the same queries (or copies) in both runs, with a paired bootstrap interval
and a paired randomisation p (evidence.paired).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError
from ..evidence import paired
from .hardware import VARIANT_KINDS, hardware_difference, providers_ran, variant_kind


@dataclass(frozen=True)
class Column:
    key: str
    title: str  # "@k" is replaced by "@<k>" when every run has the same top_k
    digits: int
    better: int  # +1: higher is better, -1: lower is better, 0: neither (agreement, calibrated distance)
    needs: tuple[str, ...]  # the conditions (keys of ``differences``) both runs must share to subtract
    paired: str = ""  # "query" / "copy": a quality figure, compared between runs only paired on the same units


QUALITY_NEEDS = ("dataset", "queries", "top_k", "ground_truth")
COLUMNS = (
    Column("p_at_k", "P@k", 3, +1, QUALITY_NEEDS, "query"),
    Column("ap_at_k", "mAP@k", 3, +1, QUALITY_NEEDS, "query"),
    Column("ndcg_at_k", "nDCG@k", 3, +1, QUALITY_NEEDS, "query"),
    Column("recall_at_1", "recall@1 (copies)", 3, +1, ("dataset", "copies"), "copy"),
    Column("mrr_at_k", "MRR@k (copies)", 3, +1, ("dataset", "copies", "top_k"), "copy"),
    Column("top1_z", "top-1 z", 2, 0, ("dataset", "queries")),
    Column("overlap", "overlap@k with {ref}", 3, 0, ("dataset", "queries", "top_k"), "query"),
    Column("img_s", "img/s (model only)", 1, +1, ("machine",)),
)
RSS = Column("peak_rss_mb", "peak RSS MB (the run process)", 0, -1, ("machine",))


@dataclass
class RunView:
    """One loaded run folder (``html._load``'s dict) with its letter."""

    letter: str
    run: dict

    @property
    def results(self) -> dict:
        return self.run["results"]

    @property
    def comparison(self) -> dict:
        return self.run["comparison"]

    @property
    def manifest(self) -> dict:
        return self.run["manifest"]

    @property
    def models(self) -> list[str]:
        return list(self.results.get("models", []))

    @property
    def machine(self) -> dict | None:
        """The hardware record the run was measured on (its manifest's, else its cost.json's)."""
        return self.manifest.get("machine") or (self.comparison.get("cost") or {}).get("machine")

    def provider(self, model: str) -> str | None:
        """The execution provider that ran ``model`` in this run (short: ``CPU``, ``CUDA``)."""
        return providers_ran(self.manifest, self.comparison.get("cost")).get(model)

    def variant(self, model: str) -> str | None:
        return variant_kind(self.results, self.manifest, model)

    def model_info(self, model: str) -> dict:
        """Weights and variant as the manifest recorded them (``{}`` for a model not in this run)."""
        return self.manifest.get("models", {}).get(model, {}) if model in self.models else {}

    def figures(self, model: str, reference: str) -> dict[str, float | None]:
        """The headline figures of ``model`` in this run (None where not measured)."""
        s = self.comparison.get("summary", {})
        ms = s.get("models", {}).get(model, {})
        robust = (self.results.get("robustness") or {}).get("per_model", {}).get(model, {}).get("mean", {})
        cost = (self.comparison.get("cost") or {}).get("models", {}).get(model, {})
        if model == reference:
            overlap = 1.0
        else:
            pairs = s.get("pairs", {})
            overlap = (pairs.get(f"{model}|{reference}") or pairs.get(f"{reference}|{model}") or {}).get("overlap_at_k")
        return {
            "p_at_k": ms.get("p_at_k"),
            "ap_at_k": ms.get("ap_at_k"),
            "ndcg_at_k": ms.get("ndcg_at_k"),
            "recall_at_1": robust.get("recall_at_1"),
            "mrr_at_k": robust.get("mrr_at_k"),
            "top1_z": ms.get("top1_z"),
            "overlap": overlap,
            "img_s": cost.get("img_per_s_model_only"),
        }

    def interval(self, model: str, key: str, reference: str) -> dict | None:
        """This run's 95% interval of a figure (comparison["evidence"]), None when the run has none."""
        ev = self.comparison.get("evidence") or {}
        if key in ("recall_at_1", "mrr_at_k"):
            return ((ev.get("robustness") or {}).get(model) or {}).get("all", {}).get(key)
        if key == "overlap":
            agree = ev.get("agreement") or {}
            return (agree.get(f"{model}|{reference}") or agree.get(f"{reference}|{model}") or {}).get("overlap_at_k")
        return ((ev.get("quality") or {}).get(key) or {}).get(model)

    def units(self, model: str, col: Column, reference: str) -> dict:
        """The figure's value per query (or per copy), keyed so that two runs' values pair up."""
        if col.paired == "copy":
            rows = (self.results.get("robustness") or {}).get("rows") or []
            k = self.results.get("top_k") or 0
            out = {}
            for r in rows:
                if r["model"] == model:
                    rank = r["rank"]
                    hit = rank is not None and rank <= k
                    out[r["copy"]] = float(rank == 1) if col.key == "recall_at_1" else (1.0 / rank if hit else 0.0)
            return out
        if col.key == "overlap":
            if model == reference:
                return {q["query"]: 1.0 for q in self.results.get("queries", [])}
            return {p["query"]: p["overlap_at_k"] for p in self.comparison.get("pairs", [])
                    if {p["model_a"], p["model_b"]} == {model, reference}}  # fmt: skip
        return {r["query"]: r[col.key] for r in self.comparison.get("per_query", [])
                if r["model"] == model and isinstance(r.get(col.key), (int, float))}  # fmt: skip

    def ground_truth(self) -> tuple:
        """What the quality figures were measured against: folder labels, or this set of judgments."""
        gt = (self.comparison.get("summary") or {}).get("ground_truth") or {}
        qrels = self.results.get("qrels")
        return (gt.get("kind"), sorted((q, sorted(d.items())) for q, d in qrels.items()) if qrels else None)

    @property
    def peak_rss_mb(self) -> float | None:
        return (self.comparison.get("cost") or {}).get("peak_rss_mb")

    def dataset(self) -> tuple:
        """What identifies the images searched: root folder, images catalogued, label counts."""
        r = self.results
        return (r.get("dataset_root"), self.manifest.get("dataset", {}).get("catalogued"), r.get("label_counts"))

    def dataset_text(self) -> str:
        root = self.results.get("dataset_root") or "?"
        n = self.manifest.get("dataset", {}).get("catalogued")
        labels = self.results.get("label_counts") or {}
        return f"{root} ({n if n is not None else '?'} images, {len(labels) or 'no'} labels)"

    def copies(self) -> tuple | None:
        rb = self.results.get("robustness")
        return (rb["originals"], tuple(rb["transforms"]), rb["seed"]) if rb else None


@dataclass
class Comparison:
    """Everything the cross-run table shows: runs, models in first-seen order, the reference, the differences."""

    runs: list[RunView]
    models: list[str]
    reference: str
    differences: dict[str, dict[str, str]] = field(default_factory=dict)  # letter -> condition -> reason

    def delta(self, run: RunView, col: Column, a: float | None, b: float | None) -> tuple[float | None, str]:
        """``b - a`` when run ``run`` measured ``col`` under run A's conditions; else None and the reason."""
        if a is None or b is None:
            return None, ""
        why = [self.differences.get(run.letter, {}).get(n) for n in col.needs]
        why = [w for w in dict.fromkeys(why) if w]
        return (None, "; ".join(why)) if why else (b - a, "")

    def paired(self, run: RunView, col: Column, model: str) -> tuple[dict | None, str]:
        """Run ``run`` against run A on ``model``'s per-query (per-copy) values, paired on the same units:
        {"diff": interval of mean(run - A), "p": paired randomisation p, "n"}; else None and the reason."""
        a = self.runs[0]
        if model not in a.models or model not in run.models:
            return None, ""
        why = [self.differences.get(run.letter, {}).get(n) for n in col.needs]
        why = [w for w in dict.fromkeys(why) if w]
        if why:
            return None, "; ".join(why)
        va, vb = a.units(model, col, self.reference), run.units(model, col, self.reference)
        keys = sorted(k for k in va if k in vb)  # one order whatever each run listed, so the same p
        if len(keys) < 2:
            return None, "fewer than 2 queries measured in both runs: nothing to pair"
        seed = ((a.comparison.get("evidence") or {}).get("method") or {}).get("seed") or 0
        res = paired(np.array([vb[k] for k in keys]), np.array([va[k] for k in keys]), seed=seed)
        return res | {"n": len(keys)}, ""

    def hardware_note(self, run: RunView, col: Column, model: str) -> str:
        """Why ``run``'s figure of ``model`` in ``col`` was measured on other hardware than run A's, for the mark
        beside its cell; empty when it was not. Speed cells: any difference of CPU, ISA, GPU or provider. Quality
        cells of an INT8/FP16 variant: a difference of ISA or provider. A full-precision model's quality: never."""
        a = self.runs[0]
        if run is a or model not in run.models:
            return ""
        speed = col.key == "img_s"
        if not speed and not {run.variant(model), a.variant(model)} & set(VARIANT_KINDS):
            return ""
        ran_a = a.provider(model) if model in a.models else None
        return hardware_difference(run.letter, run.machine, a.machine, run.provider(model), ran_a, speed)

    def column_title(self, col: Column) -> str:
        ks = {r.results.get("top_k") for r in self.runs}
        title = col.title.format(ref=self.reference)
        return title.replace("@k", f"@{ks.pop()}") if len(ks) == 1 else title


def _differences(a: RunView, b: RunView) -> dict[str, str]:
    """Why ``b``'s figures may not be subtracted from ``a``'s, per condition (empty when all match)."""
    out = {}
    if a.dataset() != b.dataset():
        out["dataset"] = f"datasets differ ({a.letter}: {a.dataset_text()}; {b.letter}: {b.dataset_text()})"
    qa = sorted(q["query"] for q in a.results.get("queries", []))
    qb = sorted(q["query"] for q in b.results.get("queries", []))
    if qa != qb and "dataset" not in out:
        out["queries"] = f"query sets differ ({len(qa)} vs {len(qb)} queries, not the same images)"
    ka, kb = a.results.get("top_k"), b.results.get("top_k")
    if ka != kb:
        out["top_k"] = f"top_k differs ({a.letter}: {ka}; {b.letter}: {kb})"
    if a.copies() != b.copies() and a.copies() and b.copies():
        out["copies"] = "augmented copies differ (originals, transforms or seed)"
    if a.ground_truth() != b.ground_truth():
        out["ground_truth"] = "ground truth differs (folder labels against judgments, or other judgments)"
    ma, mb = a.machine, b.machine
    if ma != mb:
        detail = hardware_difference(b.letter, mb, ma, None, None, speed=True) if ma and mb else ""
        out["machine"] = (detail or "measured on different machines") if ma and mb else "machine not recorded"
    return out


def compare_runs(loaded: list[dict], reference: str | None = None) -> Comparison:
    """The cross-run comparison of loaded runs; ``reference``: the model overlap is measured against (default:
    run A's first model). A reference that no run holds is refused."""
    runs = [RunView(string.ascii_uppercase[i % 26] * (1 + i // 26), r) for i, r in enumerate(loaded)]
    models = list(dict.fromkeys(m for r in runs for m in r.models))
    if reference is None:
        reference = runs[0].models[0] if runs and runs[0].models else ""
    elif reference not in models:
        raise ConfigError(f"--reference {reference}: no run holds a model of that name (models: {', '.join(models)})")
    diffs = {r.letter: _differences(runs[0], r) for r in runs[1:]}
    return Comparison(runs, models, reference, diffs)
