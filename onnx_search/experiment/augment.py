"""Perturbed copies of dataset images, made in memory: the ground truth of a copy is its original.

Every transform takes a PIL image and a seeded generator and returns the new image with the parameters it
drew, so a copy can be explained and made again. ``make_copies`` draws each copy from its own generator
(seed, image index, transform index): the same seed gives byte-identical copies, whatever the models.

The scale a copy is made at (``copy_source``): the original is decoded (JPEG draft decoding) and shrunk so that
its shorter side is at most ``COPY_SIDE_FACTOR`` (2) times the largest side any model of the run resizes to
before its crop (``needed_side``: 256 for a 224 model, so 512), and its longer side at most
``MAX_RESIZE_AREA_RATIO`` times that; a smaller original is kept as it is. Memory per copy then follows the
models' input, never the camera's, and the transforms act at one known scale whatever the camera: a blur radius,
a crop box or a quarter-size downscale mean the same on a 12 MP photo as on a 0.3 MP one, and a crop that keeps
half the area still holds more pixels than the model's input.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from ..embed.decode import MAX_RESIZE_AREA_RATIO, decode, needed_side, read_bytes

COPY_SIDE_FACTOR = 2  # a copy's source: shorter side at most this many times the largest side a model resizes to

Transform = Callable[[Image.Image, np.random.Generator], tuple[Image.Image, dict]]


def crop(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A random crop keeping 50-90% of the area (aspect ratio within 3:4..4:3 of the original's)."""
    w, h = img.size
    area = float(rng.uniform(0.5, 0.9))
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    cw = int(min(w, round(w * np.sqrt(area * aspect))))
    ch = int(min(h, round(h * area * w / max(cw, 1))))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((left, top, left + cw, top + ch)), {"area": round(cw * ch / (w * h), 3), "box": [left, top, cw, ch]}


def rotate(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Rotation by 5-30 degrees either way, same canvas, corners filled with grey."""
    deg = float(rng.uniform(5, 30) * rng.choice([-1, 1]))
    return img.rotate(deg, resample=Image.BILINEAR, fillcolor=(128, 128, 128)), {"degrees": round(deg, 2)}


def hflip(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    return ImageOps.mirror(img), {}


def color(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Brightness, contrast and saturation each scaled by 0.6-1.4 (never all three near 1)."""
    f = rng.uniform(0.6, 1.4, 3)
    if np.abs(f - 1).max() < 0.2:
        f[int(rng.integers(0, 3))] = 1.3
    f = np.round(f, 3)  # the factors applied are the ones recorded
    out = ImageEnhance.Brightness(img).enhance(f[0])
    out = ImageEnhance.Contrast(out).enhance(f[1])
    out = ImageEnhance.Color(out).enhance(f[2])
    return out, {"brightness": float(f[0]), "contrast": float(f[1]), "saturation": float(f[2])}


def blur(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    radius = round(float(rng.uniform(1.0, 3.0)), 2)  # the radius applied is the one recorded
    return img.filter(ImageFilter.GaussianBlur(radius)), {"radius": radius}


def jpeg(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Re-compression at quality 10-50."""
    quality = int(rng.integers(10, 51))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), {"quality": quality}


def downscale(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Down to a quarter of each side and back up (detail lost, size kept)."""
    w, h = img.size
    small = img.resize((max(1, w // 4), max(1, h // 4)), Image.BILINEAR)
    return small.resize((w, h), Image.BILINEAR), {"factor": 0.25}


def grayscale(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    return ImageOps.grayscale(img).convert("RGB"), {}


def overlay(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A caption bar with text, as a watermark or logo would sit on a photo: ``bar`` [top, height] is exactly the
    rows it covers (full width); the text is clipped to it."""
    w, h = img.size
    out = img.copy()
    bh = min(h, max(8, int(h * rng.uniform(0.1, 0.2))))
    top = int(rng.integers(0, h - bh + 1))
    bar = Image.new("RGB", (w, bh), (255, 255, 255))
    text = f"© onnx-search {int(rng.integers(1000, 9999))}"
    ImageDraw.Draw(bar).text((4, bh // 4), text, fill=(200, 0, 0))
    out.paste(bar, (0, top))
    return out, {"text": text, "bar": [top, bh]}


def pad(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Letterbox: a black border of 10-30% of the size on two opposite sides."""
    w, h = img.size
    frac = float(rng.uniform(0.1, 0.3))
    horizontal = bool(rng.integers(0, 2))
    pw, ph = (int(w * frac), 0) if horizontal else (0, int(h * frac))
    out = Image.new("RGB", (w + 2 * pw, h + 2 * ph), (0, 0, 0))
    out.paste(img, (pw, ph))
    return out, {"border": round(frac, 3), "sides": "left/right" if horizontal else "top/bottom"}


def identity(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """No change (a check: every model must find every original at rank 1)."""
    return img.copy(), {}


TRANSFORMS: dict[str, Transform] = {
    f.__name__: f for f in (crop, rotate, hflip, color, blur, jpeg, downscale, grayscale, overlay, pad, identity)
}
DEFAULT_TRANSFORMS = ("crop", "rotate", "hflip", "color", "blur", "jpeg", "downscale", "grayscale", "overlay", "pad")


def copy_side(geometries: list[tuple]) -> int:
    """The shorter side copies are made at: ``COPY_SIDE_FACTOR`` x the largest side any geometry resizes to."""
    return COPY_SIDE_FACTOR * max(needed_side(g) for g in geometries)


def bounded(img: Image.Image, side: int) -> Image.Image:
    """``img`` shrunk (antialiased) so its shorter side is at most ``side`` and its longer at most
    ``MAX_RESIZE_AREA_RATIO * side``, aspect ratio kept; an image already within both is returned as it is."""
    w, h = img.size
    scale = min(1.0, side / min(w, h), MAX_RESIZE_AREA_RATIO * side / max(w, h))
    if scale >= 1.0:
        return img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def copy_source(data: bytes, side: int | None) -> Image.Image:
    """The image copies of an original are made from: decoded at the JPEG draft scale that still covers ``side``
    per side, EXIF orientation applied, then ``bounded`` by ``side`` (the full decode when ``side`` is None)."""
    img = decode(data, draft_size=side)
    return bounded(img, side) if side else img


def make_copy(img: Image.Image, transform: str, seed: int, index: int, position: int) -> tuple[Image.Image, dict]:
    """Copy ``position`` (the transform's place in the run's list) of original ``index`` (its place in the
    sample), drawn from its own generator (seed, index, position): the same arguments give the same bytes."""
    out, params = TRANSFORMS[transform](img, np.random.default_rng([seed, index, position]))
    return out.convert("RGB"), params


@dataclass
class Copy:
    """One perturbed copy: where it came from, how it was made, and its pixels (``pixels``, or made again from the
    original on demand when ``source`` = (seed, index, position, side) says how)."""

    original: Path
    transform: str
    params: dict
    pixels: Image.Image | None = field(default=None, repr=False)
    source: tuple[int, int, int, int | None] | None = None

    @property
    def image(self) -> Image.Image:
        """The copy's pixels: those kept, else made again (never kept, so a list of copies holds no images)."""
        if self.pixels is not None:
            return self.pixels
        if self.source is None:
            raise ValueError(f"copy {self.transform} of {self.original} keeps no pixels and no way to remake them")
        seed, index, position, side = self.source
        return make_copy(copy_source(read_bytes(self.original), side), self.transform, seed, index, position)[0]

    def describe(self) -> dict:
        return {"original": str(self.original), "transform": self.transform, "params": self.params}


def make_copies(
    originals: list[Path], transforms: list[str], seed: int, decode
) -> tuple[list[Copy], list[tuple[str, str]]]:
    """One copy of every original per transform, pixels kept; ``decode(path) -> RGB image``. Unreadable originals
    are returned with their reason, never raised. (A run makes its copies in bounded batches instead:
    ``experiment.augmented``.)"""
    copies, skipped = [], []
    for i, path in enumerate(originals):
        try:
            img = decode(path)
        except Exception as exc:  # noqa: BLE001 - reported, and the other originals go on
            skipped.append((str(path), f"original cannot be read: {exc}"))
            continue
        for j, name in enumerate(transforms):
            out, params = make_copy(img, name, seed, i, j)
            copies.append(Copy(path, name, params, out))
    return copies, skipped
