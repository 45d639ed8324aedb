"""ORT vs Keras img/s per batch size, and end-to-end embedding vs model-only (bench/embed.json).

Every ratio compares variants measured in the same process, alternating, after warm-up, so the machine's
slow swings hit both sides alike; each figure is the median of several passes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..embed.pipeline import Pipeline
from ..embed.sinks import MemorySink, drain
from ..models.convert_keras import build_keras_model, keras_forward
from ..models.parity import parity_images
from ..models.recipe import normalize
from ..models.session import ModelSession, SessionConfig
from ..models.weights import WeightsChoice
from ..models.zoo import get_spec
from ..provenance import library_versions, machine


def rate(fn, images: int) -> float:
    t = time.perf_counter()
    fn()
    return images / (time.perf_counter() - t)


def _keras_for(model: ModelSession):
    """The Keras model the ONNX file was converted from (same weights, per its metadata)."""
    spec = get_spec(model.meta["name"])
    return keras_forward(build_keras_model(spec, WeightsChoice.from_label(model.meta["weights"])))


def photo_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` photo-sized JPEGs (640x480, smooth content plus noise), generated, not downloaded."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(n):
        p = root / f"photo_{i:04d}.jpg"
        if p.exists():
            continue
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], -1) * 100 + 128
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(p, quality=88)
    return root


def bench_embed(
    models_dir: Path, names: list[str], batches=(1, 8, 32), reps: int = 3, photos: int = 96, work: Path | None = None
) -> dict:
    """ORT vs Keras img/s per batch size, and end-to-end ``embed`` vs model-only throughput."""
    out: dict = {
        "machine": machine(),
        "versions": library_versions(),
        "batch_sizes": list(batches),
        "reps": reps,
        "method": "median of interleaved passes after warm-up; ratio = ORT / Keras",
    }
    work = work or Path(tempfile.mkdtemp())
    folder = photo_folder(work / "photos", photos)
    files = sorted(folder.glob("*.jpg"))
    for name in names:
        out[name] = _bench_model(models_dir, name, batches, reps, files)
    return out


def _bench_model(models_dir: Path, name: str, batches, reps: int, files: list[Path]) -> dict:
    """One model: ORT vs Keras per batch size, then end-to-end vs model-only."""
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
    # end to end (read, decode, resize, normalise, infer) vs model-only, interleaved
    bs = max(batches)
    emb = Pipeline({name: ort_model}, batch_size=bs, progress=False)
    tasks = [(p, frozenset([name])) for p in files]
    xs = normalize(parity_images(spec, n=bs, seed=6), spec.preprocess)
    e2e, model_only = [], []
    n_batches = -(-len(files) // bs)
    list(emb.run(tasks[:bs]))  # warm-up
    for _ in range(reps):
        e2e.append(rate(lambda: drain(emb, files, MemorySink({name: ort_model.dim})), len(files)))
        model_only.append(rate(lambda: [ort_model.embed(xs) for _ in range(n_batches)], n_batches * bs))
    res["end_to_end_img_per_s"] = round(float(np.median(e2e)), 2)
    res["model_only_img_per_s"] = round(float(np.median(model_only)), 2)
    res["end_to_end_fraction"] = round(float(np.median(e2e)) / float(np.median(model_only)), 3)
    res["end_to_end"] = {
        "photos": len(files),
        "size": "640x480 JPEG",
        "batch_size": bs,
        "decode_workers": emb.workers,
        "raw_e2e": [round(v, 2) for v in e2e],
        "raw_model_only": [round(v, 2) for v in model_only],
    }
    print(
        f"{name}: ORT/Keras {res['ratio_by_batch']}, end-to-end {res['end_to_end_fraction']:.0%} of model-only "
        f"({res['end_to_end_img_per_s']} vs {res['model_only_img_per_s']} img/s)",
        flush=True,
    )
    return res
