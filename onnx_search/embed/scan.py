"""Walk an image folder: extensions case-insensitive, symlinks followed once, loops detected; image files no
decoder here reads (HEIC without pillow-heif, camera raw, ...) are listed as skipped with the reason."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFolderError
from .formats import DEFAULT_EXTENSIONS, UNREAD_FORMATS, missing_decoder

__all__ = ["DEFAULT_EXTENSIONS", "ScanResult", "scan_folder"]


@dataclass
class ScanResult:
    """Files to embed (resolved, sorted, unique) and what the walk skipped, with reasons."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # includes links merged with their target


def _norm_exts(extensions) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


def scan_folder(root: str | Path, extensions=DEFAULT_EXTENSIONS, recursive: bool = True) -> ScanResult:
    """List image files under ``root``; each real directory is visited once, so loops end."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputFolderError(f"image folder {root} does not exist or is not a directory")
    exts = _norm_exts(extensions)
    result = ScanResult()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[Path, Path] = {}  # resolved file -> the path it was first found under
    stack = [root.absolute()]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
        except OSError as exc:
            result.skipped.append((str(d), f"cannot open folder: {exc.strerror or exc}"))
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:
            result.skipped.append((str(d), "symlink loop or folder already visited; not followed again"))
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            result.skipped.append((str(d), f"cannot list folder: {exc.strerror or exc}"))
            continue
        for e in entries:
            p = Path(e.path)
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError as exc:  # ELOOP on a self-referencing link, for example
                result.skipped.append((str(p), f"cannot follow: {exc.strerror or exc}"))
                continue
            if is_dir:
                if p.suffix.lower() in exts:
                    result.skipped.append((str(p), "is a directory, not an image file"))
                if recursive:
                    stack.append(p)
                continue
            ext = p.suffix.lower()
            if ext not in exts and ext not in UNREAD_FORMATS:
                continue
            if why := missing_decoder(ext):
                result.skipped.append((str(p), why))
                continue
            if e.is_symlink() and not p.exists():
                result.skipped.append((str(p), "broken symlink: its target does not exist"))
                continue
            real = p.resolve()
            if real in seen_files:  # two paths to one file are one image (one id): say so
                result.skipped.append(_merged(p, seen_files[real], real))
                continue
            seen_files[real] = p
            result.files.append(real)
    result.files.sort()
    return result


def _merged(path: Path, first: Path, real: Path) -> tuple[str, str]:
    """The skipped entry for a second path to an already listed file, naming the link and what it duplicates."""
    link, other = (path, first) if path.is_symlink() or not first.is_symlink() else (first, path)
    return (str(link), f"merged: the same file as {other} (resolves to {real}); catalogued once, under {real}")
