"""Real embeddings for the scale figures: augmented package photos embedded once by the trained Lite0, kept on disk.

Each image is one of the photos scikit-image/Matplotlib ship (``onnx_search.photos``) with a seeded random
augmentation: a random-resized crop (area 8-100% of the photo, aspect 3:4-4:3), a horizontal flip (p 0.5), and a
colour shift (brightness, contrast and saturation each x0.6-1.4, hue rotated by up to +-0.1 of the circle).
The vectors (float32, unit rows) and a JSON that says how they were made are written to ``work``; a later run
with the same settings reuses them instead of embedding again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from ..embed.images import embed_images
from ..models.session import ModelSession, SessionConfig
from ..photos import available_photos

log = logging.getLogger(__name__)

AUGMENTATION = (
    "random-resized crop (area 0.08-1.0 of the photo, aspect 3/4-4/3), horizontal flip p=0.5, brightness, "
    "contrast and saturation each x U(0.6, 1.4), hue shifted by U(-0.1, 0.1) of the circle; seeded per image"
)


def _hue_shift(img: Image.Image, shift: float) -> Image.Image:
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(shift * 255))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def augment(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One seeded random view of ``photo`` (see AUGMENTATION), at most 320 px on its long side."""
    w, h = photo.size
    for _ in range(10):
        area = w * h * rng.uniform(0.08, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 8 <= cw <= w and 8 <= ch <= h:
            break
    else:
        cw, ch = w, h
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = photo.crop((x0, y0, x0 + cw, y0 + ch))
    if max(img.size) > 320:
        img.thumbnail((320, 320), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.4))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4))
    return _hue_shift(img, rng.uniform(-0.1, 0.1))


def source_photos() -> list[tuple[str, Image.Image]]:
    """The package photos as RGB images (grey ones made RGB, transparency on white)."""
    from ..embed.decode import _to_rgb

    return [(p.name, _to_rgb(Image.open(path))) for p, path in available_photos()]


def real_vectors(
    model_path: Path, work: Path, n: int = 10_000, seed: int = 0, batch: int = 64
) -> tuple[np.ndarray, dict]:
    """``n`` unit vectors of augmented package photos embedded by ``model_path``, cached in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    photos = source_photos()
    session = ModelSession(model_path, SessionConfig(["cpu"]))
    info = {
        "model": session.meta.get("name", model_path.stem),
        "model_sha256": session.sha256,
        "weights": session.meta.get("weights"),
        "images": n,
        "seed": seed,
        "photos": [name for name, _ in photos],
        "augmentation": AUGMENTATION,
    }
    info["model_identity"] = session.identity  # graph, weights, recipe: a re-conversion keeps the cache
    key = f"{info['model']}_{n}_{seed}_{session.identity[:10]}"
    vec_file, info_file = work / f"vectors_{key}.npy", work / f"vectors_{key}.json"
    if vec_file.is_file() and info_file.is_file():
        return np.load(vec_file), json.loads(info_file.read_text())
    rng = np.random.default_rng(seed)
    name = info["model"]
    chunks, labels, t0 = [], [], time.perf_counter()
    for start in range(0, n, batch):
        picks = rng.integers(0, len(photos), min(batch, n - start))
        views = [augment(photos[int(i)][1], np.random.default_rng((seed, start + k))) for k, i in enumerate(picks)]
        chunks.append(embed_images({name: session}, views, batch_size=batch)[name])
        labels += [int(i) for i in picks]
        if (start // batch) % 10 == 0:
            log.info("embedded %d/%d (%.0f s)", start + len(picks), n, time.perf_counter() - t0)
            print(f"embedded {start + len(picks)}/{n} ({time.perf_counter() - t0:.0f} s)", flush=True)
    vectors = np.concatenate(chunks).astype(np.float32)
    info["embed_s"] = round(time.perf_counter() - t0, 1)
    info["photo_index"] = labels
    np.save(vec_file.with_suffix(".partial.npy"), vectors)
    vec_file.with_suffix(".partial.npy").replace(vec_file)
    info_file.write_text(json.dumps(info))
    return vectors, info


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    v, meta = real_vectors(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 10_000)
    print(v.shape, meta["embed_s"])
