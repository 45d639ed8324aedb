"""Keras application -> ONNX through tf2onnx, with the parity gate and the recipe in the file's metadata."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ModelFileError, ParityError
from ..provenance import library_versions
from .parity import PARITY_TOLERANCE, check_parity, parity_images
from .recipe import normalize, up_to_date, write_metadata
from .weights import WeightsChoice, resolve_weights
from .zoo import ModelSpec, get_spec

log = logging.getLogger(__name__)

OPSET = 17


@dataclass
class ConvertResult:
    name: str
    path: Path
    skipped: bool  # True when the file was already up to date
    metadata: dict
    seconds: float


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


def converter_fingerprint() -> str:
    """A hash of this converter's own code: a change to it makes earlier files out of date."""
    import hashlib

    return hashlib.sha256(inspect.getsource(inspect.getmodule(converter_fingerprint)).encode()).hexdigest()[:12]


def _request(spec: ModelSpec, choice: WeightsChoice) -> dict:
    return {"spec": spec.to_dict(), "weights": choice.label, "opset": OPSET, "converter": converter_fingerprint()}


def _export(forward, spec: ModelSpec, path: Path) -> None:
    """tf2onnx with an explicit input signature (Keras 3 needs one) and a dynamic batch dimension.

    Variables that tf2onnx would leave as graph inputs (EfficientNet's Normalization mean/variance) are
    frozen into constants by converting a concrete function whose captures are baked in.
    """
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    signature = [tf.TensorSpec((None, spec.input_size, spec.input_size, 3), tf.float32, name="input")]
    frozen = convert_variables_to_constants_v2(forward.get_concrete_function(*signature))
    tf2onnx.convert.from_function(
        tf.function(lambda x: frozen(x)), input_signature=signature, opset=OPSET, output_path=str(path)
    )


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
    t0 = time.perf_counter()
    forward = keras_forward(build_keras_model(spec, choice))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    _export(forward, spec, tmp)
    x = normalize(parity_images(spec), spec.preprocess)
    try:
        parity = check_parity(lambda b: forward(b).numpy(), tmp, spec.name, x, tolerance)
    except ParityError:
        tmp.unlink(missing_ok=True)
        raise
    meta = spec.recipe_metadata(spec.name, spec.builder, choice.label) | {
        "parity": parity,
        "versions": library_versions(),
        "request": request,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_metadata(tmp, meta)
    os.replace(tmp, out)
    return ConvertResult(spec.name, out, False, meta, time.perf_counter() - t0)


def annotate(path: str | Path, like: str, weights: str = "unknown") -> dict:
    """Attach a registry model's recipe to a foreign .onnx file so a session can use it."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such file")
    spec = get_spec(like)
    meta = spec.recipe_metadata(p.stem, f"annotated like {spec.name}", weights) | {
        "parity": None,
        "versions": {"onnx_search": __version__},
    }
    write_metadata(p, meta)
    return meta
