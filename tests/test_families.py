"""Transformer families through the timm source: the registry lines record their pooling, and the mechanism
(CLS token, mean of patch tokens, attention-pool head) converts with parity on timm's tiny test ViT."""

import numpy as np
import pytest

from onnx_search.models import zoo
from onnx_search.models.convert import convert_model
from onnx_search.models.session import ModelSession, SessionConfig

FAMILIES = {"dinov2-vits14": 384, "dinov2-vits14-avg": 384, "clip-vitb16": 768, "siglip-vitb16": 768,
            "convnext-tiny": 768}  # fmt: skip


def test_registry_lines_for_the_families():
    for name, dim in FAMILIES.items():
        spec = zoo.get_spec(name)
        assert spec.source == "timm" and spec.dim == dim
    assert dict(zoo.get_spec("dinov2-vits14").build_kwargs) == {"img_size": 224}  # not timm's pretrained 518
    assert dict(zoo.get_spec("dinov2-vits14-avg").build_kwargs)["global_pool"] == "avg"


@pytest.mark.parametrize(
    ("kwargs", "pooling"),
    [({}, "token"), ({"global_pool": "avg", "fc_norm": False}, "avg-tokens"), ({"global_pool": "map"}, "map")],
)
def test_each_token_pooling_converts_with_parity_and_is_recorded(tmp_path, monkeypatch, kwargs, pooling):
    import timm

    dim = timm.create_model("test_vit", num_classes=0).num_features
    spec = zoo._timm("t-vit", "test_vit", dim, img_size=64, **kwargs)
    monkeypatch.setitem(zoo.REGISTRY, "t-vit", spec)
    r = convert_model("t-vit", tmp_path, weights="random", seed=1)
    meta = r.metadata
    assert meta["pooling"] == pooling and meta["input_size"] == 64 and meta["dim"] == dim
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    session = ModelSession(r.path, SessionConfig(["cpu"]))
    v = session.embed(np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32))
    assert v.shape == (2, dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
