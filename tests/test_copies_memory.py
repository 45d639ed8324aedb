"""Augmented copies in bounded memory: made at the models' scale from camera-size JPEGs, embedded in bounded batches,
their vectors cached on disk so a rerun makes nothing; a duplicate of the original counts as a hit when asked."""

import shutil

import numpy as np
import pytest

from onnx_search.bench.camera_roll import camera_roll
from onnx_search.experiment import augment, augmented
from onnx_search.experiment.copycache import CopyCache, copy_key, model_key

TRANSFORMS = ["crop", "hflip", "pad", "downscale"]


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """Three camera JPEGs: 4000x3000, 3024x4032, and a 4000x3000 stored sideways with EXIF orientation 6."""
    root = tmp_path_factory.mktemp("camera")
    files = camera_roll(root, 5)
    return [files[0], files[1], files[4]]  # photo 4 is the first one written with orientation 6


@pytest.fixture
def spy(monkeypatch):
    """Records the size of every image a transform receives, and every copy_source call, and the size of every
    list of copy images handed to the embedder."""
    seen = {"transform_sizes": [], "sources": 0, "embedded": []}
    for name in TRANSFORMS:
        real = augment.TRANSFORMS[name]

        def wrapped(img, rng, _real=real):
            seen["transform_sizes"].append(img.size)
            return _real(img, rng)

        monkeypatch.setitem(augment.TRANSFORMS, name, wrapped)
    real_source, real_embed = augmented.copy_source, augmented.embed_images

    def source(data, side):
        seen["sources"] += 1
        return real_source(data, side)

    def embed(models, images, batch):
        seen["embedded"].append(len(images))
        return real_embed(models, images, batch)

    monkeypatch.setattr(augmented, "copy_source", source)
    monkeypatch.setattr(augmented, "embed_images", embed)
    return seen


def test_copies_are_made_at_the_models_scale_in_bounded_batches_and_a_rerun_makes_none(camera, embedders, spy,
                                                                                        tmp_path):  # fmt: skip
    side = augment.copy_side([m.recipe.geometry for m in embedders.values()])
    assert side == 2 * 224  # the fixture models squash to 224: copies are made at twice that (shorter side)
    cache = CopyCache(tmp_path / "copies")
    copies, vecs, skipped = augmented.copy_vectors(camera, TRANSFORMS, 0, embedders, cache, batch=5)
    assert skipped == [] and len(copies) == len(camera) * len(TRANSFORMS)
    # every transform saw the original bounded by the models' input (shorter side 512), never the 12 MP file,
    # and the EXIF-rotated photo upright (4000x3000 as seen -> 597x448)
    assert sorted(set(spy["transform_sizes"])) == [(448, 597), (597, 448)]
    assert spy["transform_sizes"][-1] == (597, 448)
    assert max(spy["embedded"]) <= 5  # never more than one batch of copy images held before embedding
    assert spy["sources"] == len(camera)  # each original decoded once
    assert {m: v.shape for m, v in vecs.items()} == {m: (len(copies), e.dim) for m, e in embedders.items()}
    assert cache.writes == len(copies) * len(embedders)
    assert all(c.pixels is None for c in copies)  # the list of copies holds no image
    remade = copies[1].image  # made again on demand (the grid of misses): the same copy, upright
    assert remade.size == (597, 448) and copies[1].transform == "hflip"

    spy["transform_sizes"].clear()
    spy["embedded"].clear()
    spy["sources"] = 0
    again = CopyCache(tmp_path / "copies")
    copies2, vecs2, _ = augmented.copy_vectors(camera, TRANSFORMS, 0, embedders, again, batch=5)
    assert spy["transform_sizes"] == [] and spy["embedded"] == [] and spy["sources"] == 0  # nothing made again
    assert again.writes == 0 and again.hits == len(copies) * len(embedders)
    assert [c.describe() for c in copies2] == [c.describe() for c in copies]
    assert all(np.array_equal(vecs[m], vecs2[m]) for m in embedders)


def test_a_changed_original_or_seed_makes_only_its_copies_again(camera, embedders, spy, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    files = [shutil.copy(p, folder / f"{i}.jpg") for i, p in enumerate(camera[:2])]
    cache_dir = tmp_path / "copies"
    augmented.copy_vectors(files, ["hflip"], 0, embedders, CopyCache(cache_dir))
    files[1].write_bytes(camera[2].read_bytes())  # same path, other content
    spy["sources"] = 0
    cache = CopyCache(cache_dir)
    augmented.copy_vectors(files, ["hflip"], 0, embedders, cache)
    assert spy["sources"] == 1 and cache.writes == len(embedders) and cache.hits == len(embedders)
    cache = CopyCache(cache_dir)
    augmented.copy_vectors(files, ["hflip"], 1, embedders, cache)  # another seed: every copy is another
    assert cache.hits == 0 and cache.writes == 2 * len(embedders)


def test_each_part_of_a_copys_identity_changes_its_key():
    base = dict(original_hash="a" * 32, transform="crop", seed=0, index=1, position=2, side=512)
    key = copy_key(**base)
    changed = [{"original_hash": "b" * 32}, {"transform": "blur"}, {"seed": 1}, {"index": 2}, {"position": 3},
               {"side": 640}]  # fmt: skip
    keys = {copy_key(**(base | c)) for c in changed}
    assert key not in keys and len(keys) == len(changed)
    mk = model_key("id", "1.20.0", ["CPUExecutionProvider"])
    assert len({mk, model_key("other", "1.20.0", ["CPUExecutionProvider"]), model_key("id", "1.21.0",
                ["CPUExecutionProvider"]), model_key("id", "1.20.0", ["CUDAExecutionProvider"])}) == 4  # fmt: skip


def test_the_source_is_bounded_on_both_sides_and_never_enlarged():
    from PIL import Image

    assert augment.bounded(Image.new("RGB", (4000, 3000)), 512).size == (683, 512)
    assert augment.bounded(Image.new("RGB", (300, 200)), 512).size == (300, 200)  # small: kept as it is
    assert augment.bounded(Image.new("RGB", (20000, 600)), 512).size == (8192, 246)  # long side <= 16 x 512


def test_a_duplicate_of_the_original_in_the_top_k_counts_as_a_hit(labelled_set, embedders, make_stores, tmp_path):
    """A hand-made same-image map: the original's own stored vector is pushed far away, so only its exact
    duplicate can be found; with the map the copy is found at rank 1 through the duplicate, without it missed."""
    from onnx_search.experiment.config import Augment
    from onnx_search.ids import image_id
    from onnx_search.ingest import ingest

    folder = tmp_path / "set"
    shutil.copytree(labelled_set, folder)
    files = sorted(p.resolve() for p in folder.rglob("*.jpg"))
    original, other = files[0], files[5]
    dup = original.with_name("dup_of_first.jpg")
    shutil.copy(original, dup)
    one = {"mobilenetv2": embedders["mobilenetv2"]}
    stores = make_stores()
    ingest(folder, one, stores, progress=False)
    coll = stores.collection("mobilenetv2")
    o, d = image_id(original), image_id(dup)
    v = stores.fetch_present("mobilenetv2", [o])[o]
    stores.vectors.upsert(coll, [o], (-v)[None])  # the original itself now sits at the bottom of every list
    stores.vectors.flush(coll)
    aug = Augment(sample=2, transforms=["identity"])
    same = {o: {o, d}, d: {o, d}}
    section, _ = augmented.run_augmented(aug, stores, one, [original, other], {}, top_k=3, same_image=same)
    rows = {r["copy"]: r for r in section["rows"]}
    by_original = {c["original"]: rows[i] for i, c in enumerate(section["copies"])}
    assert (by_original[str(original)]["rank"], by_original[str(original)]["rank_via"]) == (1, "duplicate")
    assert (by_original[str(other)]["rank"], by_original[str(other)]["rank_via"]) == (1, "original")
    plain, _ = augmented.run_augmented(aug, stores, one, [original, other], {}, top_k=3)
    missed = next(r for r in plain["rows"] if plain["copies"][r["copy"]]["original"] == str(original))
    assert (missed["rank"], missed["rank_via"]) == (None, None)  # without the map only the original counts


def test_rank_is_the_first_position_showing_the_same_picture():
    assert augmented._rank([5, 7, 9], {9, 7}, 9) == (2, "duplicate")
    assert augmented._rank([9, 7], {9, 7}, 9) == (1, "original")
    assert augmented._rank([5, 6], {9, 7}, 9) == (None, None)
