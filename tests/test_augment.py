"""Each augmentation does what its name says, checked on the pixels against the parameters it recorded."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from onnx_search.experiment.augment import TRANSFORMS
from tests.helpers import photo

SEEDS = range(6)  # a few draws of each transform's random parameters


def _apply(name: str, img: Image.Image, seed: int) -> tuple[Image.Image, dict]:
    out, params = TRANSFORMS[name](img, np.random.default_rng(seed))
    return out.convert("RGB"), params


@pytest.fixture(scope="module")
def src() -> Image.Image:
    return photo(21, (160, 120))


def test_hflip_is_an_exact_mirror(src):
    out, _ = _apply("hflip", src, 0)
    assert np.array_equal(np.asarray(out), np.asarray(src)[:, ::-1])


def test_grayscale_has_equal_channels_holding_the_luminance(src):
    out, _ = _apply("grayscale", src, 0)
    a, s = np.asarray(out).astype(int), np.asarray(src).astype(float)
    assert np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])
    luma = s @ [0.299, 0.587, 0.114]  # ITU-R 601, what PIL's "L" mode holds
    assert np.abs(a[..., 0] - luma).max() <= 1


@pytest.mark.parametrize("seed", SEEDS)
def test_crop_is_the_recorded_box_and_keeps_the_recorded_area(src, seed):
    out, p = _apply("crop", src, seed)
    left, top, cw, ch = p["box"]
    assert out.size == (cw, ch)
    assert np.array_equal(np.asarray(out), np.asarray(src)[top : top + ch, left : left + cw])
    assert p["area"] == pytest.approx(cw * ch / (src.width * src.height), abs=5e-4)
    assert 0.45 <= p["area"] <= 0.95  # 50-90% asked for, up to rounding of the sides


@pytest.mark.parametrize("seed", SEEDS)
def test_rotate_turns_a_marked_pixel_by_the_recorded_angle(seed):
    w, h, r = 160, 120, 50
    arr = np.zeros((h, w, 3), np.uint8)
    cx, cy = w / 2, h / 2
    arr[int(cy) - 2 : int(cy) + 3, int(cx) + r - 2 : int(cx) + r + 3] = 255  # a 5x5 white mark r px right of centre
    out, p = _apply("rotate", Image.fromarray(arr), seed)
    assert out.size == (w, h)
    mark = np.asarray(out)[..., 0].astype(float)
    mark[mark <= 128] = 0  # the grey corners (128) are not the mark
    ys, xs = np.nonzero(mark)
    y, x = (ys * mark[ys, xs]).sum() / mark.sum(), (xs * mark[ys, xs]).sum() / mark.sum()
    theta = np.deg2rad(p["degrees"])  # PIL turns counter-clockwise for positive angles; image y points down
    mx, my = int(cx) + r - cx, int(cy) - cy  # the mark's centre relative to the rotation centre
    ex, ey = cx + mx * np.cos(theta) + my * np.sin(theta), cy - mx * np.sin(theta) + my * np.cos(theta)
    assert abs(x - ex) < 1.0 and abs(y - ey) < 1.0, (p, (x, y), (ex, ey))
    assert 5 <= abs(p["degrees"]) <= 30


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_jpeg_is_a_round_trip_at_the_recorded_quality(src, seed):
    out, p = _apply("jpeg", src, seed)

    def at(quality: int) -> bytes:
        buf = io.BytesIO()
        src.save(buf, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB").tobytes()

    assert out.tobytes() == at(p["quality"])
    other = p["quality"] + 5 if p["quality"] <= 45 else p["quality"] - 5
    assert out.tobytes() != at(other)  # the quality recorded is the one that was used
    assert 10 <= p["quality"] <= 50


def test_downscale_loses_the_detail_of_the_recorded_factor_and_keeps_the_size(src):
    out, p = _apply("downscale", src, 0)
    assert out.size == src.size and p["factor"] == 0.25
    w, h = src.size
    small = (round(w * p["factor"]), round(h * p["factor"]))
    again = src.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    assert np.array_equal(np.asarray(out), np.asarray(again))
    half = src.resize((w // 2, h // 2), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    assert not np.array_equal(np.asarray(out), np.asarray(half))


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_pad_adds_the_recorded_black_border_around_the_untouched_image(src, seed):
    out, p = _apply("pad", src, seed)
    w, h = src.size
    a = np.asarray(out)
    if p["sides"] == "left/right":
        b = (out.width - w) // 2
        assert out.height == h and abs(b - w * p["border"]) <= 1
        inner, border = a[:, b : b + w], np.concatenate([a[:, :b], a[:, b + w :]], axis=1)
    else:
        b = (out.height - h) // 2
        assert out.width == w and abs(b - h * p["border"]) <= 1
        inner, border = a[b : b + h], np.concatenate([a[:b], a[b + h :]], axis=0)
    assert b > 0 and np.array_equal(inner, np.asarray(src)) and not border.any()


def _luma(a: np.ndarray) -> np.ndarray:
    return a.astype(float) @ [0.299, 0.587, 0.114]  # ITU-R 601, what PIL's "L" mode holds


@pytest.fixture(scope="module")
def mild() -> Image.Image:
    """Mid greys (luminance 95 +- 30) with strong colour (+- 25 per channel): no factor up to 1.4 clips a channel."""
    rng = np.random.default_rng(0)
    chroma = rng.uniform(-1, 1, (120, 160, 3))
    chroma -= _luma(chroma)[..., None]
    base = rng.uniform(-1, 1, (120, 160, 1)) * 30 + 95
    return Image.fromarray(np.clip(np.round(base + chroma * 25), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("seed", SEEDS)
def test_color_factors_measured_on_the_output_are_the_recorded_ones(mild, seed):
    """Brightness scales the mean luminance, contrast then the spread of luminance around it, saturation then the
    colour left after removing luminance: each factor is read back from the copy's pixels alone. Pillow's blend
    truncates, about half a level per step: the three steps lower the mean by ~1.5 (measured over 60 draws: errors
    within 0.005 / 0.031 / 0.028)."""
    out, p = _apply("color", mild, seed)
    a, b = np.asarray(mild).astype(float), np.asarray(out).astype(float)
    assert b.max() < 255 and b.min() > 0  # nothing clipped
    ya, yb = _luma(a), _luma(b)
    brightness = (yb.mean() + 1.5) / ya.mean()
    contrast = yb.std() / ya.std() / brightness
    ca, cb = a - ya[..., None], b - yb[..., None]
    ca, cb = ca - ca.mean((0, 1)), cb - cb.mean((0, 1))
    saturation = (ca * cb).sum() / (ca * ca).sum() / (brightness * contrast)
    measured = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
    for key, tolerance in (("brightness", 0.01), ("contrast", 0.035), ("saturation", 0.035)):
        assert measured[key] == pytest.approx(p[key], abs=tolerance), (key, measured, p)
    assert all(0.6 <= p[k] <= 1.4 for k in measured) and max(abs(p[k] - 1) for k in measured) >= 0.2


@pytest.mark.parametrize("seed", SEEDS)
def test_blur_is_pillows_gaussian_blur_at_the_recorded_radius(src, seed):
    out, p = _apply("blur", src, seed)
    a = np.asarray(out).astype(int)

    def diff(radius: float) -> float:
        return float(np.abs(a - np.asarray(src.filter(ImageFilter.GaussianBlur(radius))).astype(int)).mean())

    assert diff(p["radius"]) == 0  # exactly Pillow's blur at the radius recorded
    assert min(diff(p["radius"] * 0.8), diff(p["radius"] * 1.2)) > 0.3  # and clearly not at another
    assert 1.0 <= p["radius"] <= 3.0


@pytest.mark.parametrize("seed", SEEDS)
def test_overlay_bar_is_where_it_says_and_nothing_else_changes(src, seed):
    out, p = _apply("overlay", src, seed)
    top, bh = p["bar"]
    a, s = np.asarray(out).astype(int), np.asarray(src).astype(int)
    assert out.size == src.size and 0 <= top and top + bh <= src.height
    outside = np.ones(src.height, bool)
    outside[top : top + bh] = False
    assert np.array_equal(a[outside], s[outside])  # every row outside the recorded bar untouched
    bar = a[top : top + bh].reshape(-1, 3)
    assert (bar[:, 0] >= 200).all() and (bar[:, 1] == bar[:, 2]).all()  # white, red text, or their blend
    white = (bar == 255).all(axis=1)
    assert 0.5 < white.mean() < 1  # a white bar holding some text
    assert p["text"].startswith("© onnx-search ")
