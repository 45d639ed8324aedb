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

from .catalog import Catalog, ImageRecord
from .ids import image_id
from .pipeline import Embedder
from .runner import OnnxEmbedder
from .scan import DEFAULT_EXTENSIONS, scan_folder
from .vectors import CollectionMismatchError, IndexConfig, VectorStore, collection_name

log = logging.getLogger(__name__)


class ModelChangedError(CollectionMismatchError):
    """The model file differs from the one a collection was built with."""


@dataclass
class Stores:
    """The two stores and how collections are named and indexed."""

    catalog: Catalog
    vectors: VectorStore
    prefix: str
    index: IndexConfig = field(default_factory=IndexConfig)

    def collection(self, model: str) -> str:
        return collection_name(self.prefix, model)


@dataclass
class IngestReport:
    scanned: int = 0
    catalogued: int = 0
    embedded: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    pruned: int = 0
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
            "providers": self.providers,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "times": self.times,
        }


def prepare_collections(
    stores: Stores, models: dict[str, OnnxEmbedder], expected_rows: int, rebuild: bool = False
) -> None:
    """Create or check each model's collection; a changed model file is an error unless ``rebuild``."""
    known = stores.catalog.models()
    for name, m in models.items():
        coll = stores.collection(name)
        info = known.get(name)
        if info and info.get("sha256") != m.sha256 and not rebuild:
            raise ModelChangedError(
                f"model {name} ({m.path}) changed since collection {coll} was built from it: re-embed with "
                f"`--rebuild` (drops that model's vectors and embeds again) or use another namespace"
            )
        if rebuild:
            stores.vectors.drop(coll)
            stores.catalog.drop_model(name)
        stores.vectors.ensure(coll, m.dim, stores.index, expected_rows)
        stores.catalog.set_model(
            name,
            {
                "collection": coll,
                "dim": m.dim,
                "sha256": m.sha256,
                "metric": stores.index.metric,
                "index": stores.vectors.index_info(coll),
                "weights": m.meta.get("weights"),
                "path": str(m.path),
            },
        )


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


def ingest(
    folder: str | Path,
    models: dict[str, OnnxEmbedder],
    stores: Stores,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    extensions=DEFAULT_EXTENSIONS,
    labels: bool = True,
    prune: bool = False,
    rebuild: bool = False,
    progress: bool = True,
    report_dir: str | Path | None = None,
) -> IngestReport:
    """Embed what is new or changed under ``folder`` with every model and store it; see the module doc."""
    t0 = time.perf_counter()
    root = Path(folder).expanduser().resolve()
    scan = scan_folder(root, extensions)
    report = IngestReport(scanned=len(scan.files), skipped=list(scan.skipped))
    report.providers = {n: m.providers_active for n, m in models.items()}
    prepare_collections(stores, models, len(scan.files), rebuild)
    tasks, report.unchanged = plan(scan.files, list(models), stores.catalog)
    embedder = Embedder(models, batch_size=batch_size, workers=workers, progress=progress)
    write_s = 0.0
    report.embedded = {n: 0 for n in models}
    for batch in embedder.run(tasks):
        tw = time.perf_counter()
        recs = [
            ImageRecord(
                image_id(it.path),
                str(it.path),
                it.sha,
                it.size,
                it.mtime_ns,
                it.path.parent.name if labels else "",
                str(root),
            )
            for it in batch.items
        ]
        stores.catalog.put_images(recs)
        for name, (rows, vecs) in batch.vectors.items():
            ids = [recs[r].id for r in rows]
            stores.vectors.upsert(stores.collection(name), ids, vecs)
            stores.catalog.mark_done(name, {recs[r].id: recs[r].sha for r in rows})
            report.embedded[name] += len(ids)
        report.catalogued += len(recs)
        write_s += time.perf_counter() - tw
    report.skipped += embedder.failures
    tw = time.perf_counter()
    for name, n in report.embedded.items():
        if n:
            stores.vectors.flush(stores.collection(name))
    write_s += time.perf_counter() - tw
    if prune:
        report.pruned = prune_missing(stores, root, {image_id(p) for p in scan.files})
    embedder.times.write = write_s
    report.times = embedder.times.as_dict() | {"total_s": round(time.perf_counter() - t0, 3)}
    if report_dir:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "skipped.json").write_text(json.dumps(report.as_dict()["skipped"], indent=1, ensure_ascii=False))
        (out / "ingest.json").write_text(json.dumps(report.as_dict(), indent=1, ensure_ascii=False))
    return report


def prune_missing(stores: Stores, root: Path, present: set[int]) -> int:
    """Remove images catalogued under ``root`` that the scan no longer found, from every store."""
    records = stores.catalog.get_images(stores.catalog.ids())
    gone = [i for i, r in records.items() if r.root == str(root) and i not in present]
    if not gone:
        return 0
    models = stores.catalog.models()
    for name in models:
        stores.vectors.delete(stores.collection(name), gone)
        stores.vectors.flush(stores.collection(name))
    stores.catalog.remove_images(gone, models)
    return len(gone)


@dataclass
class CheckReport:
    """Differences between the stores, per model; ``pending`` (not yet embedded) is not a disagreement."""

    problems: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(v for d in self.problems.values() for v in d.values())


def check(stores: Stores, repair: bool = False) -> CheckReport:
    """Compare Milvus and Redis; with ``repair`` remove what a crash left half-written."""
    cat = stores.catalog
    ids, keys = cat.ids(), cat.image_keys()
    rep = CheckReport()
    rep.problems["catalogue"] = {"id_without_record": sorted(ids - keys), "record_without_id": sorted(keys - ids)}
    if repair:
        cat.remove_images(rep.problems["catalogue"]["id_without_record"], [])
        cat.remove_images(rep.problems["catalogue"]["record_without_id"], [])
        ids = ids & keys
    for name, info in cat.models().items():
        coll = info.get("collection", stores.collection(name))
        vec_ids = stores.vectors.ids(coll) if stores.vectors.c.has_collection(coll) else set()
        done = set(cat.done(name))
        p = {
            "vector_without_mark": sorted(vec_ids - done),
            "mark_without_vector": sorted(done - vec_ids),
            "mark_without_image": sorted(done - ids),
        }
        rep.problems[name] = p
        rep.pending[name] = len(ids - done)
        rep.counts[name] = {"catalogue": len(ids), "done": len(done), "vectors": len(vec_ids)}
        if repair:
            stores.vectors.delete(coll, sorted(set(p["vector_without_mark"]) | set(p["mark_without_image"])))
            cat.unmark(name, set(p["mark_without_vector"]) | set(p["mark_without_image"]))
    return rep
