"""Augmented-copy queries, robustness metrics and calibrated distances."""

import numpy as np
import pytest
from PIL import Image

from onnx_search.experiment.augment import DEFAULT_TRANSFORMS, TRANSFORMS, make_copies
from onnx_search.experiment.calibration import baseline, percentile, zscore
from onnx_search.experiment.robustness import rank_metrics, robustness_table
from tests.helpers import photo


def _decode(p):
    return Image.open(p).convert("RGB")


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    d = tmp_path_factory.mktemp("orig")
    paths = []
    for i, size in enumerate([(320, 240), (200, 300)]):
        paths.append(d / f"o{i}.jpg")
        photo(50 + i, size).save(paths[-1], quality=92)
    return paths


@pytest.mark.parametrize("name", DEFAULT_TRANSFORMS)
def test_each_transform_changes_the_image_and_keeps_its_size_in_bounds(originals, name):
    copies, skipped = make_copies(originals, [name], seed=0, decode=_decode)
    assert not skipped and len(copies) == len(originals)
    for c, p in zip(copies, originals, strict=True):
        src = _decode(p)
        out = np.asarray(c.image)
        assert c.image.mode == "RGB" and c.transform == name
        if out.shape == np.asarray(src).shape:
            assert np.abs(out.astype(int) - np.asarray(src).astype(int)).mean() > 1.0, "the copy must differ"
        w, h = c.image.size
        assert 0.5 * src.width <= w <= 1.6 * src.width and 0.5 * src.height <= h <= 1.6 * src.height
        assert min(w, h) >= 32


def test_parameters_are_recorded_and_within_their_ranges(originals):
    copies, _ = make_copies(originals, ["crop", "rotate", "jpeg", "blur", "color"], seed=3, decode=_decode)
    p = {c.transform: c.params for c in copies[:5]}
    assert 0.49 <= p["crop"]["area"] <= 0.91 and 5 <= abs(p["rotate"]["degrees"]) <= 30
    assert 10 <= p["jpeg"]["quality"] <= 50 and 1 <= p["blur"]["radius"] <= 3
    assert all(0.6 <= p["color"][k] <= 1.4 for k in ("brightness", "contrast", "saturation"))


def test_the_same_seed_gives_byte_identical_copies_and_another_seed_does_not(originals):
    a, _ = make_copies(originals, list(DEFAULT_TRANSFORMS), seed=7, decode=_decode)
    b, _ = make_copies(originals, list(DEFAULT_TRANSFORMS), seed=7, decode=_decode)
    c, _ = make_copies(originals, list(DEFAULT_TRANSFORMS), seed=8, decode=_decode)
    assert [x.image.tobytes() for x in a] == [x.image.tobytes() for x in b]
    assert [x.params for x in a] == [x.params for x in b]
    assert [x.image.tobytes() for x in a] != [x.image.tobytes() for x in c]


def test_an_unreadable_original_is_reported_not_raised(originals, tmp_path):
    bad = tmp_path / "gone.jpg"
    copies, skipped = make_copies([bad, *originals], ["hflip"], seed=0, decode=_decode)
    assert len(copies) == 2 and skipped[0][0] == str(bad) and "cannot be read" in skipped[0][1]


def test_rank_metrics_equal_a_hand_computed_example():
    m = rank_metrics([1, 3, None, 2, 1], k=5)
    assert m["n"] == 5 and m["recall_at_1"] == pytest.approx(2 / 5) and m["recall_at_k"] == pytest.approx(4 / 5)
    assert m["mrr_at_k"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2 + 1) / 5)
    assert m["mean_rank_found"] == pytest.approx((1 + 3 + 2 + 1) / 4)
    assert rank_metrics([4], k=3)["recall_at_k"] == 0.0  # beyond k counts as missed
    rows = [{"model": "a", "transform": "t1", "rank": 1}, {"model": "b", "transform": "t1", "rank": 2},
            {"model": "a", "transform": "t2", "rank": None}, {"model": "b", "transform": "t2", "rank": 1}]  # fmt: skip
    table = robustness_table(rows, ["a", "b"], ["t1", "t2"], 10)
    assert table["winners"] == {"t1": ["a"], "t2": ["b"]}
    assert table["per_model"]["a"]["mean"]["recall_at_1"] == pytest.approx(0.5)
    assert table["per_model"]["b"]["mean"]["mrr_at_k"] == pytest.approx((0.5 + 1) / 2)


def test_calibrated_score_equals_a_hand_computation():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    s = np.array([[1.0, 0.0], [0.5, 0.75], [0.0, 1.0]], np.float32)  # exact in float32
    base = baseline(q, s, query_ids=[10, 20], sample_ids=[10, 30, 20])  # (q0,s0) and (q1,s2) are self-pairs
    assert base.tolist() == [0.0, 0.0, 0.5, 0.75]  # q0·s2, q1·s0, q0·s1, q1·s1, sorted
    mean, std = 0.3125, np.sqrt(((0 - 0.3125) ** 2 * 2 + (0.5 - 0.3125) ** 2 + (0.75 - 0.3125) ** 2) / 4)
    assert percentile(0.5, base) == 0.75 and percentile(0.4, base) == 0.5 and percentile(0.9, base) == 1.0
    assert zscore(0.9, base) == pytest.approx((0.9 - mean) / std)
    assert TRANSFORMS["identity"]  # the check transform used below


def test_an_original_deleted_from_the_stores_is_reported_not_a_crash(labelled_set, embedders, make_stores):
    from onnx_search.experiment.augmented import run_augmented
    from onnx_search.experiment.config import Augment
    from onnx_search.ids import image_id
    from onnx_search.ingest import ingest

    stores = make_stores()
    one = {"mobilenetv2": embedders["mobilenetv2"]}
    ingest(labelled_set, one, stores, progress=False)
    files = sorted(p.resolve() for p in labelled_set.rglob("*.jpg"))
    victim = files[0]
    stores.vectors.delete(stores.collection("mobilenetv2"), [image_id(victim)])  # gone from Milvus after the ingest
    stores.vectors.flush(stores.collection("mobilenetv2"))
    section, copies = run_augmented(Augment(sample=12, transforms=["identity"]), stores, one, files, {}, top_k=3)
    assert section["missing_originals"] == {"mobilenetv2": [str(victim)]}
    cell = section["per_model"]["mobilenetv2"]["transforms"]["identity"]
    assert cell["n"] == 11 and cell["recall_at_1"] == 1.0  # the other originals are found first, as they must be
    assert len(copies) == 12


def test_each_hit_is_calibrated_against_its_own_models_baseline(make_stores, tmp_path):
    """Two models with known, different baselines in real stores: a hit's percentile and z are its own model's."""
    from pathlib import Path

    from onnx_search.experiment.augmented import baselines, calibrate_hits
    from onnx_search.ids import image_id

    def at_cosine(c: float) -> np.ndarray:  # a unit vector whose cosine to e0 is exactly c (c a binary fraction)
        return np.array([c, np.sqrt(1 - c * c), 0, 0], np.float32)

    query = Path("/photos/query.jpg")
    own = image_id(query)  # the query's own image is in the collection, and must not be in its baseline
    known = {"a": [0, 0.25, 0.5, 0.75], "b": [0.75, 0.8125, 0.875, 0.9375]}
    stores, ids = make_stores(), [own, 1, 2, 3, 4]
    for m, cosines in known.items():
        coll = stores.collection(m)
        stores.vectors.ensure(coll, 4, stores.index, len(ids))
        stores.vectors.upsert(coll, ids, np.stack([at_cosine(1.0)] + [at_cosine(c) for c in cosines]))
        stores.vectors.flush(coll)
    e0 = np.array([[1, 0, 0, 0]], np.float32)
    bases = baselines(stores, ["a", "b"], [query], {"a": e0, "b": e0}, ids, seed=0)
    assert {m: b.tolist() for m, b in bases.items()} == known  # sorted, the self-pair left out
    hits = [{"model": "a", "cosine": 0.6}, {"model": "b", "cosine": 0.85}, {"model": "b", "cosine": 0.6}]
    calibrate_hits(hits, bases)
    mean_a, std_a = 0.375, np.sqrt(np.mean((np.array(known["a"]) - 0.375) ** 2))
    mean_b, std_b = 0.84375, np.sqrt(np.mean((np.array(known["b"]) - 0.84375) ** 2))
    assert hits[0]["percentile"] == 0.75 and hits[0]["z"] == pytest.approx((0.6 - mean_a) / std_a, abs=1e-6)
    assert hits[1]["percentile"] == 0.5 and hits[1]["z"] == pytest.approx((0.85 - mean_b) / std_b, abs=1e-6)
    assert hits[2]["percentile"] == 0.0 and hits[2]["z"] == pytest.approx((0.6 - mean_b) / std_b, abs=1e-6)
