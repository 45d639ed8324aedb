"""A bare .onnx file of the user's: no conversion, only the checks and the recipe the file lacked.

``build`` opens it in onnxruntime and checks its input against the recipe, ``describe`` checks that it gives one
vector per image, ``export`` copies it; the flow then writes the recipe into the copy (the user's file is never
modified).
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np

from ..errors import ModelFileError
from .parity import parity_images
from .recipe import prepare_batch
from .user import vector_dim
from .weights import WeightsChoice
from .zoo import ModelSpec

LABEL = "the given ONNX file"


def build(spec: ModelSpec, choice: WeightsChoice):
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(spec.builder, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT's own error types
        raise ModelFileError(f"{spec.name}: onnxruntime cannot load {spec.builder}: {str(exc)[:200]}") from None
    shape = sess.get_inputs()[0].shape
    s = spec.input_size
    want = (3, s, s) if spec.layout == "NCHW" else (s, s, 3)
    if len(shape) != 4 or any(isinstance(a, int) and a != b for a, b in zip(shape[1:], want, strict=True)):
        raise ModelFileError(
            f"{spec.name}: the graph's input is {shape} but the recipe says {spec.layout} {s}px "
            f"(batch, {', '.join(map(str, want))}); fix recipe.input_size / recipe.layout"
        )
    return sess


def describe(model, spec: ModelSpec) -> ModelSpec:
    out = forward(model, prepare_batch(parity_images(spec, 2), spec.recipe))
    return replace(spec, dim=vector_dim(out.shape, spec.name, "the graph's output"))


def forward(model, x: np.ndarray) -> np.ndarray:
    try:
        return model.run(None, {model.get_inputs()[0].name: x})[0]
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"the graph cannot take the recipe's input: {str(exc)[:200]}") from None


def export(model, spec: ModelSpec, path, opset: int) -> None:
    shutil.copyfile(spec.builder, path)
