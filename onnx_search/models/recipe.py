"""The recipe: what pixels a model sees and how they are normalised, and how a .onnx file carries it.

A converted file stores the recipe as JSON under ``metadata_props[METADATA_KEY]``, so it describes itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelFileError

METADATA_KEY = "onnx_search.recipe"
# caffe/torch/tf/raw: Keras' preprocess_input modes; meanstd: x/255, then (x - mean) / std with the recipe's own
# mean and std (timm's and torchvision's ToTensor + Normalize, for any mean/std a model was trained with)
PREPROCESS_MODES = ("caffe", "torch", "tf", "raw", "meanstd")
# squash: Keras' load_img (or timm's "squash" crop mode when crop_pct < 1); center_crop: shorter side to
# size / crop_pct, then a centre crop (torchvision's Resize(256) + CenterCrop(224), timm's "center" mode)
RESIZE_POLICIES = ("squash", "center_crop")
LAYOUTS = ("NHWC", "NCHW")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the pixels a model sees; models with equal geometries share decoding."""

    input_size: int
    preprocess: str = "caffe"
    resize: str = "squash"
    interpolation: str = "bilinear"
    layout: str = "NHWC"  # the model's input layout: NHWC (Keras) or NCHW (PyTorch)
    crop_pct: float = 0.0  # 0: the policy's own (squash: none; center_crop: 224/256); else timm's crop_pct
    mean: tuple[float, float, float] | None = None  # meanstd only: per-channel mean and std on [0, 1] pixels
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.preprocess == "meanstd" and (self.mean is None or self.std is None):
            raise ValueError("preprocess 'meanstd' needs the recipe's mean and std")

    @property
    def geometry(self) -> tuple[int, str, str, float]:
        """The part of the recipe that decides the uint8 pixels (normalisation comes later)."""
        return (self.input_size, self.resize, self.interpolation, float(self.crop_pct))

    def as_metadata(self) -> dict:
        """The recipe's fields as the JSON a .onnx file carries (the inverse of ``recipe_from_metadata``)."""
        meta = {
            "input_size": self.input_size,
            "preprocess": self.preprocess,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "layout": self.layout,
        }
        if self.crop_pct:
            meta["crop_pct"] = self.crop_pct
        if self.mean is not None:
            meta["mean"], meta["std"] = list(self.mean), list(self.std)
        return meta


def normalize(batch: np.ndarray, mode: str, mean=None, std=None) -> np.ndarray:
    """Keras ``preprocess_input`` for ``mode`` on an NHWC RGB batch, returning a new float32 array.

    The arithmetic follows Keras step by step (same order, float32) so results match bit for bit; ``meanstd``
    follows torchvision's ToTensor + Normalize the same way. The input is never modified.
    """
    x = np.array(batch, dtype=np.float32, copy=True)
    if mode == "raw":
        return x
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode in ("torch", "meanstd"):
        x /= 255.0
        mean, std = (TORCH_MEAN, TORCH_STD) if mode == "torch" else (mean, std)
        if mean is None or std is None:
            raise ValueError("preprocessing 'meanstd' needs a mean and a std")
    elif mode == "caffe":
        x = x[..., ::-1].copy()
        mean, std = CAFFE_MEAN_BGR, None
    else:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {', '.join(PREPROCESS_MODES)}")
    for c in range(3):
        x[..., c] -= mean[c]
    if std is not None:
        for c in range(3):
            x[..., c] /= std[c]
    return x


def prepare_batch(pixels: np.ndarray, recipe: Recipe) -> np.ndarray:
    """A uint8 NHWC RGB batch -> the float32 model input: normalised by the recipe, in the model's layout."""
    x = normalize(pixels, recipe.preprocess, recipe.mean, recipe.std)
    if recipe.layout == "NCHW":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if recipe.layout != "NHWC":
        raise ValueError(f"unknown layout {recipe.layout!r}; expected one of {', '.join(LAYOUTS)}")
    return x


def recipe_from_metadata(meta: dict, source: str | Path) -> Recipe:
    """Build the Recipe from a metadata dict, naming the file when fields are missing."""
    try:
        mean, std = meta.get("mean"), meta.get("std")
        return Recipe(
            int(meta["input_size"]),
            meta["preprocess"],
            meta.get("resize", "squash"),
            meta.get("interpolation", "bilinear"),
            meta.get("layout", "NHWC"),
            float(meta.get("crop_pct") or 0.0),
            tuple(map(float, mean)) if mean is not None else None,
            tuple(map(float, std)) if std is not None else None,
        )
    except KeyError as exc:
        raise ModelFileError(f"{source}: onnx-search metadata lacks {exc.args[0]!r}; re-convert it") from None
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: onnx-search recipe is not usable ({exc}); re-convert it") from None


def parse_metadata(custom: dict[str, str], source: str | Path) -> dict:
    """Decode our JSON entry from an ONNX custom metadata map, or explain how to get one."""
    raw = custom.get(METADATA_KEY)
    if raw is None:
        raise ModelFileError(
            f"{source} has no onnx-search metadata ({METADATA_KEY!r}); give its recipe in the experiment YAML "
            "(`recipe: {input_size, preprocess: caffe|torch|tf|raw|meanstd, resize: squash|center_crop, "
            "interpolation, layout: NHWC|NCHW, crop_pct, mean, std}`), or `onnx-search convert --model NAME "
            "--source onnx --file FILE --recipe '{...}'`, or `onnx-search convert --annotate FILE --like MODEL`"
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}: onnx-search metadata is not valid JSON ({exc})") from None


def write_metadata(path: Path, meta: dict) -> None:
    """Store ``meta`` as JSON under METADATA_KEY in the ONNX file, replacing any earlier entry."""
    write_property(path, METADATA_KEY, meta)


def write_property(path: Path, key: str, value: dict) -> None:
    """Store ``value`` as JSON under ``key`` in the ONNX file's metadata, replacing any earlier entry (atomically)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = key, json.dumps(value, sort_keys=True)
    model.producer_name = "onnx-search"
    tmp = path.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def read_metadata_file(path: Path) -> dict | None:
    """Our metadata from an ONNX file on disk, or None when the file has none."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None


def up_to_date(path: Path, request: dict) -> dict | None:
    """The existing file's metadata if it was made from the same request, else None."""
    if not path.is_file():
        return None
    try:
        meta = read_metadata_file(path)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not up to date
        return None
    return meta if meta and meta.get("request") == request else None
