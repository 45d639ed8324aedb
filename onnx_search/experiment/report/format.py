"""Small text helpers shared by the report's tables and figures."""

from __future__ import annotations

from pathlib import Path


def fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


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
