"""ORT vs Keras img/s per batch size (keras.json): the same converted file against the Keras model it came
from, measured interleaved in one process after warm-up; each figure is the median of several passes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.convert_keras import build_keras_model, keras_forward
from ..models.parity import parity_images
from ..models.recipe import normalize
from ..models.session import ModelSession, SessionConfig
from ..models.weights import WeightsChoice
from ..models.zoo import get_spec
from ..provenance import library_versions, machine
from .embed import rate


def _keras_for(model: ModelSession):
    """The Keras model the ONNX file was converted from (same weights, per its metadata)."""
    spec = get_spec(model.meta["name"])
    return keras_forward(build_keras_model(spec, WeightsChoice.from_label(model.meta["weights"])))


def bench_keras(models_dir: Path, names: list[str], batches=(1, 8, 32), reps: int = 3) -> dict:
    """ORT vs Keras img/s per batch size (keras.json)."""
    out: dict = {
        "machine": machine(),
        "versions": library_versions(),
        "batch_sizes": list(batches),
        "reps": reps,
        "method": "median of interleaved passes after warm-up; ratio = ORT / Keras",
    }
    for name in names:
        out[name] = _bench_model(models_dir, name, batches, reps)
    return out


def _bench_model(models_dir: Path, name: str, batches, reps: int) -> dict:
    """One model: ORT vs Keras per batch size."""
    ort_model = ModelSession(models_dir / f"{name}.onnx", SessionConfig(["cpu"]))
    keras = _keras_for(ort_model)
    spec = get_spec(name)
    x32 = normalize(parity_images(spec, n=max(batches), seed=5), spec.preprocess)
    raw: dict = {"ort": {b: [] for b in batches}, "keras": {b: [] for b in batches}}
    for b in batches:  # warm-up: graph tracing, allocations
        ort_model.embed(x32[:b])
        keras(x32[:b]).numpy()
    for _ in range(reps):
        for b in batches:
            iters = max(1, max(batches) // b)  # the same number of images at every batch size
            x = x32[:b]
            raw["ort"][b].append(rate(lambda x=x, n=iters: [ort_model.embed(x) for _ in range(n)], b * iters))
            raw["keras"][b].append(rate(lambda x=x, n=iters: [keras(x).numpy() for _ in range(n)], b * iters))
    med = {e: {b: float(np.median(v)) for b, v in d.items()} for e, d in raw.items()}
    res = {
        "img_per_s": {e: {str(b): round(v, 2) for b, v in d.items()} for e, d in med.items()},
        "ratio_by_batch": {str(b): round(med["ort"][b] / med["keras"][b], 3) for b in batches},
        "raw_img_per_s": {e: {str(b): [round(v, 2) for v in vs] for b, vs in d.items()} for e, d in raw.items()},
        "providers": ort_model.providers_active,
    }
    res["ort_over_keras"] = res["ratio_by_batch"][str(max(batches))]
    print(f"{name}: ORT/Keras {res['ratio_by_batch']}", flush=True)
    return res
