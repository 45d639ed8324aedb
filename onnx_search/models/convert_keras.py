"""Keras backend of the converter: build the application, run it, export it with tf2onnx."""

from __future__ import annotations

import importlib

import numpy as np

from .frameworks import tensorflow_safely
from .weights import WeightsChoice
from .zoo import ModelSpec

LABEL = "Keras"
# The conversion child's environment for this backend. tf2onnx rewrites every node's protobuf after each optimiser
# pass; with protobuf's default (upb) backend the replaced messages stay in their arena until the whole graph goes,
# so each pass keeps one more copy of the weights (ResNet50: 24 passes x 94 MB, a 7.4 GB peak). Protobuf's pure
# Python backend frees them: the peak drops to 3.0 GB, conversion time unchanged (bench/convert_memory.json).
CHILD_ENV = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}


def build_keras_model(spec: ModelSpec, choice: WeightsChoice):
    """Instantiate the Keras application headless, with global pooling, at the spec's input size."""
    tensorflow_safely()
    import keras

    if choice.seed is not None:
        keras.utils.set_random_seed(choice.seed)
    module, _, attr = spec.builder.rpartition(".")
    builder = getattr(importlib.import_module(module), attr)
    return builder(
        include_top=False,
        weights=choice.pretrained,
        pooling=spec.pooling,
        input_shape=(spec.input_size, spec.input_size, 3),
    )


def keras_forward(model):
    """The fair Keras baseline: ``model(x, training=False)`` compiled once by tf.function."""
    tf = tensorflow_safely()

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def build(spec: ModelSpec, choice: WeightsChoice):
    return keras_forward(build_keras_model(spec, choice))


def forward(model, x: np.ndarray) -> np.ndarray:
    """Keras' own forward pass on a float32 NHWC batch (the reference the parity gate compares with)."""
    return model(x).numpy()


def export(model, spec: ModelSpec, path, opset: int) -> None:
    """tf2onnx with an explicit input signature (Keras 3 needs one) and a dynamic batch dimension.

    Variables that tf2onnx would leave as graph inputs (EfficientNet's Normalization mean/variance) are
    frozen into constants first.
    """
    tf = tensorflow_safely()
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    signature = [tf.TensorSpec((None, spec.input_size, spec.input_size, 3), tf.float32, name="input")]
    frozen = convert_variables_to_constants_v2(model.get_concrete_function(*signature))
    tf2onnx.convert.from_function(
        tf.function(lambda x: frozen(x)), input_signature=signature, opset=opset, output_path=str(path)
    )
