"""Side-by-side result grids (PNG): the query, then each model's top-k with cosine (and label, when the run has
labels). Each model's full name heads its columns, wrapped to their width."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ...embed.decode import decode, read_bytes
from ...errors import DecodeError
from ..compare import rankings
from .format import relative

THUMB = 112
LINE_H = 12
GAP = 8


@dataclass(frozen=True)
class Text:
    x: int
    y: int
    text: str
    fill: str


def short_name(model: str) -> str:
    """A model name that fits a thumbnail's title and stays distinct (torchvision/vgg16 -> tv/vgg16)."""
    return model.replace("torchvision/", "tv/")[:14]


def wrap_name(name: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``name`` whole, in lines no wider than ``width``: broken after / - _ . where it can, else anywhere."""
    pieces = [p for p in re.split(r"(?<=[/_.\-])", name) if p]
    lines: list[str] = []
    line = ""
    for piece in pieces:
        if measure(line + piece) <= width:
            line += piece
            continue
        if line:
            lines.append(line)
            line = ""
        for ch in piece:  # a piece wider than the column is cut where it must be
            if line and measure(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    return [*lines, line] if line else lines


def query_title(query: str, root: str | None, label: str, labels: bool) -> list[str]:
    """The lines above a query's thumbnail: its path (the end of it, when long) and its label if the run has
    labels and the query one."""
    path = f"Q {relative(query, root)}"
    lines = [path if len(path) <= 20 else "…" + path[-19:]]
    if labels and label:
        lines.append(label[:20])
    return lines


def hit_title(hit: dict, labels: bool) -> list[str]:
    """The lines above a hit's thumbnail: rank and cosine, then its label if the run has labels and it one."""
    lines = [f"#{hit['rank']} cos {hit['cosine']:.3f}"]
    label = hit.get("label") or ""
    if labels and label:
        lines.append(label[:18])
    return lines


def layout(
    hits: list[dict],
    queries: list[str],
    models: list[str],
    top_k: int,
    root: str | None,
    labels: bool,
    query_labels: dict[str, str] | None,
    measure: Callable[[str], float],
) -> tuple[int, int, list[Text], list[tuple[int, int, str]]]:
    """Width, height, every text drawn and every thumbnail pasted (x, y, path) of the grid."""
    ranked = rankings(hits)
    query_labels = query_labels or {}
    block = top_k * THUMB
    heads = [wrap_name(m, block - 4, measure) for m in models]
    head_h = LINE_H * max((len(h) for h in heads), default=1) + 4
    title_h = LINE_H * (2 if labels else 1) + 4
    row_h = title_h + THUMB
    texts: list[Text] = []
    thumbs: list[tuple[int, int, str]] = []
    x0 = [THUMB + (mi + 1) * GAP + mi * block for mi in range(len(models))]
    for mi, lines in enumerate(heads):
        texts += [Text(x0[mi] + 2, 2 + n * LINE_H, line, "navy") for n, line in enumerate(lines)]
    for r, q in enumerate(queries):
        y = head_h + r * row_h
        thumbs.append((0, y + title_h, q))
        texts += [
            Text(2, y + 2 + n * LINE_H, t, "darkred" if n else "black")
            for n, t in enumerate(query_title(q, root, query_labels.get(q, ""), labels))
        ]
        for mi, m in enumerate(models):
            for k, hit in enumerate(ranked.get(q, {}).get(m, [])[:top_k]):
                x = x0[mi] + k * THUMB
                thumbs.append((x, y + title_h, hit["path"]))
                texts += [Text(x + 2, y + 2 + n * LINE_H, t, "black") for n, t in enumerate(hit_title(hit, labels))]
    width = THUMB + len(models) * (GAP + block)
    return width, head_h + len(queries) * row_h, texts, thumbs


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
    hits: list[dict],
    queries: list[str],
    models: list[str],
    top_k: int,
    out: Path,
    root: str | None = None,
    labels: bool = False,
    query_labels: dict[str, str] | None = None,
) -> Path:
    """One row per query: the query image, then each model's top-k under the model's full name, with cosine (and
    labels only when the run has them: ``labels``, ``query_labels`` query -> label)."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    w, h, texts, thumbs = layout(
        hits, queries, models, top_k, root, labels, query_labels, lambda s: probe.textlength(s, font=font)
    )
    grid = Image.new("RGB", (w, h), "white")
    for x, y, path in thumbs:
        grid.paste(_thumb(path), (x, y))
    draw = ImageDraw.Draw(grid)
    for t in texts:
        draw.text((t.x, t.y), t.text, fill=t.fill, font=font)
    grid.save(out)
    return out
