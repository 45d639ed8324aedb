"""A variant's agreement with its parent (experiment/lineage.py) on hand-made collections with known answers."""

import numpy as np
import pytest

from onnx_search.experiment.compare import compare
from onnx_search.experiment.lineage import variant_agreement
from onnx_search.experiment.metrics import RBO_P
from onnx_search.models.recipe import read_metadata_file, write_metadata
from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.tiny import write_pixel_mean_model

# unit vectors whose dot products are exact in float32: Hadamard rows / 2 and one-hot vectors
H = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], np.float32) / 2
E = np.eye(4, dtype=np.float32)
IDS = [11, 12, 13, 14, 15, 16]
PARENT = np.stack([H[0], H[1], H[2], H[3], E[0], E[1]])
# the same images in the fp16 variant: three unchanged, then cosines H3·E0 = 0.5, E0·H0 = 0.5, E1·H1 = -0.5
FP16 = np.stack([H[0], H[1], H[2], E[0], H[0], H[1]])


def _session(tmp_path, name: str, parent: str | None) -> ModelSession:
    """A real (tiny) ONNX model whose metadata names ``parent``, as make_variant writes it."""
    path = write_pixel_mean_model(tmp_path / f"{name}.onnx", like="vgg16")
    meta = read_metadata_file(path) | {"name": name}
    if parent:
        meta |= {"variant": name.rsplit(".", 1)[1], "parent": {"name": parent, "sha256": "0" * 64}}
    write_metadata(path, meta)
    return ModelSession(path, SessionConfig(["cpu"]))


def _hits(rankings: dict[str, dict[str, list[int]]]) -> list[dict]:
    return [
        {"query": q, "model": m, "rank": r, "id": i, "cosine": 1 - r / 10, "label": "", "path": str(i)}
        for q, per_model in rankings.items()
        for m, ids in per_model.items()
        for r, i in enumerate(ids, 1)
    ]


def _rbo_by_hand(overlaps: list[int]) -> float:
    """Extrapolated RBO from the overlap X_d at each depth d (Webber et al. eq. 32)."""
    p, k = RBO_P, len(overlaps)
    return overlaps[-1] / k * p**k + (1 - p) / p * sum(x / d * p**d for d, x in enumerate(overlaps, 1))


@pytest.fixture
def agreement(tmp_path, make_stores):
    stores = make_stores()
    vectors = {
        "vgg16": PARENT,
        "vgg16.fp16": FP16,
        "vgg16.int8": PARENT.copy(),  # a variant whose vectors are its parent's
        "resnet50": np.roll(PARENT, 1, axis=0),  # no parent: not a variant
        "mobilenetv2.fp16": PARENT,  # its parent is not in the run
    }
    for name, v in vectors.items():
        coll = stores.collection(name)
        stores.vectors.ensure(coll, 4, stores.index, len(IDS))
        stores.vectors.upsert(coll, IDS, v)
        stores.vectors.flush(coll)
    parents = {"vgg16.fp16": "vgg16", "vgg16.int8": "vgg16", "mobilenetv2.fp16": "mobilenetv2"}
    models = {n: _session(tmp_path, n, parents.get(n)) for n in vectors}
    p = [11, 12, 13, 14]
    rankings = {
        "q1": {"vgg16": p, "vgg16.fp16": [11, 12, 14, 15], "vgg16.int8": p, "resnet50": [16, 15, 14, 13]},
        "q2": {
            "vgg16": [15, 16, 11, 12],
            "vgg16.fp16": [16, 15, 11, 12],
            "vgg16.int8": [15, 16, 11, 12],
            "resnet50": [11, 12, 13, 14],
        },  # fmt: skip
    }
    queries = [{"query": q, "label": ""} for q in rankings]
    names = ["resnet50", "vgg16.fp16", "vgg16", "vgg16.int8", "mobilenetv2.fp16"]  # pairs keyed both ways round
    comparison = compare(_hits(rankings), queries, names, top_k=4)
    return variant_agreement(stores, models, comparison, IDS)


def test_overlap_rbo_and_cosines_equal_a_hand_computation(agreement):
    assert set(agreement) == {"vgg16.fp16", "vgg16.int8"}  # not resnet50 (no parent), not mobilenetv2.fp16
    a = agreement["vgg16.fp16"]
    assert a["parent"] == "vgg16" and a["variant"] == "fp16" and a["images"] == len(IDS)
    # q1: [11,12,13,14] vs [11,12,14,15] -> 3 of 4 shared; overlaps by depth 1, 2, 2, 3
    # q2: [15,16,11,12] vs [16,15,11,12] -> 4 of 4 shared; overlaps by depth 0, 2, 3, 4
    assert a["overlap_at_k"] == pytest.approx((3 / 4 + 1) / 2)
    assert a["rbo"] == pytest.approx((_rbo_by_hand([1, 2, 2, 3]) + _rbo_by_hand([0, 2, 3, 4])) / 2)
    cos = (PARENT * FP16).sum(axis=1)
    assert cos.tolist() == [1, 1, 1, 0.5, 0.5, -0.5]  # exact: see the vectors above
    assert a["mean_parent_cosine"] == pytest.approx(3.5 / 6) and a["min_parent_cosine"] == -0.5


def test_a_variant_with_its_parents_vectors_agrees_exactly(agreement):
    a = agreement["vgg16.int8"]
    assert a["overlap_at_k"] == 1.0 and a["rbo"] == pytest.approx(1.0, abs=1e-12)  # RBO's sum: 1 - 1e-16
    assert a["mean_parent_cosine"] == 1.0 and a["min_parent_cosine"] == 1.0
