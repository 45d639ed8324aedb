"""Pieces of the HTML report: shared thumbnails as CSS classes, inline SVG histograms, a heat-map table."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image, ImageDraw

from ...embed.decode import decode, read_bytes
from ...errors import DecodeError

THUMB_BUDGET_BYTES = 7_000_000  # all thumbnails together; the page must stay under 10 MB


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def _placeholder(size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), (225, 225, 225))
    d = ImageDraw.Draw(img)
    d.line((0, 0, size, size), fill=(170, 170, 170), width=2)
    d.line((0, size, size, 0), fill=(170, 170, 170), width=2)
    d.text((4, size // 2 - 5), "missing", fill=(120, 0, 0))
    return img


def _thumb_bytes(path: str, size: int, quality: int) -> tuple[bytes, bool]:
    """A JPEG thumbnail of ``path``, or of a placeholder when the file is gone or unreadable."""
    try:
        img = decode(read_bytes(path), draft_size=size)
        img.thumbnail((size, size))
        ok = True
    except (DecodeError, OSError):
        img, ok = _placeholder(size), False
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue(), ok


def thumbnail_css(paths: dict[int, str]) -> tuple[str, set[int]]:
    """One CSS rule per image id (``.i<id>``), each thumbnail embedded once however often it is shown; the size
    shrinks until all fit the budget. Returns the CSS and the ids whose file could not be read."""
    for size, quality in ((72, 70), (56, 60), (40, 50)):
        rules, missing, total = [], set(), 0
        for i, p in sorted(paths.items()):
            data, ok = _thumb_bytes(p, size, quality)
            if not ok:
                missing.add(i)
            b64 = base64.b64encode(data).decode()
            total += len(b64)
            rules.append(f".i{i}{{background-image:url(data:image/jpeg;base64,{b64})}}")
        if total <= THUMB_BUDGET_BYTES:
            break
    return "\n".join(rules), missing


def svg_histograms(series: dict[str, list[float]], title: str, width: int = 520, height: int = 170) -> str:
    """Overlaid histograms (one colour per model) as inline SVG, with a legend and the value range."""
    vals = [v for vs in series.values() for v in vs]
    if not vals:
        return ""
    lo, hi = float(min(vals)), float(max(vals))
    hi = hi if hi > lo else lo + 1e-6
    bins = np.linspace(lo, hi, 31)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    counts = {m: np.histogram(v, bins)[0] for m, v in series.items()}
    top = max(int(c.max()) for c in counts.values()) or 1
    pw, ph = width - 20, height - 50
    per_row = max(1, (width - 10) // 170)  # legend entries per line; more models wrap onto further lines
    extra = 14 * ((len(counts) - 1) // per_row)
    parts = [f'<svg class="hist" width="{width}" height="{height + extra}" role="img" aria-label="{esc(title)}">']
    parts.append(f'<text x="10" y="14" font-size="12">{esc(title)}</text>')
    for k, (m, c) in enumerate(counts.items()):
        col = colors[k % len(colors)]
        bw = pw / len(c)
        for j, n in enumerate(c):
            if n:
                h = ph * n / top
                parts.append(f'<rect x="{10 + j * bw:.1f}" y="{20 + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                             f'fill="{col}" fill-opacity="0.45"/>')  # fmt: skip
        lx, ly = 10 + (k % per_row) * 170, height + 14 * (k // per_row)
        parts.append(f'<rect x="{lx}" y="{ly - 14}" width="10" height="10" fill="{col}"/>')
        parts.append(f'<text x="{lx + 14}" y="{ly - 5}" font-size="11">{esc(m)}</text>')
    parts.append(f'<text x="10" y="{height - 20}" font-size="10">{lo:.3f}</text>')
    parts.append(f'<text x="{width - 50}" y="{height - 20}" font-size="10">{hi:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(models: list[str], pairs: dict, key: str, title: str, intervals: dict | None = None) -> str:
    """A model x model table whose cells are coloured by ``key`` (overlap@k or RBO); readable without JS.

    ``intervals``: "a|b" -> key -> {"mean","low","high"} (evidence["agreement"]): each cell shows its 95% interval.
    """
    cells = ["<table class='heat'><caption>" + esc(title) + "</caption><tr><th></th>"]
    cells += [f"<th>{esc(m)}</th>" for m in models] + ["</tr>"]
    for a in models:
        cells.append(f"<tr><th>{esc(a)}</th>")
        for b in models:
            v = 1.0 if a == b else (pairs.get(f"{a}|{b}") or pairs.get(f"{b}|{a}") or {}).get(key)
            if v is None:
                cells.append("<td>–</td>")
                continue
            shade = int(255 - 155 * max(0.0, min(1.0, v)))
            iv = (intervals or {}).get(f"{a}|{b}", (intervals or {}).get(f"{b}|{a}", {})).get(key) if a != b else None
            text = f"{v:.2f}" + (f"<span class='ci'>[{iv['low']:.2f}, {iv['high']:.2f}]</span>" if iv else "")
            cells.append(f"<td style='background:rgb({shade},{shade + 20 if shade < 235 else 255},255)'>{text}</td>")
        cells.append("</tr>")
    return "".join(cells) + "</table>"
