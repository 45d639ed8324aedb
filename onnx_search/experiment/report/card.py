"""The query card's markup and style, in one place: the static report uses it, and so can anything built later on
the same cards (an explorer page can inline ``CARD_CSS`` and emit the same elements).

A card is a query thumbnail, then one row per model: the model's name and its hits. A hit is a thumbnail over a
caption (label, cosine) that always fits the hit's width: long labels wrap at their separators and are cut with an
ellipsis after three lines; the full caption is the caption's title (shown on hover), the image path the hit's.
"""

from __future__ import annotations

import re

from .html_parts import esc

HIT_WIDTH_PX = 84
LABEL_LINES = 3

CARD_CSS = f"""
.card{{border:1px solid #ddd;border-radius:6px;padding:8px;margin:10px 0}}.card h3{{margin:0 0 6px;font-size:13px}}
.row{{display:flex;align-items:flex-start;gap:4px;margin:4px 0}}
.mname{{flex:0 0 150px;width:150px;font-size:12px;font-weight:bold;overflow-wrap:anywhere}}
.hit{{flex:0 0 {HIT_WIDTH_PX}px;width:{HIT_WIDTH_PX}px;min-width:0;overflow:hidden;font-size:10px;line-height:12px;
text-align:center}}
.th{{display:block;width:72px;height:72px;background-size:contain;background-repeat:no-repeat;
background-position:center;background-color:#eee;margin:3px auto}}.q .th{{width:96px;height:96px}}
.q{{flex-basis:104px;width:104px}}
.cap{{display:block;max-width:100%}}.cap .lbl{{display:-webkit-box;-webkit-box-orient:vertical;
-webkit-line-clamp:{LABEL_LINES};overflow:hidden;overflow-wrap:anywhere;max-height:{12 * LABEL_LINES}px}}
.cap .cos{{display:block;color:#555}}
.shared{{outline:3px solid #2a9d2a}}.missing{{outline:2px dashed #b00020}}
"""


def breakable(label: str) -> str:
    """``label`` escaped, with a line-break opportunity after each separator (``__``, ``_``, ``-``, ``/``, ``.``)."""
    return re.sub(r"(__|[-_/.])", r"\1<wbr>", esc(label))


def hit_html(image_id: int, path: str, label: str, cosine: float, frame: str = "") -> str:
    """One hit: thumbnail (``frame``: extra classes such as ``shared``/``missing``) over its caption."""
    caption = f"{label} {cosine:.3f}".strip()
    return (
        f"<div class='hit' title='{esc(path)}'><span class='th i{image_id}{frame}'></span>"
        f"<span class='cap' title='{esc(caption)}'><span class='lbl'>{breakable(label)}</span>"
        f"<span class='cos'>{cosine:.3f}</span></span></div>"
    )


def query_html(image_id: int, frame: str = "") -> str:
    """The card's first row: the query's own thumbnail."""
    return f"<div class='row'><div class='hit q'><span class='th i{image_id}{frame}'></span>query</div></div>"


def model_row_html(model: str, hits: list[str]) -> str:
    """One model's row of hits (``hits``: from :func:`hit_html`); ``data-model`` lets a page filter rows."""
    return f"<div class='row' data-model='{esc(model)}'><div class='mname'>{esc(model)}</div>{''.join(hits)}</div>"


def card_html(title: str, rows: list[str], data: dict[str, object]) -> str:
    """A whole card: ``title`` (HTML), the rows, and ``data-*`` attributes used to sort and filter cards."""
    attrs = " ".join(f"data-{k}='{esc(v)}'" for k, v in data.items())
    return f"<div class='card' {attrs}><h3>{title}</h3>{''.join(rows)}</div>"
