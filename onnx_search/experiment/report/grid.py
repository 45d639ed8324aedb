"""Side-by-side result grids (PNG): the query, then each model's top-k with cosine and label."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ...embed.decode import decode, read_bytes
from ...errors import DecodeError
from ..compare import rankings
from .format import relative

THUMB = 112
TITLE_H = 26


def short_name(model: str) -> str:
    """A model name that fits a thumbnail's title and stays distinct (torchvision/vgg16 -> tv/vgg16)."""
    return model.replace("torchvision/", "tv/")[:14]


def _thumb(path: str) -> Image.Image:
    try:
        img = decode(read_bytes(path), draft_size=THUMB)
        img.thumbnail((THUMB, THUMB))
    except DecodeError:
        img = Image.new("RGB", (THUMB, THUMB), (200, 60, 60))
    canvas = Image.new("RGB", (THUMB, THUMB), (240, 240, 240))
    canvas.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return canvas


def result_grid(
    hits: list[dict], queries: list[str], models: list[str], top_k: int, out: Path, root: str | None = None
) -> Path:
    """One row per query: the query image, then each model's top-k with cosine in the titles."""
    ranked = rankings(hits)
    cols = 1 + len(models) * top_k
    gap = 8
    w = cols * THUMB + len(models) * gap
    h = len(queries) * (THUMB + TITLE_H)
    grid = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for r, q in enumerate(queries):
        y = r * (THUMB + TITLE_H)
        grid.paste(_thumb(q), (0, y + TITLE_H))
        draw.text((2, y + 2), f"Q {relative(q, root)}"[-20:], fill="black", font=font)
        draw.text((2, y + 13), f"[{Path(q).parent.name}]"[:20], fill="darkred", font=font)
        for mi, m in enumerate(models):
            for k, hit in enumerate(ranked.get(q, {}).get(m, [])[:top_k]):
                x = (1 + mi * top_k + k) * THUMB + (mi + 1) * gap
                grid.paste(_thumb(hit["path"]), (x, y + TITLE_H))
                draw.text((x + 2, y + 1), f"{short_name(m)} #{hit['rank']}", fill="navy", font=font)
                draw.text((x + 2, y + 13), f"cos {hit['cosine']:.3f} {hit['label'][:8]}", fill="black", font=font)
    grid.save(out)
    return out
