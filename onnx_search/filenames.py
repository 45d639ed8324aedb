"""File names built from model names: one rule, safe for ``torchvision/resnet50``, ``timm/...`` and user paths."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^0-9A-Za-z._+-]")


def model_file_stem(name: str) -> str:
    """A single path component for ``name``: ``/`` (and ``\\``) become ``__``, other unsafe characters ``_``.

    ``torchvision/resnet50`` -> ``torchvision__resnet50``; ``resnet50.int8`` stays as it is. Never empty, never
    hidden (a leading dot), never ``..``.
    """
    stem = _UNSAFE.sub("_", re.sub(r"[/\\]+", "__", name.strip())).lstrip(".")
    return stem or "model"
