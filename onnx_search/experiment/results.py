"""A run folder on disk: written whole or not at all, read back for ``compare`` and reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..store.net import mask_url
from .compare import compare


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


def recompare(run_dir: str | Path) -> dict:
    """Recompute the comparison from saved results without touching the stores; the evidence with the run's
    seed and verdict settings (from its manifest) and its measured costs (cost.json, left out of the result)."""
    from .evidence_section import build_evidence

    r = load_results(run_dir)
    c = compare(r["hits"], r["queries"], r["models"], r["top_k"], r["label_counts"] or None, r.get("qrels"))
    d = Path(run_dir).parent if Path(run_dir).is_file() else Path(run_dir)
    config = json.loads((d / "manifest.json").read_text()).get("config") or {}
    verdict = config.get("verdict") or {}
    cost = json.loads((d / "cost.json").read_text()) if (d / "cost.json").is_file() else None
    c["evidence"] = build_evidence(
        c | ({"cost": cost} if cost else {}), r, seed=int(config.get("seed", 0)),
        metric=verdict.get("metric", "auto"), cost=verdict.get("cost", "img_per_s"),
    )  # fmt: skip
    return c
