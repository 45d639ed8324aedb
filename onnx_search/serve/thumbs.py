"""JPEG thumbnails and previews of catalogued images, made once per (id, content hash) and kept on disk."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from PIL import Image

from ..embed.decode import decode, read_bytes

THUMB_SIDE = 160
PREVIEW_SIDE = 1024


def jpeg_bytes(img: Image.Image, side: int, quality: int = 82) -> bytes:
    """``img`` shrunk to fit ``side`` x ``side`` (never enlarged), as JPEG."""
    img = img.copy()
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class ThumbCache:
    """``folder/<side>/<id>-<sha>.jpg``: a changed file (new content hash) gets a new thumbnail."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self.made = 0  # thumbnails decoded and written by this process (the rest came from disk)

    def get(self, image_id: int, sha: str, path: str, side: int = THUMB_SIDE) -> bytes:
        """The cached JPEG, made from ``path`` on first use; DecodeError when the file cannot be read."""
        target = self.folder / str(side) / f"{image_id}-{sha}.jpg"
        if target.is_file():
            return target.read_bytes()
        data = jpeg_bytes(decode(read_bytes(path), draft_size=side), side)
        with self._lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            self.made += 1
        return data
