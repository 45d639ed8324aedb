"""The explorer's state: the stores, one session per model (opened once), each model's calibration baseline,
thumbnails and maps; and its two queries (an uploaded image, a catalogued id), both through ``search``.

A model whose file is missing or changed is left out (``Unavailable``: reason and fix), not a refusal to start."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..embed.decode import decode, read_bytes
from ..embed.images import embed_images
from ..errors import CollectionMismatchError, DecodeError, ModelChangedError, ModelFileError, OnnxSearchError
from ..experiment.augmented import calibrate_hits
from ..experiment.calibration import baseline, describe, sample_ids
from ..ids import content_hash
from ..models.session import ModelSession, SessionConfig, resolve_model_path
from ..search import search_embedded
from ..store.stores import Stores
from .guard import UPLOAD_MAX_PIXELS, Busy, RequestError
from .maps import MapCache, MapJob
from .runs import RunView, run_baselines
from .thumbs import ThumbCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unavailable:
    """A model left out of the explorer: why, and the command that brings it back."""

    model: str
    reason: str
    fix: str

    def as_dict(self) -> dict:
        return {"model": self.model, "reason": self.reason, "fix": self.fix}


def open_sessions(
    stores: Stores, names: list[str] | None, models_dir: Path, config: SessionConfig | None = None
) -> tuple[dict[str, ModelSession], list[Unavailable]]:
    """One session per ingested model (or those named), from the file its collection was built with.

    A model whose file is missing, unreadable or changed since its collection was built is left out with the
    reason and the fix; the others are served. Raises only when nothing is ingested or a named model is not."""
    ingested = stores.catalog.models()
    names = names or sorted(ingested)
    if not names:
        raise CollectionMismatchError(
            f"nothing is ingested in namespace {stores.catalog.ns}: run `onnx-search ingest` or `make demo` first, "
            "or point serve at the run folder / --data-dir / --namespace that holds the collections"
        )
    out, left_out = {}, []
    for name in names:
        info = ingested.get(name)
        if info is None:
            raise CollectionMismatchError(f"model {name} has no collection in namespace {stores.catalog.ns}")
        rebuild = f"onnx-search ingest FOLDER --model {name} --rebuild"
        recorded = Path(info["path"]) if info.get("path") else None
        try:
            if recorded is not None and not recorded.is_file():
                raise ModelFileError(f"model file {recorded} does not exist")
            path = recorded or resolve_model_path(name, models_dir)
            session = ModelSession(path, config or SessionConfig(providers=["auto"]))
        except OnnxSearchError as exc:  # missing, unknown or unreadable: this model is left out
            where = recorded or f"{models_dir}/{name}.onnx"
            fix = f"put the model file back at {where} (a registry model: `onnx-search convert --model {name}`)"
            fix += f", or `{rebuild}`"
            left_out.append(Unavailable(name, f"{exc} (collection {info['collection']} was built with it)", fix))
            log.warning("serving without %s: %s", name, exc)
            continue
        if info.get("sha256") and session.sha256 != info["sha256"]:
            reason = f"{path} differs from the file collection {info['collection']} was built with"
            left_out.append(Unavailable(name, reason, f"`{rebuild}` (re-embeds the collection with this file)"))
            log.warning("serving without %s: %s", name, reason)
            continue
        out[name] = session
    if not out:
        raise ModelChangedError(
            "no model can be served: " + "; ".join(f"{u.model}: {u.reason} (fix: {u.fix})" for u in left_out)
        )
    return out, left_out


@dataclass
class Explorer:
    """What every route works on. Nothing is serialised across queries: an id query needs no embedding and takes
    no lock; uploads run on a bounded pool (``uploads``) since onnxruntime's ``run`` is thread-safe; maps are
    computed in the background by their cache."""

    stores: Stores
    sessions: dict[str, ModelSession]
    cache_dir: Path
    runs: list[RunView] = field(default_factory=list)
    max_upload: int = 20 * 1024 * 1024
    seed: int = 0
    unavailable: list[Unavailable] = field(default_factory=list)
    workers: int = 2  # uploads embedded at once
    queue: int = 16  # uploads waiting beyond those; one more is answered 503

    def __post_init__(self) -> None:
        self.thumbs = ThumbCache(self.cache_dir / "thumbs")
        self.maps = MapCache(self.stores, self.cache_dir / "maps")
        self.uploads = Admission(self.workers, self.queue, "uploads")
        self.bases, self.base_source = {}, {}
        run_bases = run_baselines(self.runs[0], self.stores, self.sessions) if self.runs else {}
        for m in self.sessions:
            if m in run_bases:
                self.bases[m], self.base_source[m] = run_bases[m], f"run {self.runs[0].name}"
            else:
                self.bases[m], self.base_source[m] = self._baseline(m), "collection sample"
        self._by_hash: tuple[float, dict[str, list[int]]] | None = None
        self._hash_lock = threading.Lock()

    def _baseline(self, model: str) -> np.ndarray:
        """Cosines between distinct images of a seeded sample of the collection: the model's unrelated pairs."""
        ids = sample_ids(list(self.stores.catalog.done(model)), self.seed)
        found = self.stores.fetch_present(model, ids)
        keep = [i for i in ids if i in found]
        if len(keep) < 2:
            return np.zeros(0)
        v = np.stack([found[i] for i in keep])
        return baseline(v, v, keep, keep)

    def models(self) -> list[dict]:
        """Each served model's header: weights, dimension, collection size, baseline and the run's quality."""
        ingested = self.stores.catalog.models()
        quality = self.runs[0].quality() if self.runs else {}
        out = []
        for m, s in self.sessions.items():
            weights = str(s.meta.get("weights", "") or ingested.get(m, {}).get("weights", ""))
            row = {
                "name": m,
                "dim": s.dim,
                "images": len(self.stores.catalog.done(m)),
                "collection": self.stores.collection(m),
                "weights": weights,
                "random_weights": weights.startswith("random"),
                "provider": s.provider,
                "metric": ingested.get(m, {}).get("metric", self.stores.index.metric),
                "baseline": describe(self.bases[m]) if self.bases[m].size else None,
                "baseline_source": self.base_source[m],
            }
            if m in quality:
                row["quality"] = quality[m]
            out.append(row)
        return out

    def _pick(self, models: list[str] | None) -> dict[str, ModelSession]:
        gone = {u.model: u for u in self.unavailable}
        unknown = [m for m in models or [] if m not in self.sessions]
        if unknown:
            why = "; ".join(f"{m} is not served: {gone[m].reason}" for m in unknown if m in gone)
            raise RequestError(400, why or f"unknown model(s) {unknown}; served: {', '.join(self.sessions)}")
        return {m: s for m, s in self.sessions.items() if not models or m in models}

    def catalogued_with_hash(self, sha: str, max_age_s: float = 30.0) -> list[int]:
        """Catalogued ids whose file has this content hash (an index of the catalogue, rebuilt when stale)."""
        with self._hash_lock:
            if self._by_hash is None or time.monotonic() - self._by_hash[0] > max_age_s:
                index: dict[str, list[int]] = {}
                for rec in self.stores.catalog.get_images(self.stores.catalog.ids()).values():
                    index.setdefault(rec.sha, []).append(rec.id)
                self._by_hash = (time.monotonic(), index)
            return list(self._by_hash[1].get(sha, []))

    def query_upload(self, data: bytes, k: int, models: list[str] | None = None, exclude_self: bool = False) -> dict:
        """Decode an uploaded image with ingest's guards, embed it with each model, search each collection.

        With ``exclude_self``, catalogued images with the upload's content hash (the same file) are left out."""
        if len(data) > self.max_upload:
            raise RequestError(413, f"upload of {len(data)} bytes exceeds the {self.max_upload} byte limit")
        try:
            img = decode(data, max_pixels=UPLOAD_MAX_PIXELS)
        except DecodeError as exc:
            raise RequestError(400, f"not a usable image: {exc}") from None
        chosen = self._pick(models)
        sha = content_hash(data)
        same = self.catalogued_with_hash(sha) if exclude_self else []
        t = time.perf_counter()
        vecs = embed_images(chosen, [img])
        out = self._answer(f"upload:{sha}", None, vecs, chosen, k, False, time.perf_counter() - t, set(same))
        out["query"]["excluded"] = [str(i) for i in same]
        out["exclude_self"] = exclude_self
        return out

    def query_id(self, image_id: int, k: int, exclude_self: bool, models: list[str] | None = None) -> dict:
        """Search from a catalogued image: its stored vector per model (embedded from the file if missing)."""
        chosen = self._pick(models)
        t = time.perf_counter()
        rec = self.stores.catalog.get_images([image_id]).get(image_id)
        if rec is None:
            raise RequestError(404, f"no catalogued image has id {image_id}")
        vecs, missing = {}, []
        for m in chosen:
            got = self.stores.fetch_present(m, [image_id])
            if image_id in got:
                vecs[m] = got[image_id][None, :]
            else:
                missing.append(m)
        if missing:
            try:
                img = decode(read_bytes(rec.path), max_pixels=UPLOAD_MAX_PIXELS)
            except DecodeError as exc:
                raise RequestError(409, f"image {image_id} is catalogued but cannot be read now: {exc}") from None
            vecs |= embed_images({m: chosen[m] for m in missing}, [img])
        vecs = {m: vecs[m] for m in chosen}
        return self._answer(rec.path, image_id, vecs, chosen, k, exclude_self, time.perf_counter() - t)

    def _answer(
        self, query: str, qid, vecs: dict, chosen: dict, k: int, exclude_self: bool, embed_s: float, drop=frozenset()
    ) -> dict:
        t = time.perf_counter()
        found_hits = search_embedded([Path(query)], vecs, self.stores, k + len(drop), exclude_self)
        hits = [h.as_dict() for h in found_hits if h.id not in drop]
        calibrate_hits(hits, self.bases)
        found: dict[int, list[str]] = {}
        per_model: dict[str, list[dict]] = {m: [] for m in chosen}
        for h in hits:
            if len(per_model[h["model"]]) < k:
                per_model[h["model"]].append(h)
                found.setdefault(h["id"], []).append(h["model"])
        shown = {
            m: [
                {
                    "id": str(h["id"]),
                    "rank": rank,
                    "label": h["label"],
                    "name": Path(h["path"]).name,
                    "cosine": round(h["cosine"], 6),
                    "percentile": h.get("percentile"),
                    "z": h.get("z"),
                    "also": [o for o in found[h["id"]] if o != m],
                }
                for rank, h in enumerate(rows, 1)
            ]
            for m, rows in per_model.items()
        }
        return {
            "query": {"id": None if qid is None else str(qid), "name": Path(query).name},
            "k": k,
            "exclude_self": exclude_self,
            "models": shown,
            "timing_ms": {"embed": round(embed_s * 1000, 1), "search": round((time.perf_counter() - t) * 1000, 1)},
        }

    def record(self, image_id: int):
        rec = self.stores.catalog.get_images([image_id]).get(image_id)
        if rec is None:
            raise RequestError(404, f"no catalogued image has id {image_id}")
        return rec

    def gallery(self, label: str | None, offset: int, limit: int) -> dict:
        """Catalogued images (sorted by label, then file name), optionally of one label, one page at a time."""
        recs = sorted(self.stores.catalog.get_images(self.stores.catalog.ids()).values(),
                      key=lambda r: (r.label, Path(r.path).name, r.id))  # fmt: skip
        counts: dict[str, int] = {}
        for r in recs:
            counts[r.label] = counts.get(r.label, 0) + 1
        if label is not None and label not in counts:
            known = ", ".join(sorted(counts))
            raise RequestError(400, f"no catalogued image has label {label[:60]!r}; labels: {known}")
        chosen = [r for r in recs if label is None or r.label == label]
        return {
            "total": len(chosen),
            "offset": offset,
            "limit": limit,
            "label": label,
            "labels": [{"name": n, "count": c} for n, c in sorted(counts.items())],
            "items": [
                {"id": str(r.id), "label": r.label, "name": Path(r.path).name} for r in chosen[offset : offset + limit]
            ],
        }

    def map(self, model: str, method: str, wait_s: float = 0.0) -> dict:
        """The map when it is cached (or ready within ``wait_s``), else the state of its computation."""
        self._pick([model])
        proj = self.maps.wait(model, method, wait_s) if wait_s > 0 else self.maps.get(model, method)
        if isinstance(proj, MapJob):
            return proj.state()
        recs = self.stores.catalog.get_images(proj.ids)
        labels = [recs[i].label if i in recs else "" for i in proj.ids]
        names = sorted(set(labels))
        index = {n: j for j, n in enumerate(names)}
        return {
            "model": model,
            "method": proj.method,
            "state": "ready",
            "ids": [str(i) for i in proj.ids],
            "xy": np.round(proj.xy, 4).ravel().tolist(),
            "label": [index[n] for n in labels],
            "labels": names,
            "seconds": round(proj.seconds, 3),
        }

    def run(self, index: int) -> RunView:
        if not 0 <= index < len(self.runs):
            raise RequestError(404, f"no run {index}: {len(self.runs)} run folder(s) are served")
        return self.runs[index]


class Admission:
    """A bounded pool: ``workers`` tasks run, ``queue`` more wait, and one beyond those is refused (``Busy``)."""

    def __init__(self, workers: int, queue: int, what: str) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=what)
        self.capacity, self.what = max(1, workers) + max(0, queue), what
        self._n = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._n

    def submit(self, fn, *args) -> Future:
        with self._lock:
            if self._n >= self.capacity:
                raise Busy(f"{self._n} {self.what} are running or waiting (limit {self.capacity}): ask again shortly")
            self._n += 1
        future = self.pool.submit(fn, *args)
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._n -= 1
