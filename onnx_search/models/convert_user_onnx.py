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
        raise ModelFileError(
            f"{spec.name}: onnxruntime cannot load {spec.builder}: {_first(exc)}; export the model again"
        ) from None
    shape = sess.get_inputs()[0].shape
    if shape and isinstance(shape[0], int):
        raise ModelFileError(
            f"{spec.name}: {spec.builder} has a fixed batch of {shape[0]} (input shape {shape}); export it with a "
            "dynamic batch axis: torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})"
        )
    s = spec.input_size
    want = (3, s, s) if spec.layout == "NCHW" else (s, s, 3)
    if len(shape) != 4 or any(isinstance(a, int) and a != b for a, b in zip(shape[1:], want, strict=True)):
        raise ModelFileError(
            f"{spec.name}: the graph's input is {shape} but the recipe says {spec.layout} {s}px "
            f"(batch, {', '.join(map(str, want))}); fix recipe.input_size / recipe.layout"
        )
    return sess


def describe(model, spec: ModelSpec) -> ModelSpec:
    try:
        out = forward(model, prepare_batch(parity_images(spec, 2), spec.recipe))
    except ModelFileError as exc:
        raise ModelFileError(f"{spec.name}: {spec.builder}: {exc}") from None
    return replace(spec, dim=vector_dim(out.shape, spec.name, "the graph's output"))


def forward(model, x: np.ndarray) -> np.ndarray:
    try:
        return model.run(None, {model.get_inputs()[0].name: x})[0]
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(
            f"the graph cannot take the recipe's input ({_first(exc)}); fix the recipe or export the model again"
        ) from None


def _first(exc: BaseException) -> str:
    """onnxruntime's messages run over several lines: the first one, shortened."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def export(model, spec: ModelSpec, path, opset: int) -> None:
    shutil.copyfile(spec.builder, path)
