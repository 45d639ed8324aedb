"""The explorer's state: the stores, one session per model (opened once), each model's calibration baseline,
thumbnails and maps; and its two queries (an uploaded image, a catalogued id), both through ``search``."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..embed.decode import decode, read_bytes
from ..embed.images import embed_images
from ..errors import CollectionMismatchError, DecodeError, ModelChangedError, ModelFileError
from ..experiment.augmented import calibrate_hits
from ..experiment.calibration import baseline, describe, sample_ids
from ..ids import content_hash
from ..models.session import ModelSession, SessionConfig, resolve_model_path
from ..search import search_embedded
from ..store.stores import Stores
from .guard import UPLOAD_MAX_PIXELS, RequestError
from .maps import MapCache
from .runs import RunView
from .thumbs import ThumbCache

log = logging.getLogger(__name__)


def open_sessions(
    stores: Stores, names: list[str] | None, models_dir: Path, config: SessionConfig | None = None
) -> dict[str, ModelSession]:
    """One session per ingested model (or those named), from the file its collection was built with."""
    ingested = stores.catalog.models()
    names = names or sorted(ingested)
    if not names:
        raise CollectionMismatchError(
            f"nothing is ingested in namespace {stores.catalog.ns}: run `onnx-search ingest` or `make demo` first, "
            "or point serve at the run folder / --data-dir / --namespace that holds the collections"
        )
    out = {}
    for name in names:
        info = ingested.get(name)
        if info is None:
            raise CollectionMismatchError(f"model {name} has no collection in namespace {stores.catalog.ns}")
        path = Path(info["path"]) if info.get("path") and Path(info["path"]).is_file() else None
        try:
            path = path or resolve_model_path(name, models_dir)
        except ModelFileError as exc:
            raise ModelFileError(f"{exc} (serve needs the model that built collection {info['collection']})") from None
        session = ModelSession(path, config or SessionConfig(providers=["auto"]))
        if info.get("sha256") and session.sha256 != info["sha256"]:
            raise ModelChangedError(
                f"{path} differs from the file collection {info['collection']} was built with: re-ingest it "
                f"(`onnx-search ingest FOLDER --model {name} --rebuild`) or serve the other models with --model"
            )
        out[name] = session
    return out


@dataclass
class Explorer:
    """What every route works on; queries are serialised by one lock, maps by their cache's own."""

    stores: Stores
    sessions: dict[str, ModelSession]
    cache_dir: Path
    runs: list[RunView] = field(default_factory=list)
    max_upload: int = 20 * 1024 * 1024
    seed: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.thumbs = ThumbCache(self.cache_dir / "thumbs")
        self.maps = MapCache(self.stores, self.cache_dir / "maps")
        self.bases = {m: self._baseline(m) for m in self.sessions}

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
        ingested = self.stores.catalog.models()
        return [
            {
                "name": m,
                "dim": s.dim,
                "images": len(self.stores.catalog.done(m)),
                "collection": self.stores.collection(m),
                "weights": str(s.meta.get("weights", "")),
                "provider": s.provider,
                "metric": ingested.get(m, {}).get("metric", self.stores.index.metric),
                "baseline": describe(self.bases[m]) if self.bases[m].size else None,
            }
            for m, s in self.sessions.items()
        ]

    def _pick(self, models: list[str] | None) -> dict[str, ModelSession]:
        unknown = [m for m in models or [] if m not in self.sessions]
        if unknown:
            raise RequestError(400, f"unknown model(s) {unknown}; served: {', '.join(self.sessions)}")
        return {m: s for m, s in self.sessions.items() if not models or m in models}

    def query_upload(self, data: bytes, k: int, models: list[str] | None = None) -> dict:
        """Decode an uploaded image with ingest's guards, embed it with each model, search each collection."""
        if len(data) > self.max_upload:
            raise RequestError(413, f"upload of {len(data)} bytes exceeds the {self.max_upload} byte limit")
        try:
            img = decode(data, max_pixels=UPLOAD_MAX_PIXELS)
        except DecodeError as exc:
            raise RequestError(400, f"not a usable image: {exc}") from None
        chosen = self._pick(models)
        t = time.perf_counter()
        with self.lock:
            vecs = embed_images(chosen, [img])
            query = f"upload:{content_hash(data)}"
            return self._answer(query, None, vecs, chosen, k, False, time.perf_counter() - t)

    def query_id(self, image_id: int, k: int, exclude_self: bool, models: list[str] | None = None) -> dict:
        """Search from a catalogued image: its stored vector per model (embedded from the file if missing)."""
        chosen = self._pick(models)
        t = time.perf_counter()
        with self.lock:
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

    def _answer(self, query: str, qid, vecs: dict, chosen: dict, k: int, exclude_self: bool, embed_s: float) -> dict:
        t = time.perf_counter()
        hits = [h.as_dict() for h in search_embedded([Path(query)], vecs, self.stores, k, exclude_self)]
        calibrate_hits(hits, self.bases)
        found: dict[int, list[str]] = {}
        for h in hits:
            found.setdefault(h["id"], []).append(h["model"])
        per_model = {m: [] for m in chosen}
        for h in hits:
            per_model[h["model"]].append(
                {
                    "id": str(h["id"]),
                    "rank": h["rank"],
                    "label": h["label"],
                    "name": Path(h["path"]).name,
                    "cosine": round(h["cosine"], 6),
                    "percentile": h.get("percentile"),
                    "z": h.get("z"),
                    "also": [o for o in found[h["id"]] if o != h["model"]],
                }
            )
        return {
            "query": {"id": None if qid is None else str(qid), "name": Path(query).name},
            "k": k,
            "exclude_self": exclude_self,
            "models": per_model,
            "timing_ms": {"embed": round(embed_s * 1000, 1), "search": round((time.perf_counter() - t) * 1000, 1)},
        }

    def record(self, image_id: int):
        rec = self.stores.catalog.get_images([image_id]).get(image_id)
        if rec is None:
            raise RequestError(404, f"no catalogued image has id {image_id}")
        return rec

    def map(self, model: str, method: str) -> dict:
        self._pick([model])
        proj = self.maps.get(model, method)  # its own lock: a long t-SNE never holds up the queries
        recs = self.stores.catalog.get_images(proj.ids)
        labels = [recs[i].label if i in recs else "" for i in proj.ids]
        names = sorted(set(labels))
        index = {n: j for j, n in enumerate(names)}
        return {
            "model": model,
            "method": proj.method,
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
