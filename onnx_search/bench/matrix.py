"""Speed matrix: model x variant x batch size x provider, interleaved in one process (matrix.json + PNG).

Each pass runs every (model, variant, provider, batch) cell once, in turn, so the machine's slow swings hit
every cell alike; a cell's figure is the median over passes. Ratios to FP32 compare cells of the same pass.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..models.isolated import variant_isolated
from ..models.parity import parity_images
from ..models.providers import provider_loadable
from ..models.recipe import prepare_batch
from ..models.session import ModelSession, SessionConfig
from ..models.variants import calibration_files
from ..models.zoo import get_spec, variant_name
from ..provenance import library_versions, machine
from .embed import photo_folder

BATCHES = (1, 8, 32)


def _providers() -> list[str]:
    import onnxruntime as ort

    gpu = [p for p in ("CUDAExecutionProvider",) if p in ort.get_available_providers() and provider_loadable(p)[0]]
    return ["CPUExecutionProvider", *gpu]


def _img_per_s(session: ModelSession, x: np.ndarray, images: int) -> float:
    runs = max(1, images // len(x))
    t = time.perf_counter()
    for _ in range(runs):
        session.embed(x)
    return runs * len(x) / (time.perf_counter() - t)


def bench_matrix(
    models_dir: Path,
    names: list[str],
    variants: list[str],
    work: Path,
    reps: int = 3,
    photos: int = 96,
    batches: tuple[int, ...] = BATCHES,
    agreement_images: list[Path] | None = None,
) -> dict:
    """img/s per cell (median of ``reps`` interleaved passes) and each variant's speed-up over FP32 at the
    largest batch size."""
    calib = calibration_files(photo_folder(work / "photos", photos))
    t, peaks, files = {}, {}, {}
    for name in names:
        for v in variants:
            if v != "fp32":  # a child process each: quantisation's memory never joins the sessions measured below
                child = variant_isolated(name, v, models_dir, calibration=calib)
                files[(name, v)] = child.result.path  # an INT8 file is named by its calibration set
                t[variant_name(name, v)] = round(child.seconds, 1)
                peaks[variant_name(name, v)] = round(child.peak_rss_mb, 1)
    cells, raw = {}, {}
    for name in names:
        spec = get_spec(name)
        x = prepare_batch(parity_images(spec, n=max(batches), seed=3), spec.recipe)
        for v in variants:
            for prov in _providers():
                path = files.get((name, v), spec.onnx_path(models_dir, v))
                s = ModelSession(path, SessionConfig([prov], strict=True))
                for b in batches:
                    s.embed(x[:b])  # warm-up
                    cells[(name, v, prov, b)] = (s, x[:b])
                    raw[(name, v, prov, b)] = []
    for _ in range(reps):
        for key, (s, xb) in cells.items():
            raw[key].append(_img_per_s(s, xb, max(batches)))
    out = _tabulate(names, variants, raw, t, reps, batches) | {"make_peak_rss_mb": peaks}
    return out | family_rows(models_dir, names, variants, out, agreement_images, files)


def family_rows(
    models_dir: Path, names, variants, out: dict, images: list[Path] | None, files: dict | None = None
) -> dict:
    """Each model's family, each variant's ``made_by`` method and (given images) top-10 agreement with FP32;
    ``files``: each (model, variant)'s file where it is not ``<name>.<variant>.onnx`` (INT8)."""
    files = files or {}
    from ..models.family import family
    from ..models.recipe import read_metadata_file
    from .int8_methods import embed_files, top_k_agreement

    for name in names:
        spec = get_spec(name)
        out[name]["family"] = family(read_metadata_file(spec.onnx_path(models_dir)) or {})
        fp32 = embed_files(ModelSession(spec.onnx_path(models_dir), SessionConfig(["cpu"])), images) if images else None
        for v in variants:
            path = files.get((name, v), spec.onnx_path(models_dir, v))
            meta = read_metadata_file(path) or {}
            if meta.get("made_by"):
                out[name][v]["made_by"] = meta["made_by"].get("method")
            if fp32 is not None:
                mine = embed_files(ModelSession(path, SessionConfig(["cpu"])), images)
                out[name][v]["top10_agreement"] = round(top_k_agreement(fp32, mine), 3)
    return {"agreement_images": len(images) if images else 0}


def _tabulate(names, variants, raw: dict, make_s: dict, reps: int, batches: tuple[int, ...]) -> dict:
    out: dict = {"machine": machine(), "versions": library_versions(), "batch_sizes": list(batches), "reps": reps,
                 "method": "img/s of session.run on preprocessed batches; median of interleaved passes"}  # fmt: skip
    for name in names:
        out[name] = {}
        for v in variants:
            cell = {}
            for (n, vv, prov, b), vals in raw.items():
                if n == name and vv == v:
                    cell.setdefault(prov, {})[str(b)] = round(float(np.median(vals)), 2)
            out[name][v] = {"img_per_s": cell}
            if variant_name(name, v) in make_s:
                out[name][v]["make_s"] = make_s[variant_name(name, v)]
        for v in variants:
            big = max(batches)
            mine, fp32 = raw[(name, v, "CPUExecutionProvider", big)], raw[(name, "fp32", "CPUExecutionProvider", big)]
            per_pass = [a / b for a, b in zip(mine, fp32, strict=True)]  # ratios within a pass
            out[name][v]["speedup_over_fp32"] = round(float(np.median(per_pass)), 3)
    return out


def matrix_plot(matrix: dict, out: Path) -> Path:
    """img/s at each batch size, one group per model/variant, CPU provider; the speed-up over FP32 labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in matrix if isinstance(matrix[m], dict) and "fp32" in matrix[m]]
    rows = [(m, v) for m in models for v in matrix[m] if isinstance(matrix[m][v], dict)]  # not the family field
    batches = matrix.get("batch_sizes", BATCHES)
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 1.1), 4.5), dpi=110)
    width = 0.8 / len(batches)
    for bi, b in enumerate(batches):
        vals = [matrix[m][v]["img_per_s"]["CPUExecutionProvider"][str(b)] for m, v in rows]
        ax.bar([i + bi * width for i in range(len(rows))], vals, width, label=f"batch {b}")
    for i, (m, v) in enumerate(rows):
        top = max(matrix[m][v]["img_per_s"]["CPUExecutionProvider"].values())
        ax.text(i + width, top * 1.02, f"×{matrix[m][v]['speedup_over_fp32']:.2f}", ha="center", fontsize=8)
    ax.set_xticks([i + width for i in range(len(rows))], [f"{m}\n{v}" for m, v in rows], fontsize=8)
    ax.set_ylabel("img/s (CPU, model only)")
    cpus = matrix["machine"]["cpus"]
    ax.set_title(
        f"variants vs FP32 (×: speed-up at batch {max(batches)}), {cpus} CPUs, "
        f"onnxruntime {matrix['versions']['onnxruntime']}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
