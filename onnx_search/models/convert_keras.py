"""Keras backend of the converter: build the application, run it, export it with tf2onnx."""

from __future__ import annotations

import gc
import importlib

import numpy as np

from .frameworks import tensorflow_safely
from .weights import WeightsChoice
from .zoo import ModelSpec

LABEL = "Keras"
# The conversion child's environment for this backend. tf2onnx rewrites every node's protobuf after each optimiser
# pass; with protobuf's default (upb) backend the replaced messages stay in their arena until the whole graph goes,
# so each pass keeps one more copy of the weights (ResNet50: 24 passes x 94 MB). Protobuf's pure Python backend
# frees them (`make bench-convert` converts ResNet50 and VGG16 both ways: convert_memory.json).
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
    """tf2onnx on the model's frozen graph, with an explicit input signature (Keras 3 needs one), a dynamic batch
    dimension and the input named ``input``.

    Variables that tf2onnx would leave as graph inputs (EfficientNet's Normalization mean/variance) are frozen into
    constants first. tf2onnx is given the frozen GraphDef itself: handed a function instead, it traces and freezes
    it again and keeps both copies: more memory and time for the same ONNX graph (each registry model's peak is in
    convert_memory.json; ``tests/test_convert.py::test_keras_export_converts_the_frozen_graph_once``).
    """
    tf = tensorflow_safely()
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    signature = [tf.TensorSpec((None, spec.input_size, spec.input_size, 3), tf.float32, name="input")]
    frozen = convert_variables_to_constants_v2(model.get_concrete_function(*signature))
    graph_def = frozen.graph.as_graph_def()
    inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    del frozen  # the GraphDef holds the constants now: the traced function's copy goes before tf2onnx starts
    gc.collect()
    tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=inputs,
        output_names=outputs,
        opset=opset,
        tensors_to_rename={name: name.split(":")[0] for name in inputs},  # input:0 -> input, as users name it
        output_path=str(path),
    )
