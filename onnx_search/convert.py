"""Keras application -> ONNX through tf2onnx, with a parity gate and the recipe in the file's metadata."""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .metadata import METADATA_KEY, ModelFileError
from .preprocess import normalize
from .weights import WeightsChoice, resolve_weights
from .zoo import ModelSpec, get_spec

log = logging.getLogger(__name__)

OPSET = 17
# L2-normalised ONNX and Keras vectors may differ by at most this much in any component.
# Seen on CPU: 1e-7..4e-7; the gate leaves room for other CPUs and GPU kernels, and still
# catches a wrong graph, which differs by 1e-2 or more.
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 4


class ParityError(RuntimeError):
    """ONNX output disagrees with Keras beyond the tolerance."""


@dataclass
class ConvertResult:
    name: str
    path: Path
    skipped: bool  # True when the file was already up to date
    metadata: dict
    seconds: float


def parity_images(spec: ModelSpec, n: int = PARITY_BATCH, seed: int = 1234) -> np.ndarray:
    """A fixed uint8 batch: smooth gradients plus seeded noise, so every layer sees varied input."""
    rng = np.random.default_rng(seed)
    s = spec.input_size
    yy, xx = np.mgrid[0:s, 0:s] / max(s - 1, 1)
    out = np.empty((n, s, s, 3), dtype=np.uint8)
    for i in range(n):
        base = np.stack([xx * (i + 1) % 1, yy, (xx + yy) / 2], axis=-1) * 255
        noise = rng.normal(0, 30, base.shape)
        out[i] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def build_keras_model(spec: ModelSpec, choice: WeightsChoice):
    """Instantiate the Keras application headless, with global pooling, at the spec's input size."""
    import keras

    if choice.seed is not None:
        keras.utils.set_random_seed(choice.seed)
    module, _, attr = spec.builder.rpartition(".")
    builder = getattr(importlib.import_module(module), attr)
    return builder(
        include_top=False,
        weights=choice.keras_arg,
        pooling=spec.pooling,
        input_shape=(spec.input_size, spec.input_size, 3),
    )


def keras_forward(model):
    """The fair Keras baseline: ``model(x, training=False)`` compiled once by tf.function."""
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _versions() -> dict:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {
        "onnx_search": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def check_parity(forward, onnx_path: Path, spec: ModelSpec, tolerance: float = PARITY_TOLERANCE) -> dict:
    """Compare Keras and ONNX on the fixed batch; raise ParityError beyond ``tolerance``."""
    import onnxruntime as ort

    x = normalize(parity_images(spec), spec.preprocess)
    keras_out = l2_normalize(forward(x).numpy())
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = l2_normalize(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    if keras_out.shape != onnx_out.shape:
        raise ParityError(f"{spec.name}: ONNX output shape {onnx_out.shape} != Keras {keras_out.shape}")
    diff = float(np.abs(keras_out - onnx_out).max())
    cos_min = float((keras_out * onnx_out).sum(axis=1).min())
    figures = {"max_abs_diff": diff, "min_cosine": cos_min, "tolerance": tolerance, "batch": len(x)}
    if not diff <= tolerance:
        raise ParityError(
            f"{spec.name}: ONNX and Keras disagree, max abs diff {diff:.3g} > tolerance "
            f"{tolerance:g} (min cosine {cos_min:.6f}); the .onnx file was not kept"
        )
    return figures


def write_metadata(path: Path, meta: dict) -> None:
    """Store ``meta`` as JSON under METADATA_KEY in the ONNX file, replacing any earlier entry."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    model.producer_name = "onnx-search"
    tmp = path.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def read_metadata_file(path: Path) -> dict | None:
    """Our metadata from an ONNX file on disk, or None when the file has none."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None


def recipe_metadata(spec: ModelSpec, name: str, source: str, weights: str) -> dict:
    """The recipe part of the metadata: what the runner needs to feed the model correctly."""
    return {
        "name": name,
        "source": source,
        "weights": weights,
        "input_size": spec.input_size,
        "preprocess": spec.preprocess,
        "resize": spec.resize,
        "interpolation": spec.interpolation,
        "pooling": spec.pooling,
        "dim": spec.dim,
        "layout": "NHWC",
        "normalized_output": False,
    }


def _request(spec: ModelSpec, choice: WeightsChoice) -> dict:
    return {"spec": spec.to_dict(), "weights": choice.label, "opset": OPSET}


def up_to_date(path: Path, request: dict) -> dict | None:
    """The existing file's metadata if it was made from the same request, else None."""
    if not path.is_file():
        return None
    try:
        meta = read_metadata_file(path)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not up to date
        return None
    return meta if meta and meta.get("request") == request else None


def convert_model(
    name: str,
    out_dir: str | Path = "models",
    weights: str = "random",
    seed: int = 0,
    force: bool = False,
    tolerance: float = PARITY_TOLERANCE,
) -> ConvertResult:
    """Convert one registry model to ``out_dir/<name>.onnx`` unless an identical one exists."""
    spec = get_spec(name)
    choice = resolve_weights(spec, weights, seed)
    out = Path(out_dir) / f"{spec.name}.onnx"
    request = _request(spec, choice)
    if not force and (meta := up_to_date(out, request)):
        log.info("%s is up to date (%s), skipping", out, choice.label)
        return ConvertResult(spec.name, out, True, meta, 0.0)

    import tensorflow as tf
    import tf2onnx

    t0 = time.perf_counter()
    model = build_keras_model(spec, choice)
    forward = keras_forward(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    signature = [tf.TensorSpec((None, spec.input_size, spec.input_size, 3), tf.float32, name="input")]
    tf2onnx.convert.from_function(forward, input_signature=signature, opset=OPSET, output_path=str(tmp))
    try:
        parity = check_parity(forward, tmp, spec, tolerance)
    except ParityError:
        tmp.unlink(missing_ok=True)
        raise
    meta = recipe_metadata(spec, spec.name, spec.builder, choice.label) | {
        "parity": parity,
        "versions": _versions(),
        "request": request,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_metadata(tmp, meta)
    os.replace(tmp, out)
    return ConvertResult(spec.name, out, False, meta, time.perf_counter() - t0)


def annotate(path: str | Path, like: str, weights: str = "unknown") -> dict:
    """Attach a registry model's recipe to a foreign .onnx file so the runner can use it."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such file")
    spec = get_spec(like)
    meta = recipe_metadata(spec, p.stem, f"annotated like {spec.name}", weights) | {
        "parity": None,
        "versions": {"onnx_search": __version__},
    }
    write_metadata(p, meta)
    return meta
