"""The user's own Keras model: a Keras 3 ``.keras`` or legacy ``.h5`` file, its output or a named layer's as the
vector, the recipe from the user; exported by tf2onnx like the registry's Keras models."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError, ModelFileError
from .convert_keras import export as keras_export
from .convert_keras import forward, keras_forward  # the same forward pass as the registry's Keras models
from .frameworks import tensorflow_safely
from .parity import parity_images
from .recipe import prepare_batch
from .user import vector_dim
from .weights import WeightsChoice
from .zoo import ModelSpec

LABEL = "Keras"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def build(spec: ModelSpec, choice: WeightsChoice):
    """Load the file (no compile), cut it at the named layer, check its input against the recipe."""
    _check_container(spec)
    tensorflow_safely()
    import keras

    try:
        model = keras.models.load_model(spec.builder, compile=False)
    except Exception as exc:  # noqa: BLE001 - a file Keras cannot read
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{spec.name}: Keras cannot load {spec.builder}: {why}") from None
    if spec.pooling.startswith("layer:"):
        layer = spec.pooling[6:]
        try:
            model = keras.Model(model.inputs, model.get_layer(layer).output)
        except ValueError:
            names = ", ".join(lay.name for lay in model.layers[:12])
            raise ConfigError(f"{spec.name}: no layer {layer!r} in the model; its layers include {names}") from None
    shape = tuple(model.inputs[0].shape)
    want = (spec.input_size, spec.input_size, 3) if spec.layout == "NHWC" else (3, spec.input_size, spec.input_size)
    if len(shape) != 4 or any(a is not None and a != b for a, b in zip(shape[1:], want, strict=True)):
        raise ModelFileError(
            f"{spec.name}: the model's input is {shape} but the recipe says {spec.layout} {spec.input_size}px "
            f"(batch, {', '.join(map(str, want))}); fix recipe.input_size / recipe.layout"
        )
    return keras_forward(model)


def _check_container(spec: ModelSpec) -> None:
    """A .keras file is a zip archive and a .h5 an HDF5 file; anything else is refused before Keras reads it
    (Keras says "File not found" of a corrupt one)."""
    path = Path(spec.builder)
    with open(path, "rb") as f:
        head = f.read(8)
    ok = zipfile.is_zipfile(path) if path.suffix.lower() == ".keras" else head == HDF5_SIGNATURE
    if not ok:
        kind = "a zip archive" if path.suffix.lower() == ".keras" else "an HDF5 file"
        raise ModelFileError(
            f"{spec.name}: {path} is not a Keras model file (not {kind}: corrupt or truncated); save the model "
            "again with model.save('NAME.keras')"
        )


def describe(model, spec: ModelSpec) -> ModelSpec:
    """The vector's dimension, from one forward pass; an output that is no vector per image is an error."""
    if spec.layout != "NHWC":
        raise ConfigError(f"{spec.name}: Keras models are exported NHWC; set recipe.layout NHWC")
    out = forward(model, prepare_batch(parity_images(spec, 2), spec.recipe))
    where = f"layer {spec.pooling[6:]!r}" if spec.pooling.startswith("layer:") else "the model's output"
    return replace(spec, dim=vector_dim(out.shape, spec.name, where))


def export(model, spec: ModelSpec, path, opset: int) -> None:
    """tf2onnx as for the registry's Keras models; a model it cannot convert is one line naming the model."""
    try:
        keras_export(model, spec, path, opset)
    except Exception as exc:  # noqa: BLE001 - tf2onnx's own errors about the user's layers
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(
            f"{spec.name}: tf2onnx cannot convert {spec.builder}: {type(exc).__name__}: {why}; replace the layer it "
            "names with standard Keras layers, or export it to ONNX yourself and use --source onnx"
        ) from None
