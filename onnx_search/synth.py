"""A labelled image set generated locally (no download): each class a distinct visual pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circles", "stripes", "checkers", "gradient", "triangles", "noise")


def _pattern(cls: str, rng: np.random.Generator, size: int) -> Image.Image:
    hue = rng.uniform(0, 1, 3)
    bg = tuple(int(v) for v in (hue * 120 + 60))
    fg = tuple(int(v) for v in (255 - hue * 180))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    if cls == "circles":
        for _ in range(rng.integers(3, 8)):
            x, y, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 12, size // 4))]
            d.ellipse((x - r, y - r, x + r, y + r), fill=fg)
    elif cls == "stripes":
        step = int(rng.integers(size // 16, size // 6))
        for x in range(0, size, 2 * step):
            d.rectangle((x, 0, x + step, size), fill=fg)
        img = img.rotate(float(rng.uniform(-30, 30)), fillcolor=bg)
    elif cls == "checkers":
        step = int(rng.integers(size // 12, size // 5))
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    d.rectangle((x, y, x + step, y + step), fill=fg)
    elif cls == "gradient":
        t = np.linspace(0, 1, size)[None, :, None] * np.ones((size, 1, 1))
        if rng.random() < 0.5:
            t = t.transpose(1, 0, 2)
        arr = (np.array(bg) * (1 - t) + np.array(fg) * t).astype(np.uint8)
        img = Image.fromarray(arr)
    elif cls == "triangles":
        for _ in range(rng.integers(2, 6)):
            pts = [tuple(rng.integers(0, size, 2).tolist()) for _ in range(3)]
            d.polygon(pts, fill=fg)
    else:
        arr = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize((size, size), Image.NEAREST)
    noise = rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float64) + noise, 0, 255).astype(np.uint8))


def generate_labelled_set(
    root: str | Path, per_class: int = 8, classes=CLASSES, size: int = 160, seed: int = 0
) -> list[Path]:
    """Write ``root/<class>/<class>_<i>.jpg`` deterministically; existing identical files are left alone."""
    rng = np.random.default_rng(seed)
    written = []
    for cls in classes:
        folder = Path(root) / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = _pattern(cls, rng, size)
            p = folder / f"{cls}_{i:03d}.jpg"
            if not p.exists():
                img.save(p, quality=90)
            written.append(p)
    return written


def generate_demo_set(root: str | Path, per_class: int = 8, size: int = 160, seed: int = 0) -> int:
    """The demo's images: the labelled synthetic set plus the package-shipped real photos in ``photos/``.

    Returns how many real photos it holds.
    """
    from .photos import copy_photos

    generate_labelled_set(root, per_class=per_class, size=size, seed=seed)
    return len(copy_photos(Path(root) / "photos"))
