"""Which image files are read: the extensions scanned, the decoders they need, and why the others are skipped.

Pillow reads JPEG, PNG, BMP, GIF, TIFF and WebP itself, and AVIF where its build has libavif (Pillow's wheels do,
from 11.3). HEIC/HEIF is read through the pillow-heif plugin (a dependency; registered on import here). Files
of image formats nothing here decodes (camera raw, Photoshop, SVG, JPEG XL, or HEIC/AVIF without their decoder)
are listed as skipped with the reason, never silently ignored.
"""

from __future__ import annotations

from functools import cache

# always read by Pillow itself
BUILTIN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# read when their decoder is installed: extension -> (format, decoder, what provides it)
_HEIF = "the pillow-heif plugin: `pip install pillow-heif`"
PLUGIN_EXTENSIONS = {
    ".avif": ("AVIF", "avif", "a Pillow built with libavif (Pillow >= 11.3 wheels): `pip install -U pillow`"),
    ".heic": ("HEIC", "heif", _HEIF),
    ".heif": ("HEIF", "heif", _HEIF),
}
# the extensions a folder is scanned for by default (a file whose decoder is missing is skipped, with the reason)
DEFAULT_EXTENSIONS = BUILTIN_EXTENSIONS + tuple(PLUGIN_EXTENSIONS)
# image formats that are never read; files with these extensions are listed as skipped whatever the config asks
UNREAD_FORMATS = {
    **dict.fromkeys((".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw"), "camera raw"),
    ".psd": "Photoshop document",
    ".svg": "SVG vector drawing",
    ".jxl": "JPEG XL",
}


@cache
def register_plugins() -> tuple[str, ...]:
    """Register the optional decoders with Pillow (once); returns the formats they added."""
    added = []
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        pass
    else:
        register_heif_opener()
        added.append("HEIF")
    return tuple(added)


@cache
def _available(decoder: str) -> bool:
    from PIL import features

    if decoder == "avif":
        return bool(features.check("avif"))
    return "HEIF" in register_plugins()


def supported_extensions() -> tuple[str, ...]:
    """The extensions this installation decodes (what the docs list as read)."""
    return BUILTIN_EXTENSIONS + tuple(e for e, (_, dec, _) in PLUGIN_EXTENSIONS.items() if _available(dec))


def missing_decoder(ext: str) -> str | None:
    """Why a file with extension ``ext`` (lower case, with its dot) cannot be read here, or None when it can."""
    if ext in PLUGIN_EXTENSIONS:
        fmt, decoder, provider = PLUGIN_EXTENSIONS[ext]
        return None if _available(decoder) else f"{fmt}: no decoder installed; install {provider}"
    if ext in UNREAD_FORMATS:
        return f"{UNREAD_FORMATS[ext]} ({ext}): not an image format onnx-search reads; export it as JPEG or PNG"
    return None
