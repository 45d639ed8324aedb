"""The explorer's map projections timed on the same collection (projections.json): PCA, t-SNE and UMAP.

Each method runs in its own fresh child process, twice: the first call includes what a freshly started server pays
once (imports, and for UMAP numba's JIT compilation), the second is what every later map of that method costs.
The collection is seeded clustered unit vectors (a mixture of Gaussians, so neighbourhoods exist), the size and
dimension of a real one; PCA and t-SNE are exactly what the explorer runs (``serve.maps.project``), UMAP
(umap-learn, not offered by the explorer) the same way on the same first 50 principal components.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..provenance import library_versions, machine
from .results import default_out, write_result


def clustered(n: int, dim: int, clusters: int = 20, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` seeded centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    v = centres[rng.integers(clusters, size=n)] + 0.6 * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def umap_project(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP as the explorer would run it (umap-learn on the first 50 principal components, seeded), 0..1."""
    import umap
    from sklearn.decomposition import PCA

    n = len(vectors)
    x = vectors if vectors.shape[1] <= 50 else PCA(n_components=50, random_state=seed).fit_transform(vectors)
    xy = umap.UMAP(n_components=2, n_neighbors=max(2, min(15, n - 1)), random_state=seed).fit_transform(x)
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    return ((xy - lo) / np.where(span > 0, span, 1.0)).astype(np.float32)


def time_in_child(method: str, n: int, dim: int, numba_cache: Path | None = None) -> dict:
    """Seconds of the first and the second ``project`` call in a fresh interpreter (and whether it worked);
    ``numba_cache``: numba's on-disk cache folder (empty: UMAP compiles everything, as on a first install)."""
    code = (
        "import json, sys, time\n"
        "from onnx_search.bench.projections import clustered\n"
        "t0 = time.perf_counter()\n"
        "from onnx_search.serve.maps import project\n"
        "from onnx_search.bench.projections import umap_project\n"
        "if sys.argv[1] == 'umap':\n"
        "    import faulthandler; faulthandler.enable()\n"
        "    import umap\n"
        "    project = lambda v, m: umap_project(v)\n"
        "imported = time.perf_counter() - t0\n"
        "v = clustered(int(sys.argv[2]), int(sys.argv[3]))\n"
        "out = {'import_s': round(imported, 2)}\n"
        "for name in ('first_s', 'second_s'):\n"
        "    t = time.perf_counter(); xy = project(v, sys.argv[1]); out[name] = round(time.perf_counter() - t, 2)\n"
        "out['points'] = len(xy)\n"
        "print(json.dumps(out))\n"
    )
    env = os.environ | ({"NUMBA_CACHE_DIR": str(numba_cache)} if numba_cache else {})
    r = subprocess.run([sys.executable, "-c", code, method, str(n), str(dim)], capture_output=True, text=True, env=env)
    if r.returncode != 0:  # the last line that is not a library's log line (TensorFlow's start with I0000/W0000)
        lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith(("I0000", "W0000", "WARNING"))]
        how = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit {r.returncode}"
        return {"error": f"{how}: {lines[-1][:300] if lines else ''}", "exit": r.returncode}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_projections(sizes=(1000,), dim: int = 512, methods=("pca", "tsne", "umap")) -> dict:
    out: dict = {"dim": dim, "sizes": {}}
    for n in sizes:
        row = {}
        for m in methods:
            if m != "umap":
                row[m] = time_in_child(m, n, dim)
                continue
            with tempfile.TemporaryDirectory() as cache:  # numba's cache empty, then filled by the first process
                row["umap_numba_cache_empty"] = time_in_child(m, n, dim, Path(cache))
                row["umap_numba_cache_filled"] = time_in_child(m, n, dim, Path(cache))
        out["sizes"][str(n)] = row
        print(f"projections n={n}: {out['sizes'][str(n)]}", flush=True)
    out["what"] = (
        "serve.maps.project per method in a fresh process: first call (a new server's first map, UMAP's numba "
        "compilation included) and second call; seeded clustered unit vectors"
    )
    out |= {"machine": machine(), "versions": library_versions()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--methods", default="pca,tsne,umap")
    ap.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    args = ap.parse_args(argv)
    res = bench_projections([int(s) for s in args.sizes.split(",")], args.dim, tuple(args.methods.split(",")))
    write_result(args.out, "projections.json", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
