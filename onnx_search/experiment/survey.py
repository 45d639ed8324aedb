"""What an image folder holds, read from headers only: counts, formats, sizes, exact duplicates, unreadable files;
and the one rule that says whether its folders are classes (``init`` and ``dataset.labels: auto`` both use it).

Memory is bounded by one header and a hash buffer: no image is decoded (Pillow's ``open`` reads the header; the
content hash streams the bytes).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..embed.decode import DEFAULT_MAX_PIXELS
from ..embed.scan import DEFAULT_EXTENSIONS, scan_folder

MIN_PER_CLASS = 2  # a class folder holds at least this many images: each query has another of its class to find

# Folder names that say where a photo came from or when it was taken, not what it shows (case-insensitive)
SOURCE_NAMES = frozenset(
    """dcim camera camera-roll camera-uploads screenshots screenshot screen-shots screen-recordings screenrecorder
    whatsapp whatsapp-images whatsapp-video whatsapp-animated-gifs telegram telegram-images signal instagram
    messenger facebook snapchat twitter downloads download pictures my-pictures photos my-photos images img
    desktop documents icloud-photos icloud google-photos takeout burst bursts edited export exports import imports
    sent received recent recents misc unsorted backup backups mobile-uploads new-folder untitled-folder all-photos
    favorites favourites trash deleted raw originals thumbnails thumbs cache""".split()
)
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
SOURCE_PATTERNS = (
    re.compile(r"\d{3}[a-z0-9_]{5}"),  # camera (DCF) folders: 100APPLE, 101MSDCF, 100_FUJI, 100GOPRO
    re.compile(r"(19|20)\d\d([-_. ]?\d\d?){0,2}([-_ ].*)?"),  # dates: 2023, 2023-07, 20230714, 2023_07_14 Paris
    re.compile(r"\d\d?[-_.]\d\d?[-_.](19|20)?\d\d([-_ ].*)?"),  # 14.07.2023, 14-07-23
    re.compile(rf"({_MONTHS})[a-z]*[-_ ,]*(19|20)\d\d.*"),  # July 2023
    re.compile(r"(photos|pictures|images) (from|of) .*"),  # Photos from 2023
    re.compile(r"(whatsapp|telegram|signal|screenshots?|camera|dcim)\b.*"),  # app and camera folders, any suffix
    re.compile(r"(new|untitled) folder( ?\(?\d+\)?)?"),  # New folder (2)
)


def source_like(name: str) -> bool:
    """Whether a folder name names a source (camera, app, download folder) or a date rather than a class."""
    n = " ".join(name.strip().lower().split())
    return n.replace(" ", "-") in SOURCE_NAMES or any(p.fullmatch(n) for p in SOURCE_PATTERNS)


@dataclass
class LabelDecision:
    """Whether folder names are used as labels, why, and the classes they would make (name -> images)."""

    use: bool
    reason: str
    classes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"use": self.use, "reason": self.reason, "classes": self.classes}


def folder_labels(root: str | Path, files: list[Path], min_per_class: int = MIN_PER_CLASS) -> LabelDecision:
    """The rule: folders are classes only when every part holds, each said in the reason when it fails.

    1. at least 2 folders hold images;
    2. no image lies directly in the root (it would be labelled with the root's own name);
    3. images lie in leaf folders only (no folder of images holds another folder of images);
    4. each folder holds at least ``min_per_class`` images;
    5. no folder is named like a camera, an app, a download folder or a date (``source_like``);
    6. no two folders share a name (the label is the folder's name: they would merge).
    """
    root = Path(root).expanduser().resolve()
    by_folder: dict[Path, int] = Counter(Path(f).parent for f in files)
    folders = sorted(by_folder)
    problems = []
    loose = by_folder.get(root, 0)
    inner = [d for d in folders if d != root]
    if len(inner) < 2:
        problems.append(f"{len(inner)} sub-folder{'' if len(inner) == 1 else 's'} of images (classes need at least 2)")
    if loose:
        problems.append(f"{loose} image{'s lie' if loose > 1 else ' lies'} directly in the folder, outside any class")
    nested = [d for d in inner if any(o != d and o.is_relative_to(d) for o in inner)]
    if nested:
        problems.append(f"folders of images hold further folders of images ({_names(nested, root)})")
    small = [d for d in inner if by_folder[d] < min_per_class]
    if small:
        problems.append(f"{len(small)} folder(s) hold fewer than {min_per_class} images ({_names(small, root)})")
    sources = [d for d in inner if source_like(d.name)]
    if sources:
        problems.append(f"folders are named like a camera, app or date, not a class ({_names(sources, root)})")
    names: dict[str, list[Path]] = defaultdict(list)
    for d in inner:
        names[d.name].append(d)
    shared = [p for ds in names.values() if len(ds) > 1 for p in ds]
    if shared:
        problems.append(f"folders share a name, so their labels would merge ({_names(shared, root)})")
    classes = {d.name: by_folder[d] for d in inner}
    if problems:
        return LabelDecision(False, "folders are not used as labels: " + "; ".join(problems), classes)
    listed = ", ".join(f"{n} ({c})" for n, c in sorted(classes.items())[:8]) + (", ..." if len(classes) > 8 else "")
    return LabelDecision(
        True,
        f"folders used as labels: {len(classes)} leaf folders of at least {min_per_class} images each, none named "
        f"like a camera, app or date: {listed}",
        classes,
    )


def _names(folders: list[Path], root: Path, most: int = 6) -> str:
    shown = [str(d.relative_to(root)) for d in folders[:most]]
    return ", ".join(shown) + (f" and {len(folders) - most} more" if len(folders) > most else "")


@dataclass
class Survey:
    """A folder's images as read from their headers."""

    root: Path
    files: list[Path]  # readable (header parsed), sorted
    skipped: list[tuple[str, str]]  # path, reason: what the scan or the header refused
    formats: Counter  # Pillow format name -> files
    sizes: dict[Path, tuple[int, int]]  # width, height as shown (EXIF orientation applied)
    bytes: int
    hashes: dict[Path, str]  # content hash (the catalogue's: BLAKE2b-128 of the bytes)
    labels: LabelDecision

    @property
    def duplicates(self) -> list[list[Path]]:
        """Groups of files with identical bytes (exact duplicates), each sorted, largest group first."""
        groups: dict[str, list[Path]] = defaultdict(list)
        for p, h in self.hashes.items():
            groups[h].append(p)
        return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g))

    @property
    def unique(self) -> int:
        """Readable files less the extra copies of exact duplicates."""
        return len(set(self.hashes.values()))

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """The smallest, median and largest image (width, height) by pixel count ((0, 0)s for an empty folder)."""
        by_area = sorted(self.sizes.values(), key=lambda wh: (wh[0] * wh[1], wh))
        return (by_area[0], by_area[len(by_area) // 2], by_area[-1]) if by_area else ((0, 0),) * 3


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    """``ids.content_hash`` of the file's bytes, streamed (one chunk in memory)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_header(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, tuple[int, int]]:
    """(format, (width, height) upright) from the header alone; ValueError with the reason when unreadable."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            fmt = img.format or path.suffix.lstrip(".").upper()
            orientation = img.getexif().get(0x0112) if fmt in ("JPEG", "TIFF", "WEBP", "PNG", "HEIF", "AVIF") else None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"too many pixels: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad headers
        reason = "not an image Pillow can identify" if "cannot identify" in str(exc) else f"unreadable header: {exc}"
        raise ValueError(reason) from None
    if w * h > max_pixels:
        raise ValueError(f"{w}x{h} = {w * h / 1e6:.0f} MP exceeds the {max_pixels / 1e6:.0f} MP limit")
    return fmt, ((h, w) if orientation in (5, 6, 7, 8) else (w, h))


def survey_folder(root: str | Path, extensions=DEFAULT_EXTENSIONS, progress: bool = True) -> Survey:
    """Scan ``root`` and read every image's header and content hash (no decoding)."""
    root = Path(root).expanduser().resolve()
    scan = scan_folder(root, extensions)
    skipped = list(scan.skipped)
    formats: Counter = Counter()
    sizes, hashes, total = {}, {}, 0
    for p in tqdm(scan.files, desc="survey", unit="file", disable=not progress, leave=False):
        try:
            fmt, size = read_header(p)
            digest, n = file_hash(p), p.stat().st_size
        except ValueError as exc:
            skipped.append((str(p), str(exc)))
            continue
        except OSError as exc:
            skipped.append((str(p), f"cannot read file: {exc.strerror or exc}"))
            continue
        formats[fmt] += 1
        sizes[p], hashes[p] = size, digest
        total += n
    files = sorted(sizes)
    return Survey(root, files, skipped, formats, sizes, total, hashes, folder_labels(root, files))


LABEL_METRICS = ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k")


def resolve_labels(exp, files: list[Path]) -> dict:
    """Settle ``dataset.labels`` before ingest (which writes each image's label into the catalogue): ``auto``
    becomes true or false by ``folder_labels``; an explicit value is kept. Sets it on ``exp`` and returns what was
    chosen and why, for the results and the summary."""
    from ..errors import ConfigError

    given = exp.dataset.labels
    if given == "auto":
        decision = folder_labels(exp.dataset.root, files)
        use, how, why = decision.use, "auto", decision.reason
    else:
        use, how = bool(given), "config"
        why = f"dataset.labels: {str(use).lower()}"
    exp.dataset.labels = use
    if not use and not exp.ground_truth and exp.verdict.metric in LABEL_METRICS:
        raise ConfigError(
            f"verdict.metric {exp.verdict.metric} needs folder labels, and {why}: set dataset.labels: true to use "
            "the folders anyway, give ground_truth.qrels, or use metric: auto"
        )
    text = f"Labels: {'folder names' if use else 'none'} ({'auto' if how == 'auto' else 'set in the config'}: {why})."
    return {"labels": use, "chosen_by": how, "reason": why, "text": text}
