"""``onnx-search embed``: a folder of images -> one .npy of unit vectors per model plus an index of paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ids import image_id
from .pipeline import Embedder
from .runner import OnnxEmbedder
from .scan import DEFAULT_EXTENSIONS, scan_folder


@dataclass
class EmbedSummary:
    embedded: int
    skipped: list[tuple[str, str]]
    output: Path
    times: dict
    providers: dict[str, list[str]]


def embed_folder(
    folder: str | Path,
    models: dict[str, OnnxEmbedder],
    output: str | Path,
    batch_size: int = 32,
    workers: int | None = None,
    extensions=DEFAULT_EXTENSIONS,
    progress: bool = True,
) -> EmbedSummary:
    """Embed every image under ``folder`` with every model; write ``<model>.npy``, index and skipped lists."""
    scan = scan_folder(folder, extensions)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    everyone = frozenset(models)
    embedder = Embedder(models, batch_size=batch_size, workers=workers, progress=progress)
    paths: list[str] = []
    shas: list[str] = []
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for batch in embedder.run([(p, everyone) for p in scan.files]):
        paths += [str(it.path) for it in batch.items]
        shas += [it.sha for it in batch.items]
        for name, (_, vecs) in batch.vectors.items():
            chunks[name].append(vecs)
    for name, m in models.items():
        arr = np.concatenate(chunks[name]) if chunks[name] else np.zeros((0, m.dim), np.float32)
        np.save(out / f"{name}.npy", arr)
    skipped = scan.skipped + embedder.failures
    index = {
        "folder": str(Path(folder).resolve()),
        "count": len(paths),
        "models": {n: m.describe() for n, m in models.items()},
        "images": [
            {"row": i, "id": image_id(p), "path": p, "sha": s} for i, (p, s) in enumerate(zip(paths, shas, strict=True))
        ],
        "times": embedder.times.as_dict(),
    }
    (out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    (out / "skipped.json").write_text(
        json.dumps([{"path": p, "reason": r} for p, r in skipped], indent=1, ensure_ascii=False)
    )
    return EmbedSummary(
        len(paths), skipped, out, embedder.times.as_dict(), {n: m.providers_active for n, m in models.items()}
    )
