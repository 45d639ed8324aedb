"""How long the explorer's maps take (maps.json): PCA and t-SNE of n vectors, as ``serve.maps.project``.

The vectors are a seeded mixture of 10 Gaussian clusters on the unit sphere in 1,280 dimensions (EfficientNet-Lite0's
vector size); t-SNE's time depends on n far more than on where the points lie. The README's "t-SNE took 59 s for
1,000" is this figure on the machine that measured it.

    python -m onnx_search.bench.maps [--sizes 1000,2000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..provenance import library_versions, machine
from ..serve.maps import project
from .results import default_out, write_result


def clustered_unit_vectors(n: int, dim: int = 1280, clusters: int = 10, spread: float = 0.5, seed: int = 0):
    """``n`` unit vectors around ``clusters`` random centres (seeded)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    v = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def time_maps(sizes: list[int], methods=("pca", "tsne"), dim: int = 1280) -> dict:
    """Seconds of ``project(vectors, method)`` per method and size."""
    out: dict = {m: {} for m in methods}
    for n in sizes:
        x = clustered_unit_vectors(n, dim)
        for m in methods:
            t = time.perf_counter()
            xy = project(x, m, seed=0)
            out[m][str(n)] = round(time.perf_counter() - t, 2)
            assert xy.shape == (n, 2)
            print(f"{m} of {n:,} points: {out[m][str(n)]} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,2000", help="comma list of point counts (default: 1000,2000)")
    p.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    result = {"seconds": time_maps(sizes), "dim": 1280,
              "vectors": "seeded mixture of 10 Gaussian clusters (spread 0.5) on the unit sphere",
              "method": "onnx_search.serve.maps.project (PCA; t-SNE: scikit-learn on the first 50 principal "
                        "components, perplexity 30, init pca, 500 iterations)",
              "machine": machine(), "versions": library_versions()}  # fmt: skip
    print(f"wrote {write_result(a.out, 'maps.json', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
