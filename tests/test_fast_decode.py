"""The fast decode path changes no pixel: simplejpeg at Pillow's draft scale, and the fused normalisation."""

import io
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageOps

from onnx_search.embed import decode as dec
from onnx_search.embed.normalize import FusedNormalizer
from onnx_search.errors import DecodeError
from onnx_search.models.recipe import TORCH_MEAN, TORCH_STD, Recipe, prepare_batch


@lru_cache(maxsize=16)
def _jpeg(w: int, h: int, seed: int, **kw) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 37.0 + seed), np.cos(yy / 23.0), np.sin((xx + yy) / 51.0)], -1) * 90 + 128
    px = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _pillow(data: bytes, draft: int | None) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    if draft:
        img.draft("RGB", (draft, draft))
    img.load()
    return np.asarray(dec._to_rgb(ImageOps.exif_transpose(img)))


CASES = [
    (640, 480, {"quality": 90}),
    (1000, 750, {"quality": 75, "subsampling": 0}),
    (2100, 1500, {"quality": 92, "progressive": True}),
    (1203, 2401, {"quality": 85, "subsampling": 1}),
    (2600, 1950, {"quality": 90}),
]


@pytest.mark.parametrize("w,h,kw", CASES)
@pytest.mark.parametrize("draft", [None, 224, 256])
def test_simplejpeg_gives_pillows_draft_pixels(w, h, kw, draft):
    data = _jpeg(w, h, w, **kw)  # cached: each size is encoded once
    ours = np.asarray(dec.decode(data, draft_size=draft))
    assert dec._simplejpeg is not None and dec._turbo_decode(data, Image.open(io.BytesIO(data)), draft) is not None
    theirs = _pillow(data, draft)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
    assert np.array_equal(ours, np.asarray(dec.decode(data, draft_size=draft, turbo=False)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_path_applies_exif_orientation_as_pillow(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(300, 200, orientation, quality=90, exif=exif.tobytes())
    assert np.array_equal(np.asarray(dec.decode(data, draft_size=100)), _pillow(data, 100))


def test_truncated_jpeg_keeps_pillows_reason():
    data = _jpeg(640, 480, 1, quality=90)
    with pytest.raises(DecodeError, match="corrupt or truncated"):
        dec.decode(data[: len(data) // 2], draft_size=224)


def test_without_simplejpeg_pillow_decodes_the_same(monkeypatch):
    data = _jpeg(1600, 1200, 3, quality=90)
    fast = np.asarray(dec.decode(data, draft_size=224))
    monkeypatch.setattr(dec, "_simplejpeg", None)
    assert np.array_equal(fast, np.asarray(dec.decode(data, draft_size=224)))


def test_draft_scale_is_pillows():
    for w, h, side in [(640, 480, 256), (640, 480, 224), (4000, 3000, 256), (100, 80, 224), (2048, 512, 256)]:
        img = Image.open(io.BytesIO(_jpeg(w, h, 0, quality=80)))
        img.draft("RGB", (side, side))
        s = dec.draft_scale((w, h), side)
        assert img.size == (-(-w // s), -(-h // s))


RECIPES = [
    Recipe(224),
    Recipe(224, "tf"),
    Recipe(224, "raw"),
    Recipe(224, "torch", layout="NCHW"),
    Recipe(224, "meanstd", "center_crop", "bicubic", "NCHW", 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    Recipe(224, "meanstd", layout="NHWC", mean=TORCH_MEAN, std=TORCH_STD),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: f"{r.preprocess}-{r.layout}")
def test_fused_normalisation_is_bit_exact(recipe):
    px = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    px[0, 0, :, :] = np.arange(224, dtype=np.uint8)[:, None] + np.array([0, 16, 32], dtype=np.uint8)
    fused = FusedNormalizer(recipe)
    ours = np.stack([fused(p) for p in px])
    theirs = prepare_batch(px, recipe)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


@pytest.mark.parametrize("ahead", [True, False])
def test_pipeline_inputs_equal_prepare_batch_made_ahead_or_not(tmp_path, monkeypatch, ahead):
    """Normalised in the decode threads (one model) or on the inference thread (past the budget): the same input."""
    from onnx_search.embed import pipeline as pl
    from onnx_search.models.session import ModelSession, SessionConfig
    from onnx_search.models.tiny import write_pixel_mean_model

    if not ahead:
        monkeypatch.setattr(pl, "AHEAD_BYTES", 0)
    session = ModelSession(write_pixel_mean_model(tmp_path / "m.onnx", like="resnet50"), SessionConfig(["cpu"]))
    files = []
    for i in range(5):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(_jpeg(500 + 40 * i, 375, i, quality=90))
    seen = []
    real_embed = session.embed
    monkeypatch.setattr(session, "embed", lambda x: seen.append(x.copy()) or real_embed(x))
    pipe = pl.Pipeline({"m": session}, batch_size=2, progress=False)
    assert pipe.normalize_ahead is ahead
    for _ in pipe.run([(f, frozenset(["m"])) for f in files]):
        pass
    px = np.stack([dec.load_for_recipes(f, [session.recipe.geometry])[1][0] for f in files])
    assert np.array_equal(np.concatenate(seen), prepare_batch(px, session.recipe))
