"""2-D maps of each model's collection (PCA or t-SNE from scikit-learn), cached beside the stores.

A map is keyed by a fingerprint of what the collection holds (every id with its content hash, and the model
file's hash): ingesting, pruning or re-embedding changes the fingerprint and the next request recomputes it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import OnnxSearchError
from ..store.stores import Stores

METHODS = ("pca", "tsne")
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


def fingerprint(stores: Stores, model: str) -> str:
    """Hash of the collection's content: sorted (id, content hash) pairs and the model file's sha256."""
    done = stores.catalog.done(model)
    info = stores.catalog.models().get(model, {})
    h = hashlib.blake2b(digest_size=16)
    h.update(str(info.get("sha256", "")).encode())
    for i in sorted(done):
        h.update(f"{i}:{done[i]};".encode())
    return h.hexdigest()


def project(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(n, d) unit vectors -> (n, 2) in 0..1; PCA is exact and fast, t-SNE shows neighbourhoods (slower)."""
    from sklearn.decomposition import PCA

    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 3:
        xy = np.zeros((n, 2)) if n == 1 else np.array([[0.0, 0.0], [1.0, 1.0]])
    elif method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    else:
        from sklearn.manifold import TSNE

        x = vectors if vectors.shape[1] <= 50 else PCA(n_components=50, random_state=seed).fit_transform(vectors)
        if n > TSNE_MAX_POINTS:
            raise OnnxSearchError(
                f"t-SNE of {n} points would take many minutes here (limit {TSNE_MAX_POINTS}): use PCA"
            )
        tsne = TSNE(2, perplexity=float(min(30.0, (n - 1) / 3)), init="pca", random_state=seed, max_iter=500)
        xy = tsne.fit_transform(x)
    xy = np.asarray(xy, np.float64)
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    return ((xy - lo) / np.where(span > 0, span, 1.0)).astype(np.float32)


class MapCache:
    """Projections per (model, method): in memory, and on disk as ``folder/<collection>.<method>.npz``."""

    def __init__(self, stores: Stores, folder: Path) -> None:
        self.stores = stores
        self.folder = Path(folder)
        self._mem: dict[tuple[str, str], Projection] = {}
        self._lock = threading.Lock()

    def get(self, model: str, method: str = "pca") -> Projection:
        if method not in METHODS:
            raise OnnxSearchError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
        fp = fingerprint(self.stores, model)
        with self._lock:  # one computation per map at a time; a second request waits for the first
            hit = self._mem.get((model, method))
            if hit and hit.fingerprint == fp:
                return replace(hit, seconds=0.0)
            path = self.folder / f"{self.stores.collection(model)}.{method}.npz"
            proj = self._read(path, fp, method) or self._compute(model, method, fp, path)
            self._mem[(model, method)] = proj
            return proj

    def _read(self, path: Path, fp: str, method: str) -> Projection | None:
        try:
            with np.load(path) as z:
                if str(z["fingerprint"]) != fp:
                    return None
                return Projection([int(i) for i in z["ids"]], z["xy"], method, fp, 0.0)
        except (OSError, KeyError, ValueError):
            return None

    def _compute(self, model: str, method: str, fp: str, path: Path) -> Projection:
        t = time.perf_counter()
        ids = sorted(self.stores.catalog.done(model))
        found = self.stores.fetch_present(model, ids)
        ids = [i for i in ids if i in found]
        vecs = np.stack([found[i] for i in ids]) if ids else np.zeros((0, 1), np.float32)
        xy = project(vecs, method)
        proj = Projection(ids, xy, method, fp, time.perf_counter() - t)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, ids=np.asarray(ids, np.int64), xy=xy, fingerprint=np.asarray(fp))
        tmp.replace(path)
        return proj
