"""``onnx-search run CONFIG``: convert what is missing, ingest, query every model, compare, report."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__
from .catalog import Catalog
from .cli_store import default_namespace, prefix_for
from .compare import compare
from .config import ConfigError, Experiment, load_experiment, raw_config
from .ids import image_id
from .ingest import Stores, ingest
from .report import write_report
from .runner import OnnxEmbedder, RunnerOptions, resolve_model_path
from .scan import scan_folder
from .search import embed_queries, search_embedded
from .stores import connect_milvus, connect_redis, mask_url
from .sweep import evaluate_variants, fetch_vectors
from .vectors import IndexConfig

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    run_dir: Path
    files: dict
    summary_md: str
    random_weights: list[str]


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict:
    return {
        "onnx_search": __version__,
        "onnxruntime": _version("onnxruntime-gpu") or _version("onnxruntime"),
        "tf2onnx": _version("tf2onnx"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"),
        "pymilvus": _version("pymilvus"),
        "milvus_lite": _version("milvus-lite"),
        "redis_py": _version("redis"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def select_queries(exp: Experiment, dataset_files: list[Path]) -> list[Path]:
    q = exp.queries
    if q.sample:
        if q.sample > len(dataset_files):
            raise ConfigError(f"queries.sample = {q.sample} but the dataset has {len(dataset_files)} images")
        rng = np.random.default_rng(exp.seed)
        picks = sorted(rng.choice(len(dataset_files), size=q.sample, replace=False).tolist())
        return [dataset_files[i] for i in picks]
    if q.folder:
        return scan_folder(q.folder, exp.dataset.extensions).files
    return [p.expanduser().resolve() for p in q.paths or []]


def prepare_models(exp: Experiment) -> dict[str, OnnxEmbedder]:
    """Convert registry models that are missing or stale, then open one session per model."""
    out = {}
    for entry in exp.models:
        if not entry.name.endswith(".onnx"):
            from .convert import convert_model

            convert_model(entry.name, exp.models_dir, weights=entry.weights, seed=entry.seed)
        path = resolve_model_path(entry.name, exp.models_dir)
        m = OnnxEmbedder(path, RunnerOptions(entry.providers, entry.strict, entry.threads))
        out[entry.key] = m
    return out


def open_stores(exp: Experiment) -> Stores:
    ns = exp.store.namespace or default_namespace(exp.experiment)
    redis_client = connect_redis(exp.store.redis_url, exp.stores_dir)
    mil = exp.store.milvus
    milvus = connect_milvus(mil.uri, exp.stores_dir, token=mil.token, user=mil.user, password=mil.password)
    idx = exp.store.index
    from .vectors import VectorStore

    return Stores(
        Catalog(redis_client, ns),
        VectorStore(milvus),
        prefix_for(ns),
        IndexConfig(exp.store.metric, idx.type, dict(idx.params), dict(idx.search)),
    )


def run_experiment(config_path: str | Path, progress: bool = True) -> RunOutcome:
    """The whole job; results appear in ``<output>/<experiment>/`` only once complete."""
    t_start = time.perf_counter()
    exp = load_experiment(config_path)
    scan = scan_folder(exp.dataset.root, exp.dataset.extensions)
    queries = select_queries(exp, scan.files)
    in_dataset = {image_id(p) for p in scan.files}
    self_excluded = exp.queries.exclude_self
    room = len(scan.files) - (1 if self_excluded and any(image_id(q) in in_dataset for q in queries) else 0)
    if exp.top_k > room:
        raise ConfigError(
            f"top_k = {exp.top_k} but only {room} images can be returned per query "
            f"({len(scan.files)} files under {exp.dataset.root})"
        )
    timings = {}
    stores = open_stores(exp)  # a store that is down fails here, before any conversion or embedding
    t = time.perf_counter()
    models = prepare_models(exp)
    timings["convert_and_load_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    batch = min(e.batch_size for e in exp.models)
    ing = ingest(
        exp.dataset.root,
        models,
        stores,
        batch_size=batch,
        extensions=exp.dataset.extensions,
        labels=exp.dataset.labels,
        progress=progress,
        report_dir=exp.stores_dir / "reports",
    )
    timings["ingest_s"] = round(time.perf_counter() - t, 3)
    for name in models:
        n = stores.vectors.count(stores.collection(name))
        if exp.top_k > n:
            raise ConfigError(f"top_k = {exp.top_k} is larger than collection {stores.collection(name)} ({n} rows)")
    t = time.perf_counter()
    ok, qvecs, failed = embed_queries(queries, models)
    hits = search_embedded(ok, qvecs, stores, exp.top_k, exclude_self=self_excluded)
    timings["search_s"] = round(time.perf_counter() - t, 3)
    failed_set = {p for p, _ in failed}
    catalogue = stores.catalog.get_images(stores.catalog.ids())
    label_counts = dict(Counter(r.label for r in catalogue.values() if r.label)) if exp.dataset.labels else {}
    query_rows = []
    for q in queries:
        if str(q) in failed_set:
            continue
        qid = image_id(q)
        query_rows.append(
            {
                "query": str(q),
                "id": qid,
                "label": q.parent.name if exp.dataset.labels else "",
                "in_dataset": qid in catalogue,
                "excluded": self_excluded and qid in catalogue,
            }
        )
    hit_rows = [h.as_dict() for h in hits]
    comparison = compare(hit_rows, query_rows, list(models), exp.top_k, label_counts or None)
    sweep_rows = run_sweep(exp, models, stores, qvecs) if exp.sweep else []
    random_models = [n for n, m in models.items() if str(m.meta.get("weights", "")).startswith("random")]
    results = {
        "experiment": exp.experiment,
        "top_k": exp.top_k,
        "metric": exp.store.metric,
        "models": list(models),
        "queries": query_rows,
        "hits": hit_rows,
        "skipped_queries": [{"path": p, "reason": r} for p, r in failed],
        "label_counts": label_counts,
        "random_weights": random_models,
    }
    header = [f"# {exp.experiment}"]
    if random_models:
        header.append(
            f"**WARNING: {', '.join(random_models)} use RANDOM weights (ImageNet weights could not be "
            "had). Distances and rankings show the pipeline working, not what these models learned.**"
        )
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    manifest = {
        "status": "complete",
        "experiment": exp.experiment,
        "config": _redact(raw_config(config_path)),
        "config_file": str(Path(config_path).resolve()),
        "versions": library_versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "models": {n: m.describe() for n, m in models.items()},
        "random_weights": random_models,
        "store": {
            "milvus": mask_url(exp.store.milvus.uri) if exp.store.milvus.uri else "milvus-lite",
            "redis": mask_url(exp.store.redis_url) if exp.store.redis_url else "local redis-server",
            "namespace": stores.catalog.ns,
            "metric": exp.store.metric,
            "index": {n: stores.vectors.index_info(stores.collection(n)) for n in models},
            "search_params": stores.index.query_params(exp.top_k),
        },
        "dataset": {
            "root": str(exp.dataset.root.resolve()),
            "files": len(scan.files),
            "catalogued": len(catalogue),
            "skipped": len(ing.skipped),
        },
        "ingest": ing.as_dict(),
        "timings": timings,
        "sweep": sweep_rows,
    }
    return _publish(exp, results, comparison, manifest, header)


def run_sweep(exp: Experiment, models, stores: Stores, qvecs: dict[str, np.ndarray]) -> list[dict]:
    """Recall@k and latency of each ``sweep`` index variant against exact search, per model."""
    rows = []
    ids = sorted(stores.catalog.ids())
    for name in models:
        vecs = fetch_vectors(stores.vectors, stores.collection(name), ids)
        variants = [IndexConfig(exp.store.metric, v.type, dict(v.params), dict(v.search)) for v in exp.sweep]
        for r in evaluate_variants(
            stores.vectors, ids, vecs, qvecs[name], variants, exp.top_k, stores.collection(name)
        ):
            rows.append({"model": name} | r)
    return rows


def _redact(value, key: str = ""):
    """Replace literal secrets (not ``${VAR}`` references) in the saved config."""
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if key in ("password", "token") and isinstance(value, str) and not value.startswith("${"):
        return "***"
    if key in ("uri", "redis_url") and isinstance(value, str):
        return mask_url(value)
    return value


def _publish(exp: Experiment, results: dict, comparison: dict, manifest: dict, header: list[str]) -> RunOutcome:
    """Write into a temporary folder and rename it into place, so a partial run never looks complete."""
    final = exp.run_dir
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = write_report(tmp, results, comparison, header, exp.grid_queries)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str))
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    files = {k: final / Path(v).name for k, v in files.items()} | {"manifest": final / "manifest.json"}
    return RunOutcome(final, files, (final / "summary.md").read_text(), results["random_weights"])


def load_results(run_dir: str | Path) -> dict:
    """Saved results of a complete run (refuses partial ones)."""
    d = Path(run_dir)
    if d.is_file():
        d = d.parent
    manifest = d / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()).get("status") != "complete":
        raise ConfigError(f"{d} holds no complete run (no manifest with status 'complete'); run it again")
    return json.loads((d / "results.json").read_text())


def recompare(run_dir: str | Path) -> dict:
    """Recompute the comparison from saved results without touching the stores."""
    r = load_results(run_dir)
    return compare(r["hits"], r["queries"], r["models"], r["top_k"], r["label_counts"] or None)
