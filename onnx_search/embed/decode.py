"""Decode any image Pillow reads into 8-bit RGB and resize it to a recipe's geometry (uint8, HWC)."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DecodeError
from .formats import register_plugins

register_plugins()  # HEIC/HEIF through pillow-heif, when installed

try:  # libjpeg-turbo without Pillow's per-block Python loop; optional, Pillow decodes the same pixels without it
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - installed with the package
    _simplejpeg = None

BACKGROUND = (255, 255, 255)  # transparency is composited onto white, never dropped
DEFAULT_MAX_PIXELS = 200_000_000  # above this an image is skipped, not decoded
# A short-side resize is never made whole when it would hold more than this many times the pixels of its
# scale x scale square (long/short aspect above 16): only the centre crop is resampled (see ``resize_crop_bounded``).
MAX_RESIZE_AREA_RATIO = 16
_RESAMPLE = {
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "nearest": Image.NEAREST,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
}
_SUPPORT = {Image.NEAREST: 1.0, Image.BOX: 0.5, Image.BILINEAR: 1.0, Image.BICUBIC: 2.0, Image.LANCZOS: 3.0}


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha composited on BACKGROUND, 16-bit and float scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode != "F" and arr.max(initial=0) > 255 else 255.0
        if img.mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def decode(
    data: bytes, draft_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, turbo: bool = True
) -> Image.Image:
    """Decode encoded image bytes to an RGB image, EXIF orientation applied, first frame of animations.

    ``draft_size`` lets JPEG decode at a reduced scale that still covers that many pixels per side. A colour JPEG
    goes through simplejpeg (``turbo``) at the scale Pillow's draft picks: the same pixels, fewer core-ms.
    Raises DecodeError with a human-readable reason for anything that is not a usable image.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise DecodeError("not an image Pillow can identify") from None
        except Image.DecompressionBombError as exc:
            raise DecodeError(f"too many pixels: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad headers
            raise DecodeError(f"unreadable image header: {type(exc).__name__}: {exc}") from None
        w, h = img.size
        if w * h > max_pixels:
            raise DecodeError(f"{w}x{h} = {w * h / 1e6:.0f} MP exceeds the {max_pixels / 1e6:.0f} MP limit")
        fast = _turbo_decode(data, img, draft_size) if turbo and img.format == "JPEG" and img.mode == "RGB" else None
        if fast is not None:
            return fast
        try:
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as many types
            raise DecodeError(f"corrupt or truncated image data: {type(exc).__name__}: {exc}") from None


def draft_scale(size: tuple[int, int], draft_size: int | None) -> int:
    """The DCT scale denominator Pillow's ``draft`` picks: the largest of 8, 4, 2, 1 that keeps both sides at
    least ``draft_size`` (``min(w // d, h // d)``, as Pillow computes it)."""
    if not draft_size:
        return 1
    fits = min(size[0] // draft_size, size[1] // draft_size)
    return next((s for s in (8, 4, 2) if fits >= s), 1)


# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose applies it)
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _turbo_decode(data: bytes, header: Image.Image, draft_size: int | None) -> Image.Image | None:
    """A colour JPEG through simplejpeg (libjpeg-turbo, the GIL released) at exactly the DCT scale Pillow's draft
    picks, so the pixels are Pillow's (the tests compare them); None (use Pillow) when simplejpeg is not
    installed or refuses the data (corrupt or truncated files then get Pillow's own reason)."""
    if _simplejpeg is None or len(header.tile) != 1:  # Pillow drafts only single-tile JPEGs
        return None
    w, h = header.size
    s = draft_scale((w, h), draft_size)
    want = (-(-h // s), -(-w // s))
    try:
        arr = _simplejpeg.decode_jpeg(
            data, "RGB", fastdct=False, fastupsample=False, min_height=want[0], min_width=want[1], strict=True
        )
        orientation = header.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - anything simplejpeg or the EXIF parser refuses goes the Pillow way
        return None
    if arr.shape[:2] != want:
        return None
    img = Image.fromarray(arr, "RGB")
    return img.transpose(_ORIENT[orientation]) if orientation in _ORIENT else img


def read_bytes(path: str | Path) -> bytes:
    """Read a file, turning filesystem problems into DecodeError reasons."""
    p = Path(path)
    try:
        if p.is_dir():
            raise DecodeError("is a directory, not a file")
        return p.read_bytes()
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError("file not found (broken symlink or removed during the run)") from None
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from None


def scale_side(size: int, policy: str, crop_pct: float = 0.0) -> int:
    """The side an image is resized to before its centre crop: torchvision's 256 for 224 by default, else
    timm's ``floor(size / crop_pct)``; ``size`` itself for a plain squash."""
    if crop_pct:
        return math.floor(size / crop_pct)
    return round(size * 256 / 224) if policy == "center_crop" else size


def _center_crop(img: Image.Image, size: int) -> Image.Image:
    """torchvision's CenterCrop on an image at least ``size`` on each side (offsets rounded as it rounds)."""
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def resize_crop_bounded(img: Image.Image, resized: tuple[int, int], size: int, resample: int) -> Image.Image:
    """``_center_crop(img.resize(resized), size)`` without making the ``resized`` image: memory ~ ``size``².

    Only the source region that maps onto the crop is resampled, straight to the crop's size, so a 50000x1
    image costs a 224x224 buffer, not 12.8M x 256. The two passes are done as Pillow's full resize does them
    (horizontal, then vertical) on the source rows the vertical filter reads (the crop's rows plus the filter's
    support), and Pillow's ``box=`` keeps each output pixel's centre where the full resize puts it. A crop
    larger than the resized image is padded black, as ``Image.crop`` pads it.
    """
    w, h = img.size
    nw, nh = resized
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size, nw), min(top + size, nh)
    sx, sy = w / nw, h / nh
    support = _SUPPORT.get(resample, 3.0) * max(sy, 1.0)
    r0 = max(math.floor(y0 * sy - support) - 1, 0)
    r1 = min(math.ceil(y1 * sy + support) + 1, h)
    rows = img.crop((0, r0, w, r1))
    across = rows.resize((x1 - x0, r1 - r0), resample, box=(x0 * sx, 0, min(x1 * sx, w), r1 - r0))
    part = across.resize((x1 - x0, y1 - y0), resample, box=(0, y0 * sy - r0, x1 - x0, min(y1 * sy, h) - r0))
    if part.size == (size, size):
        return part
    canvas = Image.new(part.mode, (size, size))
    canvas.paste(part, (x0 - left, y0 - top))
    return canvas


def resize(
    img: Image.Image, size: int, policy: str = "squash", interpolation: str = "bilinear", crop_pct: float = 0.0
) -> np.ndarray:
    """Resize to ``size``×``size`` uint8 HWC: ``squash`` as Keras' load_img, or ``center_crop`` as torchvision/timm.

    ``center_crop`` is torchvision's ``Resize(scale)`` + ``CenterCrop(size)`` on a PIL image, step for step: the
    shorter side to ``scale`` (``scale_side``), the longer ``int(scale·long/short)``, Pillow's antialiased
    resampler, then the crop offset ``int(round((side - size) / 2))`` (Python's round, as torchvision uses).
    ``squash`` with a ``crop_pct`` below 1 is timm's squash mode: both sides to ``scale``, then the centre crop.
    A ``center_crop`` whose resized image would exceed ``MAX_RESIZE_AREA_RATIO``·scale² pixels (aspect above 16)
    is resampled by ``resize_crop_bounded`` (within 2 grey levels of the full resize), so memory per image
    follows the model's input size, never the file's shape.
    """
    resample = _RESAMPLE[interpolation]
    scale = scale_side(size, policy, crop_pct)
    if policy == "squash":
        out = img.resize((scale, scale), resample)
        if scale != size:
            out = _center_crop(out, size)
    elif policy == "center_crop":
        w, h = img.size
        if w <= h:
            nw, nh = scale, int(scale * h / w)
        else:
            nw, nh = int(scale * w / h), scale
        if nw * nh > MAX_RESIZE_AREA_RATIO * scale * scale:
            out = resize_crop_bounded(img, (nw, nh), size, resample)
        else:
            out = _center_crop(img.resize((nw, nh), resample), size)
    else:
        raise ValueError(f"unknown resize policy {policy!r}; expected squash or center_crop")
    return np.asarray(out, dtype=np.uint8)


def needed_side(geometry: tuple) -> int:
    """The fewest pixels per side a geometry needs before resizing (JPEG draft decoding never goes below it)."""
    size, policy = geometry[0], geometry[1]
    return scale_side(size, policy, geometry[3] if len(geometry) > 3 else 0.0)


def load_for_recipes(
    path: str | Path, geometries: list[tuple], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[bytes, list[np.ndarray]]:
    """Read and decode one file once, and return its bytes and one uint8 array per geometry."""
    data = read_bytes(path)
    img = decode(data, draft_size=max(needed_side(g) for g in geometries), max_pixels=max_pixels)
    return data, [resize(img, *g) for g in geometries]
