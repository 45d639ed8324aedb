"""Real photographs that pip packages ship (scikit-image, Matplotlib): offline test and demo data.

Each comes with the ImageNet classes a trained classifier should give it (any of them counts as right).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagePhoto:
    package: str  # the importable package that ships it
    file: str  # path inside the package
    imagenet: tuple[int, ...]  # ImageNet-1k classes a trained model should rank high (empty: none fits)

    @property
    def name(self) -> str:
        return Path(self.file).name

    def path(self) -> Path | None:
        """Where the file lies in this environment, or None when its package is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        p = Path(next(iter(spec.submodule_search_locations))) / self.file
        return p if p.is_file() else None


PHOTOS = (
    PackagePhoto("skimage", "data/chelsea.png", (281, 282, 285)),  # tabby, tiger cat, Egyptian cat
    PackagePhoto("skimage", "data/coffee.png", (967,)),  # espresso
    PackagePhoto("skimage", "data/camera.png", (872,)),  # tripod
    PackagePhoto("skimage", "data/rocket.jpg", (657, 744)),  # missile, projectile
    PackagePhoto("skimage", "data/motorcycle_left.png", (665, 670)),  # moped, motor scooter
    PackagePhoto("skimage", "data/motorcycle_right.png", (665, 670)),
    PackagePhoto("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (652, 400, 667)),  # uniform, gown, mortarboard
    PackagePhoto("skimage", "data/astronaut.png", ()),
    PackagePhoto("skimage", "data/horse.png", ()),
    PackagePhoto("skimage", "data/hubble_deep_field.jpg", ()),
    PackagePhoto("skimage", "data/retina.jpg", ()),
    PackagePhoto("skimage", "data/coins.png", ()),
    PackagePhoto("skimage", "data/moon.png", ()),
    PackagePhoto("skimage", "data/page.png", ()),
    PackagePhoto("skimage", "data/brick.png", ()),
    PackagePhoto("skimage", "data/grass.png", ()),
    PackagePhoto("skimage", "data/gravel.png", ()),
    PackagePhoto("skimage", "data/ihc.png", ()),
    PackagePhoto("skimage", "data/cell.png", ()),
    PackagePhoto("skimage", "data/color.png", ()),
    PackagePhoto("skimage", "data/clock_motion.png", ()),
)


def available_photos(labelled_only: bool = False) -> list[tuple[PackagePhoto, Path]]:
    """The photos whose packages are installed here, with their paths."""
    found = [(p, path) for p in PHOTOS if (path := p.path()) is not None]
    return [(p, path) for p, path in found if p.imagenet or not labelled_only]


def copy_photos(dest: str | Path) -> list[Path]:
    """Copy the available photos into ``dest`` (kept as they are; existing copies are left alone)."""
    import shutil

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for _, src in available_photos():
        target = dest / src.name
        if not target.exists():
            shutil.copyfile(src, target)
        out.append(target)
    return out
