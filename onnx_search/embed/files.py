"""``onnx-search embed``: a folder of images -> one .npy of unit vectors per model plus an index of paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..filenames import model_file_stem
from ..ids import image_id
from ..models.session import ModelSession
from .pipeline import Pipeline
from .scan import DEFAULT_EXTENSIONS, scan_folder
from .sinks import embed_paths


@dataclass
class EmbedSummary:
    embedded: int
    skipped: list[tuple[str, str]]
    output: Path
    times: dict
    providers: dict[str, list[str]]


def embed_folder(
    folder: str | Path,
    models: dict[str, ModelSession],
    output: str | Path,
    batch_size: int = 32,
    workers: int | None = None,
    extensions=DEFAULT_EXTENSIONS,
    progress: bool = True,
) -> EmbedSummary:
    """Embed every image under ``folder`` with every model; write ``<model>.npy``, index and skipped lists.

    A model name with ``/`` (``torchvision/resnet50``) is written as one file, ``torchvision__resnet50.npy``;
    index.json names each model's file.
    """
    files = {name: f"{model_file_stem(name)}.npy" for name in models}
    if len(set(files.values())) < len(files):
        raise ConfigError(f"two models would write the same vectors file: {files}; give them distinct names")
    scan = scan_folder(folder, extensions)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(models, batch_size=batch_size, workers=workers, progress=progress)
    got = embed_paths(pipeline, scan.files)
    for name in models:
        np.save(out / files[name], got.vectors(name))
    skipped = scan.skipped + pipeline.failures
    index = {
        "folder": str(Path(folder).resolve()),
        "count": len(got.paths),
        "models": {n: m.describe() | {"vectors_file": files[n]} for n, m in models.items()},
        "images": [
            {"row": i, "id": image_id(p), "path": str(p), "sha": s}
            for i, (p, s) in enumerate(zip(got.paths, got.shas, strict=True))
        ],
        "times": pipeline.times.as_dict(),
    }
    (out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    (out / "skipped.json").write_text(
        json.dumps([{"path": p, "reason": r} for p, r in skipped], indent=1, ensure_ascii=False)
    )
    providers = {n: m.providers_active for n, m in models.items()}
    return EmbedSummary(len(got.paths), skipped, out, pipeline.times.as_dict(), providers)
