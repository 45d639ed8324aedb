"""Duplicates: exact by content hash, near by cosine on a trained model's vectors, ties broken by id."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnx_search.experiment.duplicates import (
    NEAR_COSINE,
    DuplicateReport,
    exact_groups,
    find_duplicates,
    summary_line,
    trained_model,
)
from onnx_search.store.catalog import ImageRecord
from onnx_search.store.milvus import order_ties


def _rec(i: int, sha: str) -> ImageRecord:
    return ImageRecord(i, f"/photos/{i}.jpg", sha, 1, 1, "", "/photos")


def _store(stores, model: str, ids: list[int], vectors: np.ndarray) -> None:
    stores.vectors.ensure(stores.collection(model), vectors.shape[1], stores.index)
    stores.vectors.upsert(stores.collection(model), ids, vectors)
    stores.vectors.flush(stores.collection(model))


# ---- ties broken by id ---------------------------------------------------------------------------------------


def test_order_ties_puts_equal_distances_in_trec_eval_id_order_and_keeps_the_metric_direction():
    """Within a tie, ids descending compared as text, as trec_eval orders docnos ("9" before "10")."""
    hits = [(9, 0.5), (3, 0.9), (7, 0.9), (10, 0.5), (4, 0.9 + 1e-9)]
    assert order_ties(hits, "COSINE") == [(7, 0.9), (4, 0.9 + 1e-9), (3, 0.9), (9, 0.5), (10, 0.5)]
    assert order_ties(hits, "IP") == order_ties(hits, "COSINE")
    # L2: smaller is nearer
    assert order_ties(hits, "L2") == [(9, 0.5), (10, 0.5), (7, 0.9), (4, 0.9 + 1e-9), (3, 0.9)]
    # distances that differ beyond the tolerance keep their order, whatever their ids
    assert order_ties([(1, 0.80), (2, 0.81)], "COSINE") == [(2, 0.81), (1, 0.80)]


@pytest.mark.parametrize("metric", ["COSINE", "L2"])
def test_exact_duplicate_vectors_come_back_in_id_order_every_time(make_stores, metric):
    """20 identical vectors under shuffled ids, more than top_k + the margin asked beyond it: the top k are the
    largest ids (trec_eval's tie order), in order, on every search (the tie at the cut is searched deeper)."""
    stores = make_stores(metric=metric)
    rng = np.random.default_rng(5)
    dup = rng.normal(size=16).astype(np.float32)
    dup /= np.linalg.norm(dup)
    others = rng.normal(size=(6, 16)).astype(np.float32)
    others /= np.linalg.norm(others, axis=1, keepdims=True)
    dup_ids = [int(i) for i in rng.permutation(np.arange(1000, 1020))]  # inserted out of id order
    _store(stores, "m", [*dup_ids, *range(1, 7)], np.vstack([np.tile(dup, (20, 1)), others]))
    for _ in range(3):
        rows = stores.search("m", np.stack([dup, dup]), 3, exclude=[None, 1019])
        assert [i for i, _ in rows[0]] == [1019, 1018, 1017]
        assert [i for i, _ in rows[1]] == [1018, 1017, 1016]  # the excluded id leaves a hole filled in order
        rows = stores.search("m", dup[None], 22)  # every duplicate, then the others by distance
        assert [i for i, _ in rows[0][:20]] == list(range(1019, 999, -1))


# ---- the report ----------------------------------------------------------------------------------------------


def _unit(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(10, np.float32)
    for axis, value in pairs:
        v[axis] = value
    return v


def _pair_at(cos: float, axis: int) -> tuple[np.ndarray, np.ndarray]:
    return _unit((axis, 1.0)), _unit((axis, cos), (axis + 1, float(np.sqrt(1 - cos * cos))))


def test_exact_groups_are_files_with_one_content_hash():
    recs = {1: _rec(1, "aa"), 2: _rec(2, "bb"), 3: _rec(3, "aa"), 4: _rec(4, "cc"), 5: _rec(5, "aa"), 6: _rec(6, "cc")}
    assert exact_groups(recs) == [[1, 3, 5], [4, 6]]
    assert exact_groups({1: _rec(1, "aa"), 2: _rec(2, "bb")}) == []


def test_the_near_rule_is_the_stated_cosine_on_a_trained_model_and_exact_groups_join_in(make_stores):
    """a~a' at 0.975 (grouped), b~b' at 0.965 (not: below 0.97), c = c' (exact, same hash) and c'' near c:
    one near group {c, c', c''}; d = d' only exact (one content: not a near group); the map of the same picture
    joins exact and near."""
    assert NEAR_COSINE == 0.97
    stores = make_stores()
    a, a2 = _pair_at(0.975, 0)
    b, b2 = _pair_at(0.965, 2)
    c, c3 = _pair_at(0.99, 4)
    d, lone = _unit((8, 1.0)), _unit((6, 1.0))
    ids = [10, 11, 20, 21, 30, 31, 32, 40, 50, 51]
    _store(stores, "trained", ids, np.stack([a, a2, b, b2, c, c, c3, lone, d, d]))
    shas = {10: "a", 11: "a2", 20: "b", 21: "b2", 30: "c", 31: "c", 32: "c3", 40: "lone", 50: "d", 51: "d"}
    records = {i: _rec(i, s) for i, s in shas.items()}
    weights = {"random-net": "random (seed 0)", "trained": "imagenet"}

    rep = find_duplicates(stores, records, weights, {"random-net", "trained"})
    assert rep.model == "trained"
    assert rep.exact == [[30, 31], [50, 51]]
    assert rep.near == [[10, 11], [30, 31, 32]]
    assert rep.near_cosine == {10: 0.975, 30: 0.99}
    same = rep.same_image()
    assert same[10] == {10, 11} and same[31] == {30, 31, 32} and same[50] == {50, 51}
    assert 20 not in same and 40 not in same
    out = rep.as_dict(records)
    assert out["counts"] == {"exact_groups": 2, "exact_files": 4, "near_groups": 2, "near_files": 5}
    assert out["exact"][0] == {"sha": "c", "ids": [30, 31], "paths": ["/photos/30.jpg", "/photos/31.jpg"]}
    assert "cosine >= 0.97" in out["rule"] and "5 nearest" in out["rule"] and "trained" in out["rule"]
    assert json.loads(json.dumps(out)) == out
    line = summary_line(out)
    assert line.startswith("Duplicates (duplicates.json): 2 exact groups (4 files), 2 near groups (5 files)")

    # only random weights: exact groups still, near ones not sought, and the report says so
    rnd = find_duplicates(stores, records, {"random-net": "random (seed 0)", "trained": "random"}, {"trained"})
    assert (rnd.model, rnd.exact, rnd.near) == (None, [[30, 31], [50, 51]], [])
    assert rnd.same_image() == {30: {30, 31}, 31: {30, 31}, 50: {50, 51}, 51: {50, 51}}
    assert "not sought (every model has random weights)" in rnd.rule()
    # a trained model whose collection the run did not fill is not used
    assert find_duplicates(stores, records, weights, {"random-net"}).model is None


def test_trained_model_is_the_first_without_random_weights():
    assert trained_model({"r": "random (seed 0)", "a": "imagenet", "b": "imagenet"}) == "a"
    assert trained_model({"r": "random", "user": None}) == "user"  # a user's file: its weights are its own
    assert trained_model({"r": "random"}) is None


def test_same_image_merges_groups_that_share_a_member():
    rep = DuplicateReport(6, exact=[[1, 2]], near=[[2, 3], [5, 6]])
    assert rep.same_image() == {1: {1, 2, 3}, 2: {1, 2, 3}, 3: {1, 2, 3}, 5: {5, 6}, 6: {5, 6}}


# ---- a real folder, a trained model --------------------------------------------------------------------------


def _jpeg_resized(src, dest, factor: float) -> None:
    img = Image.open(src).convert("RGB")
    img = img.resize((round(img.width * factor), round(img.height * factor)), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    dest.write_bytes(buf.getvalue())


def test_a_folder_with_exact_and_resized_duplicates_gives_the_report(trained_dir, make_stores, tmp_path):
    """Real photos; an exact copy of coffee (exact group by hash) and resized JPEG copies of chelsea and camera
    (near groups with trained Lite0); the two motorcycle photos (cosine about 0.89) stay apart."""
    from onnx_search.ids import image_id
    from onnx_search.ingest import ingest
    from onnx_search.models.session import ModelSession, SessionConfig
    from onnx_search.photos import available_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    wanted = ("chelsea.png", "coffee.png", "camera.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg")
    src = {p.name: path for p, path in available_photos() if p.name in wanted}
    assert len(src) == len(wanted)
    for name, path in src.items():
        shutil.copyfile(path, folder / name)
    shutil.copyfile(src["coffee.png"], folder / "coffee copy.png")
    _jpeg_resized(src["chelsea.png"], folder / "chelsea-chat.jpg", 0.9)
    _jpeg_resized(src["camera.png"], folder / "camera-chat.jpg", 0.75)

    stores = make_stores()
    lite0 = ModelSession(trained_dir / "efficientnet-lite0.onnx", SessionConfig(providers=["cpu"]))
    ingest(folder, {"lite0": lite0}, stores, labels=False, progress=False)
    records = stores.catalog.get_images(stores.catalog.ids())
    assert len(records) == 9
    rep = find_duplicates(stores, records, {"lite0": lite0.meta.get("weights")}, {"lite0"})

    def ids(*names):
        return sorted(image_id((folder / n).resolve()) for n in names)

    assert rep.model == "lite0"
    assert rep.exact == [ids("coffee.png", "coffee copy.png")]
    assert sorted(rep.near) == sorted([ids("chelsea.png", "chelsea-chat.jpg"), ids("camera.png", "camera-chat.jpg")])


def test_a_copy_whose_original_has_an_exact_duplicate_at_rank_1_counts_it_as_a_hit(trained_dir, make_stores, tmp_path):
    """coffee.png and an exact copy: their stored vectors are equal, so the tie goes by id (trec_eval's order) and
    the copies of the file that loses the tie find the other file at rank 1. With the duplicate report's map that
    is a hit at rank 1 (via a duplicate); without it the same search counts the original's rank, 2."""
    from onnx_search.experiment.augmented import run_augmented
    from onnx_search.experiment.config import Augment
    from onnx_search.ids import image_id, in_tie_order
    from onnx_search.ingest import ingest
    from onnx_search.models.session import ModelSession, SessionConfig
    from onnx_search.photos import available_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    src = {p.name: path for p, path in available_photos() if p.name in ("coffee.png", "chelsea.png", "camera.png")}
    for name, path in src.items():
        shutil.copyfile(path, folder / name)
    shutil.copyfile(src["coffee.png"], folder / "coffee copy.png")
    stores = make_stores()
    lite0 = ModelSession(trained_dir / "efficientnet-lite0.onnx", SessionConfig(providers=["cpu"]))
    models = {"lite0": lite0}
    ingest(folder, models, stores, labels=False, progress=False)
    records = stores.catalog.get_images(stores.catalog.ids())
    rep = find_duplicates(stores, records, {"lite0": lite0.meta.get("weights")}, {"lite0"})
    by_id = {image_id(Path(r.path)): Path(r.path) for r in records.values()}
    pair = sorted(image_id((folder / n).resolve()) for n in ("coffee.png", "coffee copy.png"))
    assert rep.exact == [pair]

    aug = Augment(sample=4, transforms=["hflip", "jpeg"], seed=1)
    catalogued = sorted(by_id.values())
    with_map, _ = run_augmented(aug, stores, models, catalogued, {}, 3, 4, same_image=rep.same_image())
    without, _ = run_augmented(aug, stores, models, catalogued, {}, 3, 4)

    def rows(section: dict, original: int) -> list[dict]:
        mine = {i for i, c in enumerate(section["copies"]) if c["original"] == str(by_id[original])}
        return [r for r in section["rows"] if r["copy"] in mine]

    first, second = in_tie_order(pair)  # the tie's winner, then the other file
    assert len(rows(with_map, second)) == 2
    for r in rows(with_map, second):
        assert (r["rank"], r["rank_via"], r["top1_id"]) == (1, "duplicate", first)
    assert [r["rank"] for r in rows(without, second)] == [2, 2]
    # the file that wins the tie is first: its original at rank 1 either way
    assert {(r["rank"], r["rank_via"]) for r in rows(with_map, first)} == {(1, "original")}
    assert with_map["per_model"]["lite0"]["mean"]["recall_at_1"] == 1.0
    assert without["per_model"]["lite0"]["mean"]["recall_at_1"] == 0.75
