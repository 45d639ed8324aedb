"""Small text helpers shared by the report's tables and figures."""

from __future__ import annotations

from pathlib import Path


def fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def fmt_iv(iv: dict | None, digits: int = 3) -> str:
    """``0.950 [0.867, 1.000]``: a mean with its interval (evidence.interval's dict); ``–`` when there is none."""
    if not iv or iv.get("mean") is None:
        return "–"
    if iv.get("low") is None or iv.get("high") is None:
        return fmt(float(iv["mean"]), digits)
    if iv.get("note"):  # no spread to resample (all values equal, one unit): the reason, not a zero-width interval
        return f"{iv['mean']:.{digits}f} ({iv['note']})"
    return f"{iv['mean']:.{digits}f} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def num(x: float, digits: int = 3) -> str:
    """A number with ``digits`` decimals, never ``-0.000``."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def pair_interval(iv: dict) -> str:
    """A pair's difference interval as written in every report: ``[-0.050, 0.120]``; cut at 0 where only Holm's
    step-down separates the pair (``open_at_zero``, the sign is the claim), open there and closed at its other end:
    ``(0, 0.120]`` for a positive difference, ``[-0.120, 0)`` for a negative one; ``(all equal)`` where there is no
    spread to resample."""
    if iv.get("note"):
        return f"({iv['note']})"
    low, high = num(iv["low"]), num(iv["high"])
    if iv.get("open_at_zero"):
        return f"(0, {high}]" if iv["mean"] > 0 else f"[{low}, 0)"
    return f"[{low}, {high}]"


def holm_intervals_note(levels: dict[str, float | None]) -> str:
    """What the Holm-consistent pair intervals are; ``levels``: the confidence of the pairs Holm does not separate,
    by metric title."""
    conf = "; ".join(f"{m} {100 * c:.2f}%" for m, c in levels.items() if c is not None)
    conf = f" (confidence: {conf})" if conf else ""
    return (
        "Intervals agree with the decisions and hold together (simultaneous): each is the sign-flip test "
        f"inverted, at 0.05/a for the a pairs of the metric Holm does not separate{conf}, at 0.05/m (Bonferroni "
        "over all m pairs) for those it separates, open at 0 — (0, …] or […, 0) — where only Holm's step-down "
        "separates them. An interval leaves out 0 exactly when the pair is significant; one reaching ±1 has too few "
        "queries to bound the difference."
    )


ALPHA = 0.05  # the tests' level (evidence.ALPHA): no p on either side of it is printed as it


def fmt_p(p: float | None, alpha: float = ALPHA) -> str:
    """A p-value as text, the one rule of summary.md, report.html and the console: ``< 0.001``; three decimals
    below 0.01 (``0.003``); three significant digits from 0.01 to 0.1 (``0.0496``, ``0.0504``, ``0.04``), more where
    those would read as ``alpha`` itself (``0.04996``), ``< alpha`` or ``> alpha`` where even six would; two
    decimals above (``0.75``), ``1.0`` from 0.995. A p that is not ``alpha`` never prints as ``alpha``."""
    if p is None:
        return "–"
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    if p < 0.1:
        for digits in range(3, 7):
            text = f"{p:.{digits}g}"
            if p == alpha or float(text) != alpha:
                return text
        return f"< {alpha}" if p < alpha else f"> {alpha}"
    return "1.0" if p >= 0.995 else f"{p:.2f}"


def one_model(verdict: dict) -> bool:
    """Whether the verdict is on a single model (no pairs, nothing tested); runs saved before ``pairs_tested`` was
    recorded for them are told by their means."""
    if verdict.get("best") is None:
        return False
    return verdict.get("pairs_tested") == 0 or ("pairs_tested" not in verdict and len(verdict.get("means") or {}) == 1)


def relative(path: str, root: str | None) -> str:
    """``path`` relative to the dataset root when inside it (file names alone are ambiguous), else as is."""
    if root:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            pass
    return path


def index_text(info: dict) -> str:
    """``HNSW COSINE {'M': 16, ...}`` from Milvus' index description."""
    params = {k: v for k, v in info.items() if k not in ("field_name", "index_name", "index_type", "metric_type")}
    return " ".join(str(x) for x in (info.get("index_type", "?"), info.get("metric_type", ""), params or "") if x)
