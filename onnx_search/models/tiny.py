"""A tiny ONNX model (per-channel pixel means, 3-d): for measuring the pipeline and stores without a network's
cost, and as a model no converter of ours made."""

from __future__ import annotations

from pathlib import Path


def write_pixel_mean_model(path: Path, size: int = 224, like: str | None = None) -> Path:
    """Write the graph (NHWC input of ``size``); with ``like``, attach that registry model's recipe."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", size, size, 3])
    out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    node = helper.make_node("ReduceMean", ["pixels", "axes"], ["feat"], keepdims=0)
    graph = helper.make_graph([node], "pixel_mean", [inp], [out], initializer=[axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    if like:
        from .convert import annotate

        annotate(path, like, weights="none (pixel means)")
    return path
