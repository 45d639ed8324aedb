"""``onnx-search run CONFIG``: check, convert, open stores, ingest, query, compare, sweep, publish — named phases."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..embed.scan import scan_folder
from ..errors import ConfigError, ModelChangedError
from ..ids import image_id
from ..ingest import IngestReport, ingest
from ..models.family import family_info
from ..models.identity import model_identity
from ..models.recipe import read_metadata_file, recipe_from_metadata
from ..models.session import ModelSession, SessionConfig, resolve_model_path
from ..models.zoo import variant_name
from ..provenance import library_versions, machine, peak_rss_mb
from ..search import QueryVectors, query_vectors, search_embedded
from ..store.milvus import check_lite_free
from ..store.net import probe_tcp
from ..store.stores import Stores, StoreSettings, open_stores
from .augmented import baselines, calibrate_hits, run_augmented
from .calibration import describe
from .compare import compare, deep_lists
from .config import Augment, Experiment
from .cost import measure_costs
from .duplicates import DuplicateReport, find_duplicates
from .evidence_section import build_evidence
from .judges import judges_record
from .lineage import agreement_warnings, variant_agreement
from .loader import load_experiment, raw_config
from .qrels import read_qrels_ids
from .queries import query_rows, select_queries, skipped_queries
from .report.summary import console_summary, header_lines
from .report.writer import write_report
from .results import publish, redact
from .survey import resolve_labels
from .sweep import sweep_stores

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    run_dir: Path
    files: dict
    summary_md: str
    random_weights: list[str]
    console: str = ""  # what the command line prints: the verdict, the notes and one table (report.summary)


def convert_models(exp: Experiment, dataset_files: list[Path], stage: Path) -> tuple[dict[str, Path], list[dict]]:
    """Convert every model that is missing or stale, before any store is opened; returns the staged files and
    each child's figures (task, model, peak RSS).

    The user's own models come first, each new file written into ``stage`` (``commit_staged`` moves it into
    models_dir once the stores accept it), so a bad user model leaves models_dir as it was. Then registry models
    and their variants, in place (INT8 calibrated on a seeded sample of the experiment's own images that files
    added or deleted outside it leave as it was: ``calibration_sample``). Each
    conversion and quantisation runs in a child process (TensorFlow and torch never load here).
    """
    from ..models.isolated import convert_isolated, variant_isolated

    staged, children = {}, []
    for entry in exp.models:
        if entry.user is not None:  # converted in the stage, beside a link to the file it may replace
            _link_or_copy(Path(exp.models_dir) / f"{entry.key}.onnx", stage / f"{entry.key}.onnx")
            child = convert_isolated(entry.name, stage, weights=entry.weights, seed=entry.seed, user=entry.user)
            children.append(child.as_dict())
            if not child.result.skipped:
                staged[entry.key] = child.result.path
    for entry in exp.models:
        if entry.user is not None or entry.name.endswith(".onnx"):
            continue
        child = convert_isolated(entry.name, exp.models_dir, weights=entry.weights, seed=entry.seed)
        children.append(child.as_dict())
        for variant in entry.variants:
            if variant != "fp32":
                child = variant_isolated(entry.name, variant, exp.models_dir, calibration=dataset_files,
                                         seed=exp.seed, calibration_root=exp.dataset.root,
                                         target=entry.int8_target)  # fmt: skip
                made = {"key": variant_name(entry.key, variant), "path": str(child.result.path)}
                children.append(child.as_dict() | made)
    return staged, children


def probe_remote_stores(settings: StoreSettings) -> None:
    """A Redis or Milvus server named in the config that does not answer fails here, in seconds, before any
    conversion; the embedded ones (under data_dir) are only started once every model is converted."""
    for url, what, default_port in ((settings.redis_url, "Redis", 6379), (settings.milvus_uri, "Milvus", 19530)):
        parts = urlsplit(url or "")
        if parts.scheme in ("redis", "rediss", "http", "https", "tcp", "grpc") and parts.hostname:
            probe_tcp(parts.hostname, parts.port or default_port, what)
    if not settings.milvus_uri:  # an explorer (or another run) holding the Milvus Lite folder: say so before work
        check_lite_free(settings.data_dir)


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    return path


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems); nothing when ``src`` does not exist. The
    converter replaces a stale file by renaming a new one over it, so ``src`` itself is never written."""
    if not src.is_file():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def commit_staged(stores: Stores, staged: dict[str, Path], models_dir: Path, rebuild: bool) -> None:
    """Move newly converted user models into models_dir, after checking that none replaces the model an
    existing collection was built from (unless ``rebuild``): a refused run leaves the old file in place."""
    known = stores.catalog.models()
    for key, path in staged.items():
        info = known.get(key)
        if rebuild or not info or not info.get("identity"):
            continue
        if model_identity(path, recipe_from_metadata(read_metadata_file(path) or {}, path)) != info["identity"]:
            raise ModelChangedError(
                f"model {key} changed since collection {stores.collection(key)} was built from it; "
                f"{models_dir / (key + '.onnx')} was left as it was: run again with `--rebuild` (re-embeds the "
                "models whose file changed) or use another namespace"
            )
    for key, path in staged.items():
        final = Path(models_dir) / f"{key}.onnx"
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.partial")
        shutil.copyfile(path, partial)
        os.replace(partial, final)


def open_sessions(exp: Experiment, made: dict[str, str] | None = None) -> dict[str, ModelSession]:
    """One onnxruntime session per model and variant, from the files in models_dir (or the path given); ``made``:
    the exact file of each variant this run made or found (an INT8 file is named by its calibration set)."""
    made = made or {}
    out = {}
    for entry in exp.models:
        options = SessionConfig(entry.providers, entry.strict, entry.threads)
        if entry.user is not None:
            out[entry.key] = ModelSession(Path(exp.models_dir) / f"{entry.key}.onnx", options)
            continue
        for key in entry.keys:  # a model given as a path is that file, even when its stem looks like a variant
            if key in made:
                out[key] = ModelSession(Path(made[key]), options)
                continue
            out[key] = ModelSession(resolve_model_path(entry.name if entry.name.endswith(".onnx") else key,
                                                      exp.models_dir), options)  # fmt: skip
    return out


@dataclass
class ExperimentRun:
    """One run of an experiment; each phase is a method, timed into ``timings``."""

    exp: Experiment
    config_path: Path
    progress: bool = True
    rebuild: bool = False  # re-embed the models whose file changed (a changed user model may replace its file)
    rebuild_changed: bool = False  # the same, said in a warning (the demo)
    timings: dict[str, float] = field(default_factory=dict)
    deep_hits: dict | None = None  # results["deep_hits"], set by ``query``

    def _timed(self, key: str, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[key] = round(time.perf_counter() - t, 3)

    @property
    def batch_sizes(self) -> dict[str, int]:
        return {key: e.batch_size for e in self.exp.models for key in e.keys}

    def check_before_work(self) -> list[Path]:
        """Fail on a top_k that no collection could fill, before any store is opened; returns the files."""
        exp = self.exp
        files = scan_folder(exp.dataset.root, exp.dataset.extensions).files
        room = len(files) - (1 if exp.queries.exclude_self and exp.queries.sampled else 0)
        if exp.top_k > room:
            raise ConfigError(
                f"top_k = {exp.top_k} but only {room} images can be returned per query "
                f"({len(files)} files under {exp.dataset.root})"
            )
        return files

    def ingest(self, stores: Stores, models: dict[str, ModelSession]) -> IngestReport:
        exp = self.exp
        report = ingest(
            exp.dataset.root,
            models,
            stores,
            batch_size=self.batch_sizes,
            extensions=exp.dataset.extensions,
            labels=exp.dataset.labels,
            progress=self.progress,
            report_dir=exp.stores_dir / "reports",
            engine=exp.engine.ray(),
            rebuild=False,  # --rebuild re-embeds only the models whose file changed, as its help says
            rebuild_changed=self.rebuild or self.rebuild_changed,
            prune=True,  # files deleted since the last run leave the catalogue and every collection
        )
        for name in models:
            n = stores.count(name)
            if exp.top_k > n:
                raise ConfigError(f"top_k = {exp.top_k} is larger than collection {stores.collection(name)} ({n} rows)")
        return report

    def query(self, stores: Stores, models: dict[str, ModelSession], catalogued: list[Path]) -> tuple:
        """Query vectors (stored ones reused) and every model's top-k hits; ``self.deep_hits``: each ranking
        judged_depth deep (one search serves both, so the top k of a deep list is the hits)."""
        queries = select_queries(self.exp, catalogued)
        qv = query_vectors(queries, models, stores, batch_size=self.batch_sizes, progress=self.progress)
        k, depth = self.exp.top_k, max(self.exp.top_k, self.exp.judged_depth)
        found = search_embedded(qv.paths, qv.vectors, stores, depth, self.exp.queries.exclude_self)
        hits = [h.as_dict() for h in found]
        self.deep_hits = deep_lists(hits, depth) if self.exp.judged_depth else None
        return queries, qv, [h for h in hits if h["rank"] <= k]

    def execute(self) -> RunOutcome:
        t_start = time.perf_counter()
        exp = self.exp
        files = self.check_before_work()
        labels_choice = resolve_labels(exp, files)  # auto -> true/false, before ingest writes labels
        rebuild = self.rebuild or self.rebuild_changed
        settings = exp.store.settings(exp.stores_dir, exp.experiment)
        probe_remote_stores(settings)  # a server that is down fails before any work; nothing is opened yet
        with tempfile.TemporaryDirectory(prefix="onnx-search-stage-") as stage:  # every model before any store
            staged, children = self._timed("convert_s", convert_models, exp, files, Path(stage))
            stores = open_stores(settings)
            try:
                commit_staged(stores, staged, exp.models_dir, rebuild)
            except BaseException:
                stores.close()
                raise
        try:
            made = {c["key"]: c["path"] for c in children if c.get("path")}
            models = self._timed("load_s", open_sessions, exp, made)
            ing = self._timed("ingest_s", self.ingest, stores, models)
            catalogue = stores.catalog.get_images(stores.catalog.ids())
            root = str(exp.dataset.root.expanduser().resolve())
            catalogued = [Path(r.path) for r in catalogue.values() if r.root == root]
            dups = self._timed("duplicates_s", self.duplicates, stores, models, catalogue, root)
            queries, qv, hits = self._timed("search_s", self.query, stores, models, catalogued)
            qrows = query_rows(queries, {str(p) for p in qv.paths}, set(catalogue), exp)
            cat_ids = [image_id(p) for p in catalogued]
            bases = baselines(stores, models, qv.paths, qv.vectors, cat_ids, exp.seed)
            calibrate_hits(hits, bases)
            labels = Counter(r.label for r in catalogue.values() if r.label) if exp.dataset.labels else Counter()
            qrels = read_qrels_ids(exp.ground_truth.qrels) if exp.ground_truth else None  # judged relevance
            comparison = compare(hits, qrows, list(models), exp.top_k, dict(labels) or None, qrels, self.deep_hits)
            sweep = self._timed("sweep_s", sweep_stores, stores, list(models), qv.vectors, exp.sweep, exp.top_k)
            variants = variant_agreement(stores, models, comparison, cat_ids)
            for line in (low := agreement_warnings(variants)):  # also in results["warnings"], summary and report
                log.warning("%s", line)
            robust, copies = self._timed("augmented_s", self.augmented, stores, models, catalogued, bases,
                                         dups.same_image())  # fmt: skip
            cost = self._timed("cost_s", self.cost, stores, models, catalogued, qv)
            random_models = [n for n, m in models.items() if str(m.meta.get("weights", "")).startswith("random")]
            results = {
                "experiment": exp.experiment,
                "dataset_root": root,
                "top_k": exp.top_k,
                "metric": exp.store.metric,
                "models": list(models),
                "families": {n: family_info(m.meta, m.dim) for n, m in models.items()},
                "queries": qrows,
                "hits": hits,
                "skipped_queries": skipped_queries(exp, qv.failed, ing.removed),
                "removed_since_last_run": {"count": len(ing.removed), "list": "removed.json"},  # in the run folder
                "label_counts": dict(labels),
                "random_weights": random_models,
                "variants": variants,
                "warnings": low,
                "calibration": {m: describe(b) for m, b in bases.items()},
                "robustness": robust,
                "duplicates": dups.as_dict({i: r for i, r in catalogue.items() if r.root == root}),
                "labels": labels_choice,
            }
            if self.deep_hits is not None:  # the deeper rankings: `compare --qrels` scores judgments on them
                results["deep_hits"] = self.deep_hits
            if qrels is not None:  # what the judged metrics stood on, so `compare` can recompute them
                results["qrels"] = qrels
                results["qrels_file"] = str(exp.ground_truth.qrels.resolve())
                if (judges := judges_record(exp.ground_truth.qrels)) is not None:  # who judged, how far they agree
                    results["judges"] = judges
            if cost:
                cost["children"] = children
                comparison["cost"] = cost
            v = exp.verdict  # intervals, paired tests and the verdict, seeded by the experiment's seed
            comparison["evidence"] = self._timed("evidence_s", lambda: build_evidence(
                comparison, results, seed=exp.seed, metric=v.metric, cost=v.cost))  # fmt: skip
            self.timings["total_s"] = round(time.perf_counter() - t_start, 3)
            manifest = self.manifest(stores, models, ing, qv, len(files), len(catalogue), sweep, random_models)
            manifest["children"] = children
            if cost:  # the whole run's peak so far (VmHWM only grows), not only the cost phase's
                cost["peak_rss_mb"] = round(peak_rss_mb(), 1)
        finally:
            stores.close()
        skipped = {"count": len(ing.skipped), "list": str(exp.run_dir / "skipped.json")}  # the run's own copy
        files_written = publish(
            exp.run_dir,
            lambda d: (
                write_report(d, results, comparison, manifest, exp.grid_queries, skipped, copies)
                | {"skipped": _write_json(d / "skipped.json", ing.as_dict()["skipped"])}
                | {"removed": _write_json(d / "removed.json", ing.removed)}
            ),  # deleted since the last run, pruned
        )
        summary = (exp.run_dir / "summary.md").read_text()
        header = header_lines(results["experiment"], random_models, manifest, results)
        console = console_summary(comparison, header, skipped, results, exp.run_dir, manifest)
        return RunOutcome(exp.run_dir, files_written, summary, random_models, console)

    def duplicates(self, stores: Stores, models, catalogue: dict, root: str) -> DuplicateReport:
        """Exact duplicates among the run's images by content hash; near ones by cosine with the first trained
        model (none when every model has random weights): duplicates.json."""
        records = {i: r for i, r in catalogue.items() if r.root == root}
        return find_duplicates(stores, records, {n: m.meta.get("weights") for n, m in models.items()}, set(models))

    def augmented(
        self, stores: Stores, models, catalogued: list[Path], bases: dict, same_image: dict | None = None
    ) -> tuple[dict | None, list]:
        """Perturbed copies as queries (None when the config asks for none); a copy's hit is its original or,
        by ``same_image`` (the duplicate report's groups), a duplicate of it."""
        aug = self.exp.queries.augment
        if aug and aug.under:
            folder = (self.exp.dataset.root / aug.under).expanduser().resolve()
            catalogued = [p for p in catalogued if p.is_relative_to(folder)]
        if not aug or not catalogued:
            return None, []
        return run_augmented(aug, stores, models, catalogued, bases, self.exp.top_k, min(self.batch_sizes.values()),
                             cache_dir=self.exp.stores_dir / "copies", progress=self.progress,
                             same_image=same_image)  # fmt: skip

    def cost(self, stores: Stores, models, catalogued: list[Path], qv: QueryVectors) -> dict | None:
        """The cost phase on a seeded sample of readable dataset images (None when the config turns it off)."""
        if not self.exp.cost or not catalogued:
            return None
        rng = np.random.default_rng(self.exp.seed)
        ordered = sorted(catalogued)
        sample = [ordered[i] for i in sorted(rng.choice(len(ordered), min(self.exp.cost.images, len(ordered)), False))]
        return measure_costs(
            models,
            stores,
            sample,
            qv.vectors,
            self.batch_sizes,
            self.exp.top_k,
            self.exp.cost.repeats,
            progress=self.progress,
        )

    def manifest(
        self, stores: Stores, models, ing: IngestReport, qv: QueryVectors, files: int, catalogued: int, sweep, random
    ) -> dict:
        """Everything needed to know where the results came from (no secret, only references)."""
        exp = self.exp
        return {
            "status": "complete",
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "experiment": exp.experiment,
            "config": redact(raw_config(self.config_path)),
            "config_file": str(self.config_path.resolve()),
            "versions": library_versions(),
            "machine": machine(),
            "models": {n: m.describe() for n, m in models.items()},
            "random_weights": random,
            "store": exp.store.settings(exp.stores_dir, exp.experiment).describe()
            | {
                "namespace": stores.catalog.ns,
                "index": {n: stores.index_info(n) for n in models},
                "search_params": stores.index.query_params(exp.top_k),
            },
            "dataset": {
                "root": str(exp.dataset.root.resolve()),
                "files": files,
                "catalogued": catalogued,
                "skipped": len(ing.skipped),
                "removed_since_last_run": len(ing.removed),  # listed in removed.json
            },
            "ingest": ing.as_dict(),
            "queries": {"run": len(qv.paths), "reused_stored_vectors": qv.fetched, "skipped": len(qv.failed)},
            "timings": self.timings,
            "sweep": sweep,
        }


def run_experiment(
    config_path: str | Path,
    progress: bool = True,
    augment: int | None = None,
    rebuild: bool = False,
    rebuild_changed: bool = False,
    models_dir: str | Path | None = None,
) -> RunOutcome:
    """The whole job; results appear in ``<output>/<experiment>/`` only once complete.

    ``augment``: query with perturbed copies of that many sampled images (overrides ``queries.augment.sample``).
    ``models_dir``: where converted models live (overrides the config's ``models_dir``).
    """
    exp = load_experiment(config_path)
    if models_dir is not None:
        exp.models_dir = Path(models_dir)
    if augment:
        base = exp.queries.augment.model_dump() if exp.queries.augment else {}
        exp.queries.augment = Augment(**(base | {"sample": augment}))
    return ExperimentRun(exp, Path(config_path), progress, rebuild, rebuild_changed).execute()
