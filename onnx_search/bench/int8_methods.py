"""INT8 per family: static QDQ against dynamic quantisation of one converted model, and each variant's top-10
agreement with its FP32 parent on a set of images (matrix.json's transformer rows)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..models.family import family
from ..models.int8_recipe import MEASURE_IMAGES, this_cpu
from ..models.recipe import read_metadata_file, recipe_from_metadata
from ..models.session import ModelSession, SessionConfig
from ..models.variants import _int8, calibration_batches, graph_kind
from ..models.zoo import get_spec


def embed_files(session: ModelSession, images: list[Path], batch: int = 8) -> np.ndarray:
    """Unit vectors of ``images`` through ``session``, decoded with its own recipe."""
    from ..embed.decode import load_for_recipes
    from ..models.recipe import prepare_batch

    px = np.stack([load_for_recipes(p, [session.recipe.geometry])[1][0] for p in images])
    return np.concatenate([session.embed(prepare_batch(px[i : i + batch], session.recipe))
                           for i in range(0, len(px), batch)])  # fmt: skip


def top_k_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean overlap@k of each image's nearest neighbours (itself left out) under ``a``'s and ``b``'s vectors."""

    def nn(v):
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1)[:, :k]

    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(nn(a), nn(b), strict=True)]))


def _speed(sessions: dict[str, ModelSession], x: np.ndarray, reps: int) -> dict[str, float]:
    """img/s per session, interleaved passes, median; and each one's median per-pass ratio to ``fp32``."""
    raw: dict[str, list[float]] = {n: [] for n in sessions}
    for s in sessions.values():
        s.embed(x)  # warm-up
    for _ in range(reps):
        for n, s in sessions.items():
            t = time.perf_counter()
            s.embed(x)
            raw[n].append(len(x) / (time.perf_counter() - t))
    return {n: {"img_per_s": round(float(np.median(v)), 2),
                "speedup_over_fp32": round(float(np.median([a / b for a, b in zip(v, raw["fp32"], strict=True)])), 3)}
            for n, v in raw.items()}  # fmt: skip


def compare_int8_methods(models_dir: Path, name: str, images: list[Path], work: Path, reps: int = 5,
                         batch: int = 8) -> dict:  # fmt: skip
    """FP32 vs static QDQ vs dynamic INT8 of ``name``: speed (batch ``batch``) and top-10 agreement on ``images``."""
    parent = get_spec(name).onnx_path(models_dir)
    meta = read_metadata_file(parent)
    recipe = recipe_from_metadata(meta, parent)
    work.mkdir(parents=True, exist_ok=True)
    calib = calibration_batches(images, recipe)
    paths, made = {"fp32": parent}, {}
    x_measure, target_isa = np.concatenate(calib)[:MEASURE_IMAGES], this_cpu()["target_isa"]
    for method in ("static", "dynamic"):  # each with its recipe chosen for this CPU, every candidate's figures kept
        paths[f"int8-{method}"] = work / f"{name.replace('/', '_')}.int8-{method}.onnx"
        t = time.perf_counter()
        how, chosen = _int8(parent, paths[f"int8-{method}"], calib, method, target_isa, x_measure)
        made[f"int8-{method}"] = how | {"int8_recipe": chosen, "seconds": round(time.perf_counter() - t, 1)}
    sessions = {n: ModelSession(p, SessionConfig(["cpu"])) for n, p in paths.items()}
    vectors = {n: embed_files(s, images) for n, s in sessions.items()}
    x = calib[0][:batch]
    rows = _speed(sessions, x, reps)
    for n in sessions:
        rows[n]["top10_agreement"] = round(top_k_agreement(vectors["fp32"], vectors[n]), 3)
        rows[n]["min_cosine_to_fp32"] = round(float((vectors["fp32"] * vectors[n]).sum(axis=1).min()), 4)
        rows[n]["file_mb"] = round(paths[n].stat().st_size / 1e6, 1)
        if n in made:
            rows[n]["made_by"] = made[n]
    return {"family": family(meta), "graph": graph_kind(parent), "images": len(images), "batch": len(x),
            "reps": reps, "methods": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m onnx_search.bench.int8_methods``: the README's INT8-per-family table as int8_methods.json."""
    import argparse

    from ..provenance import library_versions, machine
    from .results import WORK, default_out, write_result

    p = argparse.ArgumentParser(description="INT8 per family: static QDQ vs dynamic, speed and top-10 agreement")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="converted FP32 models (default: models)")
    p.add_argument("--models", default="efficientnet-lite0,dinov2-vits14", help="comma list (a CNN, a transformer)")
    p.add_argument("--images", type=Path, default=Path("demo/images"), help="images for calibration and agreement")
    p.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="interleaved timing passes (default: 5)")
    a = p.parse_args(argv)
    images = sorted(f for f in a.images.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        p.error(f"no .jpg/.png images under {a.images}: run `make demo` first or pass --images")
    rows = {}
    for name in a.models.split(","):
        rows[name] = compare_int8_methods(a.models_dir, name, images, WORK / "int8_methods", a.reps)
        print(name, {m: (r["speedup_over_fp32"], r["top10_agreement"]) for m, r in rows[name]["methods"].items()})
    result = {"models": rows, "machine": machine(), "versions": library_versions(),
              "method": "FP32 vs static QDQ vs dynamic INT8 (onnx_search.models.variants._int8), img/s at batch 8, "
                        "median of interleaved passes; top-10 agreement with FP32 on the images"}  # fmt: skip
    print(f"wrote {write_result(a.out, 'int8_methods.json', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
