"""INT8 that suits the family: a transformer (MatMul-heavy graph) gets the measured method with LayerNorm and
Softmax left in float, a CNN static QDQ as before; each variant agrees with its FP32 parent."""

import numpy as np
import onnx
import pytest

from onnx_search.models.convert import convert_model
from onnx_search.models.recipe import prepare_batch
from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.variants import FLOAT_OPS, INT8_MATMUL_METHOD, graph_kind, make_variant
from onnx_search.models.zoo import get_spec
from tests.helpers import photo

QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
             "DynamicQuantizeMatMul", "QLinearMatMul", "ConvInteger"}  # fmt: skip


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """timm's tiny test ViT (random weights), its INT8 variant, and images neither step saw."""
    root = tmp_path_factory.mktemp("vit8")
    calib = []
    for i in range(8):
        photo(i, (96, 96)).save(root / f"c{i}.png")
        calib.append(root / f"c{i}.png")
    parent = convert_model("timm/test_vit", root / "m", weights="random", seed=3).path
    variant = make_variant("timm/test_vit", "int8", root / "m", calibration=calib)
    return parent, variant


def _inputs(path, n: int = 6, seed: int = 50) -> np.ndarray:
    s = ModelSession(path, SessionConfig(["cpu"]))
    px = np.stack([np.asarray(photo(seed + i, (s.recipe.input_size,) * 2)) for i in range(n)])
    return prepare_batch(px, s.recipe)


def test_transformer_int8_keeps_layernorm_and_softmax_float_and_agrees_with_its_parent(vit):
    parent, v = vit
    assert graph_kind(parent) == "matmul" and v.metadata["made_by"]["graph"] == "matmul"
    assert INT8_MATMUL_METHOD in v.metadata["made_by"]["method"]
    graph = onnx.load(str(v.path)).graph
    made = {o: n.op_type for n in graph.node for o in n.output}
    ops = [n.op_type for n in graph.node]
    assert QUANT_OPS & set(ops), "no quantised op in the INT8 graph"
    for op in FLOAT_OPS:  # present, and fed float tensors (no dequantised or integer input)
        nodes = [n for n in graph.node if n.op_type == op]
        assert nodes, op
        assert all(made.get(i) not in QUANT_OPS for n in nodes for i in n.input), op
    assert not {"QLinearSoftmax", "QLinearLayerNormalization"} & set(ops)
    x = _inputs(parent)
    a = ModelSession(parent, SessionConfig(["cpu"])).embed(x)
    b = ModelSession(v.path, SessionConfig(["cpu"])).embed(x)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.995, cos  # static QDQ here: 0.94; with LayerNorm/Softmax quantised too: 0.78
    assert v.path.stat().st_size < 0.6 * parent.stat().st_size  # int8 weights


def test_a_cnn_keeps_static_qdq(models_dir):
    assert graph_kind(get_spec("vgg16").onnx_path(models_dir)) == "conv"
