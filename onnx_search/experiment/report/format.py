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


def fmt_p(p: float | None) -> str:
    """A p-value as text: ``< 0.001``, ``0.003``, ``0.04``, ``0.75``, ``1.0``."""
    if p is None:
        return "–"
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return "1.0" if p >= 0.995 else f"{p:.2f}"


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
