"""2-D maps of each model's collection (PCA or t-SNE from scikit-learn), cached beside the stores.

A map is keyed by a fingerprint of what the collection holds (every id with its content hash, and the model
file's hash): ingesting, pruning or re-embedding changes the fingerprint and the next request recomputes it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from ..errors import OnnxSearchError
from ..store.stores import Stores
from .guard import Busy

# UMAP is not offered: umap-learn's numba compilation took longer than t-SNE on the same collection here
# (python -m onnx_search.bench.projections -> bench/projections.json)
METHODS = ("pca", "tsne")
SLOW_METHODS = ("tsne",)  # refused beyond TSNE_MAX_POINTS
FETCH_CHUNK = 1000
# t-SNE (scikit-learn, Barnes-Hut) took 59 s for 1,000 points on this shared 2-core CPU: beyond this many points
# the explorer refuses it and says to use PCA, rather than hold a request for many minutes
TSNE_MAX_POINTS = 5000


@dataclass
class Projection:
    ids: list[int]
    xy: np.ndarray  # (n, 2) float32, scaled to 0..1 on both axes
    method: str
    fingerprint: str
    seconds: float  # time to compute (0 when read from the cache)


@dataclass
class MapJob:
    """A projection being computed in the background: what the page shows while it waits."""

    model: str
    method: str
    fingerprint: str
    stage: str = "queued"  # queued -> fetch -> project
    progress: float = 0.0  # 0..1: fetching the vectors is the first half; the projection ends it
    points: int | None = None
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Projection | None = None
    error: BaseException | None = None

    def finished(self) -> bool:
        return self.done.is_set()

    def state(self) -> dict:
        return {
            "model": self.model,
            "method": self.method,
            "state": "computing",
            "stage": self.stage,
            "progress": round(self.progress, 3),
            "points": self.points,
            "elapsed_s": round(time.monotonic() - self.started, 2),
        }


def fingerprint(stores: Stores, model: str, done: dict[int, str] | None = None) -> str:
    """Hash of the collection's content: sorted (id, content hash) pairs and the model file's sha256."""
    done = stores.catalog.done(model) if done is None else done
    info = stores.catalog.models().get(model, {})
    h = hashlib.blake2b(digest_size=16)
    h.update(str(info.get("sha256", "")).encode())
    for i in sorted(done):
        h.update(f"{i}:{done[i]};".encode())
    return h.hexdigest()


def too_many(method: str, n: int) -> str:
    name = {"tsne": "t-SNE"}.get(method, method)
    return f"{name} of {n} points would take many minutes here (limit {TSNE_MAX_POINTS}): use PCA"


def project(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(n, d) unit vectors -> (n, 2) in 0..1; PCA is exact and fast, t-SNE shows neighbourhoods (slower; on the
    first 50 principal components)."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 3:
        xy = np.zeros((n, 2)) if n == 1 else np.array([[0.0, 0.0], [1.0, 1.0]])
    elif method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    else:
        if n > TSNE_MAX_POINTS:
            raise OnnxSearchError(too_many(method, n))
        x = vectors if vectors.shape[1] <= 50 else PCA(n_components=50, random_state=seed).fit_transform(vectors)
        tsne = TSNE(2, perplexity=float(min(30.0, (n - 1) / 3)), init="pca", random_state=seed, max_iter=500)
        xy = tsne.fit_transform(x)
    xy = np.asarray(xy, np.float64)
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    return ((xy - lo) / np.where(span > 0, span, 1.0)).astype(np.float32)


class MapCache:
    """Projections per (model, method): in memory, and on disk as ``folder/<collection>.<method>.npz``.

    A projection is computed off the request path: ``get`` answers at once with the map when it is cached (memory
    or disk) or with the state of the background computation it started (``MapJob``). PCA maps have a worker of
    their own; at most ``workers`` t-SNE/UMAP maps run at a time; ``workers + queue`` computations in all may be
    running or waiting (one more is a ``Busy``, which the route answers 503).
    """

    def __init__(self, stores: Stores, folder: Path, workers: int = 1, queue: int = 8) -> None:
        self.stores = stores
        self.folder = Path(folder)
        self._mem: dict[tuple[str, str], Projection] = {}
        self._jobs: dict[tuple[str, str], MapJob] = {}
        self._lock = threading.Lock()  # held only to look up / register, never while computing
        # PCA (seconds) on its own worker: it never waits behind a t-SNE or UMAP (a minute or more)
        self._fast = ThreadPoolExecutor(1, thread_name_prefix="map-fast")
        self._slow = ThreadPoolExecutor(workers, thread_name_prefix="map-slow")
        self.capacity = workers + queue

    def get(self, model: str, method: str = "pca") -> Projection | MapJob:
        """The cached projection, or the job computing it (started here when none runs)."""
        if method not in METHODS:
            raise OnnxSearchError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
        done = self.stores.catalog.done(model)
        fp = fingerprint(self.stores, model, done)
        key = (model, method)
        with self._lock:
            hit = self._mem.get(key)
            if hit and hit.fingerprint == fp:
                return replace(hit, seconds=0.0)
            job = self._jobs.get(key)
            if job and job.fingerprint == fp and not job.finished():
                return job
            if job and job.fingerprint == fp and job.result is not None:
                self._mem[key] = job.result
                del self._jobs[key]
                return job.result  # the first answer after a computation carries its time
            if job and job.fingerprint == fp and job.error is not None:
                del self._jobs[key]  # said once; a later request tries again
                raise job.error
        path = self.folder / f"{self.stores.collection(model)}.{method}.npz"
        cached = self._read(path, fp, method)
        if cached is not None:
            with self._lock:
                self._mem[key] = cached
            return cached
        if method in SLOW_METHODS and len(done) > TSNE_MAX_POINTS:
            raise OnnxSearchError(too_many(method, len(done)))
        with self._lock:
            job = self._jobs.get(key)
            if job and job.fingerprint == fp and not job.finished():
                return job
            if sum(not j.finished() for j in self._jobs.values()) >= self.capacity:
                raise Busy(f"{self.capacity} maps are being computed or waiting: ask again shortly", retry_after=5)
            job = MapJob(model, method, fp)
            self._jobs[key] = job
        (self._slow if method in SLOW_METHODS else self._fast).submit(self._run, job, path)
        return job

    def wait(self, model: str, method: str, timeout: float) -> Projection | MapJob:
        """``get``, then wait up to ``timeout`` seconds for a computation it finds running."""
        got = self.get(model, method)
        if isinstance(got, MapJob) and got.done.wait(timeout):
            return self.get(model, method)
        return got

    def _run(self, job: MapJob, path: Path) -> None:
        try:
            job.stage = "fetch"
            job.result = self._compute(job, path)
        except BaseException as exc:  # noqa: BLE001 - reported to the next request, never lost in the pool
            job.error = exc if isinstance(exc, OnnxSearchError) else OnnxSearchError(f"map failed: {exc}")
        finally:
            job.done.set()

    def _read(self, path: Path, fp: str, method: str) -> Projection | None:
        try:
            with np.load(path) as z:
                if str(z["fingerprint"]) != fp:
                    return None
                return Projection([int(i) for i in z["ids"]], z["xy"], method, fp, 0.0)
        except (OSError, KeyError, ValueError):
            return None

    def _compute(self, job: MapJob, path: Path) -> Projection:
        t = time.perf_counter()
        ids = sorted(self.stores.catalog.done(job.model))
        found: dict[int, np.ndarray] = {}
        for s in range(0, len(ids), FETCH_CHUNK):
            found |= self.stores.fetch_present(job.model, ids[s : s + FETCH_CHUNK])
            job.progress = 0.5 * min(1.0, (s + FETCH_CHUNK) / max(len(ids), 1))
        ids = [i for i in ids if i in found]
        vecs = np.stack([found[i] for i in ids]) if ids else np.zeros((0, 1), np.float32)
        job.stage, job.points = "project", len(ids)
        xy = project(vecs, job.method)
        job.progress = 1.0
        proj = Projection(ids, xy, job.method, job.fingerprint, time.perf_counter() - t)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp.npz")
        np.savez(tmp, ids=np.asarray(ids, np.int64), xy=xy, fingerprint=np.asarray(job.fingerprint))
        tmp.replace(path)
        return proj
