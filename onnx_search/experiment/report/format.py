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
