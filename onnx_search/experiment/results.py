"""A run folder on disk: written whole or not at all, read back for ``compare`` and reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..store.net import mask_url
from .compare import compare
from .qrels import Qrels


def redact(value, key: str = ""):
    """Replace literal secrets (not ``${VAR}`` references) in the saved config."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if key in ("password", "token") and isinstance(value, str) and not value.startswith("${"):
        return "***"
    if key in ("uri", "redis_url") and isinstance(value, str):
        return mask_url(value)
    return value


def publish(final: Path, write) -> dict[str, Path]:
    """Call ``write(tmp_dir) -> {name: path}`` in a temporary folder, then rename it to ``final``.

    A run killed half-way leaves only the hidden temporary folder: partial results never look complete.
    """
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = write(tmp)
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return {k: final / Path(v).name for k, v in files.items()}


def load_results(run_dir: str | Path) -> dict:
    """Saved results of a complete run (refuses partial ones)."""
    d = Path(run_dir)
    if d.is_file():
        d = d.parent
    manifest = d / "manifest.json"
    if (
        d.name.endswith((".partial", ".old"))
        or not manifest.is_file()
        or json.loads(manifest.read_text()).get("status") != "complete"
    ):
        raise ConfigError(f"{d} holds no complete run (no manifest with status 'complete'); run it again")
    return json.loads((d / "results.json").read_text())


def recompare(run_dir: str | Path, qrels: Qrels | None = None, qrels_file: str | Path | None = None) -> dict:
    """Recompute the comparison from saved results without touching the stores; the evidence with the run's
    seed and verdict settings (from its manifest) and its measured costs (cost.json, left out of the result).

    ``qrels`` (ids as strings) re-score the run on these judgments instead of the run's own: on its saved deep
    lists (results["deep_hits"]), else on its top-k hits; ``qrels_file`` is recorded as their source.
    """
    from .evidence_section import build_evidence

    r = load_results(run_dir)
    if qrels is not None:
        if not {str(q.get("id")) for q in r["queries"]} & set(qrels):
            raise ConfigError(
                f"{qrels_file or 'the judgments'} judge none of the run's {len(r['queries'])} queries; give the "
                "judgments made on this run's queries (query ids or paths in the first column)"
            )
        r = r | {"qrels": qrels, "qrels_file": str(qrels_file) if qrels_file else None}
    c = compare(r["hits"], r["queries"], r["models"], r["top_k"], r["label_counts"] or None, r.get("qrels"),
                r.get("deep_hits"))  # fmt: skip
    d = Path(run_dir).parent if Path(run_dir).is_file() else Path(run_dir)
    config = json.loads((d / "manifest.json").read_text()).get("config") or {}
    verdict = config.get("verdict") or {}
    metric = verdict.get("metric", "auto")
    if qrels is not None and metric in ("recall_at_1", "mrr_at_k"):
        metric = "auto"  # judgments given on purpose: the verdict is on them
    cost = json.loads((d / "cost.json").read_text()) if (d / "cost.json").is_file() else None
    c["evidence"] = build_evidence(
        c | ({"cost": cost} if cost else {}), r, seed=int(config.get("seed", 0)),
        metric=metric, cost=verdict.get("cost", "img_per_s"),
    )  # fmt: skip
    if qrels is not None:
        c["summary"]["ground_truth"]["qrels_file"] = r["qrels_file"]
    return c
