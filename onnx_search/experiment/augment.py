"""Perturbed copies of dataset images, made in memory: the ground truth of a copy is its original.

Every transform takes a PIL image and a seeded generator and returns the new image with the parameters it
drew, so a copy can be explained and made again. ``make_copies`` draws each copy from its own generator
(seed, image index, transform index): the same seed gives byte-identical copies, whatever the models.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

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


@dataclass
class Copy:
    """One perturbed copy: where it came from, how it was made, its pixels."""

    original: Path
    transform: str
    params: dict
    image: Image.Image = field(repr=False)

    def describe(self) -> dict:
        return {"original": str(self.original), "transform": self.transform, "params": self.params}


def make_copies(
    originals: list[Path], transforms: list[str], seed: int, decode
) -> tuple[list[Copy], list[tuple[str, str]]]:
    """One copy of every original per transform; ``decode(path) -> RGB image``. Unreadable originals are
    returned with their reason, never raised."""
    copies, skipped = [], []
    for i, path in enumerate(originals):
        try:
            img = decode(path)
        except Exception as exc:  # noqa: BLE001 - reported, and the other originals go on
            skipped.append((str(path), f"original cannot be read: {exc}"))
            continue
        for j, name in enumerate(transforms):
            out, params = TRANSFORMS[name](img, np.random.default_rng([seed, i, j]))
            copies.append(Copy(path, name, params, out.convert("RGB")))
    return copies, skipped
