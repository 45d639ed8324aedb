"""Ingest a folder into every model's collection and the shared catalogue: idempotent, incremental, resumable.

Write order per batch: (1) catalogue entries (id -> path, hash), (2) vectors upserted into each model's
collection, (3) the ``done`` mark (id -> content hash) per model. A crash after (1) or (2) leaves images
without a done mark, so the next run embeds them again and upserts under the same id: nothing duplicates,
nothing is lost. ``check`` finds (and ``--repair`` removes) whatever a crash could leave behind.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .embed.pipeline import Batch, Pipeline
from .embed.ray_engine import RayPipeline, RaySettings
from .embed.ray_engine import connect as connect_ray
from .embed.scan import DEFAULT_EXTENSIONS, scan_folder
from .errors import ModelChangedError
from .ids import image_id
from .models.session import ModelSession
from .store.catalog import Catalog, ImageRecord
from .store.stores import Stores

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    scanned: int = 0
    catalogued: int = 0
    embedded: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    pruned: int = 0
    removed: list[str] = field(default_factory=list)  # the paths pruned (catalogued before, gone from the folder)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    times: dict = field(default_factory=dict)
    providers: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "scanned": self.scanned,
            "catalogued": self.catalogued,
            "embedded": self.embedded,
            "unchanged": self.unchanged,
            "pruned": self.pruned,
            "removed": self.removed,
            "providers": self.providers,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "times": self.times,
        }


def prepare_collections(
    stores: Stores, models: dict[str, ModelSession], expected_rows: int, rebuild: bool = False, rebuild_changed=False
) -> None:
    """Create or check each model's collection.

    A model whose identity (graph, weights, recipe) changed since its collection was built is an error, unless
    ``rebuild`` (every model's collection is dropped and embedded again) or ``rebuild_changed`` (only the changed
    ones, each said in a warning). Converting the same model again keeps its identity, so its collection stays.
    """
    known = stores.catalog.models()
    for name, m in models.items():
        coll = stores.collection(name)
        info = known.get(name)
        changed = info is not None and not same_model(info, m)
        if changed and not (rebuild or rebuild_changed):
            raise ModelChangedError(
                f"model {name} ({m.path}) changed since collection {coll} was built from it: re-embed with "
                "`--rebuild` (ingest, run or demo: drops that model's vectors and embeds again) or another namespace"
            )
        if rebuild or changed:
            if changed and not rebuild:
                log.warning(
                    "model %s (%s) changed since collection %s was built from it: rebuilding it", name, m.path, coll
                )
            stores.vectors.drop(coll)
            stores.catalog.drop_model(name)
        stores.vectors.ensure(coll, m.dim, stores.index, expected_rows)
        stores.catalog.set_model(
            name,
            {
                "collection": coll,
                "dim": m.dim,
                "sha256": m.sha256,
                "identity": m.identity,
                "metric": stores.index.metric,
                "index": stores.vectors.index_info(coll),
                "weights": m.meta.get("weights"),
                "path": str(m.path),
            },
        )


def same_model(info: dict, m: ModelSession) -> bool:
    """Whether a collection's recorded model is ``m``: by identity where recorded, else by the file's sha256."""
    if info.get("identity"):
        return info["identity"] == m.identity
    return info.get("sha256") == m.sha256


def plan(files: list[Path], models: list[str], catalog: Catalog) -> tuple[list[tuple[Path, frozenset[str]]], int]:
    """Which models still need each file; a file whose size, mtime and hash are unchanged needs none."""
    ids = [image_id(p) for p in files]
    records = catalog.get_images(ids)
    done = {m: catalog.done(m) for m in models}
    tasks, unchanged = [], 0
    for p, i in zip(files, ids, strict=True):
        rec = records.get(i)
        try:
            st = p.stat()
        except OSError:
            tasks.append((p, frozenset(models)))  # the pipeline reports why it cannot be read
            continue
        same_file = rec is not None and rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns
        needed = frozenset(m for m in models if not (same_file and done[m].get(i) == rec.sha))
        if needed:
            tasks.append((p, needed))
        else:
            unchanged += 1
    return tasks, unchanged


class StoreSink:
    """Writes each batch: catalogue entries, then vectors per model, then that model's ``done`` mark."""

    def __init__(self, stores: Stores, root: Path, labels: bool, report: IngestReport) -> None:
        self.stores, self.root, self.labels, self.report = stores, root, labels, report
        self.seconds = 0.0

    def write(self, batch: Batch) -> None:
        t = time.perf_counter()
        recs = [
            ImageRecord(
                image_id(it.path),
                str(it.path),
                it.sha,
                it.size,
                it.mtime_ns,
                it.path.parent.name if self.labels else "",
                str(self.root),
            )
            for it in batch.items
        ]
        self.stores.catalog.put_images(recs)
        for name, (rows, vecs) in batch.vectors.items():
            ids = [recs[r].id for r in rows]
            self.stores.vectors.upsert(self.stores.collection(name), ids, vecs)
            self.stores.catalog.mark_done(name, {recs[r].id: recs[r].sha for r in rows})
            self.report.embedded[name] = self.report.embedded.get(name, 0) + len(ids)
        self.report.catalogued += len(recs)
        self.seconds += time.perf_counter() - t

    def close(self) -> None:
        """Flush what was written, so searches use the index (unflushed rows are searched by brute force)."""
        t = time.perf_counter()
        for name, n in self.report.embedded.items():
            if n:
                self.stores.vectors.flush(self.stores.collection(name))
        self.seconds += time.perf_counter() - t


def ingest(
    folder: str | Path,
    models: dict[str, ModelSession],
    stores: Stores,
    *,
    batch_size: int | dict[str, int] = 32,
    workers: int | None = None,
    extensions=DEFAULT_EXTENSIONS,
    labels: bool = True,
    prune: bool = False,
    rebuild: bool = False,
    rebuild_changed: bool = False,
    progress: bool = True,
    report_dir: str | Path | None = None,
    engine: RaySettings | None = None,
) -> IngestReport:
    """Embed what is new or changed under ``folder`` with every model and store it; see the module doc."""
    t0 = time.perf_counter()
    root = Path(folder).expanduser().resolve()
    scan = scan_folder(root, extensions)
    report = IngestReport(scanned=len(scan.files), skipped=list(scan.skipped))
    report.providers = {n: m.providers_active for n, m in models.items()}
    report.embedded = {n: 0 for n in models}
    if engine is None:
        pipeline = Pipeline(models, batch_size=batch_size, workers=workers, progress=progress)
    else:  # the same batches from Ray Data; written below exactly as the local engine's
        pipeline = RayPipeline(models, batch_size=batch_size, settings=engine, progress=progress)
        if scan.files:
            connect_ray(engine)  # a cluster that cannot be started or reached fails here, before any write
    prepare_collections(stores, models, len(scan.files), rebuild, rebuild_changed)
    tasks, report.unchanged = plan(scan.files, list(models), stores.catalog)
    sink = StoreSink(stores, root, labels, report)
    try:
        for batch in pipeline.run(tasks):
            sink.write(batch)
    finally:
        sink.close()
    report.skipped += pipeline.failures
    if engine is not None:
        report.providers = {n: sorted(p) for n, p in pipeline.providers_active.items()}  # what the actors ran
    if prune:
        report.removed = prune_missing(stores, root, {image_id(p) for p in scan.files})
        report.pruned = len(report.removed)
    pipeline.times.write = sink.seconds
    report.times = pipeline.times.as_dict() | {"total_s": round(time.perf_counter() - t0, 3)}
    if report_dir:
        write_ingest_report(report, Path(report_dir))
    return report


def write_ingest_report(report: IngestReport, out: Path) -> None:
    """``skipped.json`` and ``ingest.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "skipped.json").write_text(json.dumps(report.as_dict()["skipped"], indent=1, ensure_ascii=False))
    (out / "ingest.json").write_text(json.dumps(report.as_dict(), indent=1, ensure_ascii=False))


def prune_missing(stores: Stores, root: Path, present: set[int]) -> list[str]:
    """Remove images catalogued under ``root`` that the scan no longer found, from every store; their paths."""
    records = stores.catalog.get_images(stores.catalog.ids())
    gone = [i for i, r in records.items() if r.root == str(root) and i not in present]
    if not gone:
        return []
    models = stores.catalog.models()
    for name in models:
        if stores.vectors.exists(stores.collection(name)):  # a collection dropped by a rebuild cut short has none
            stores.vectors.delete(stores.collection(name), gone)
            stores.vectors.flush(stores.collection(name))
    stores.catalog.remove_images(gone, models)
    return sorted(records[i].path for i in gone)
