"""INT8 per family: static QDQ against dynamic quantisation of one converted model, and each variant's top-10
agreement with its FP32 parent on a set of images (matrix.json's transformer rows)."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np

from ..experiment.evidence import interval
from ..models.family import family
from ..models.int8_recipe import MEASURE_IMAGES, candidates, this_cpu
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
    from ..models.int8_recipe import per_image_agreement

    return float(per_image_agreement(a, b, k)[1].mean())


def _speed(sessions: dict[str, ModelSession], x: np.ndarray, reps: int) -> dict[str, dict]:
    """img/s per session over interleaved passes (median), and its speed-up over ``fp32``: the geometric mean of the
    passes' ratios, with a 95% interval (Student t on the log ratios; None with fewer than 2 passes)."""
    raw: dict[str, list[float]] = {n: [] for n in sessions}
    for s in sessions.values():
        s.embed(x)  # warm-up
    for _ in range(reps):
        for n, s in sessions.items():
            t = time.perf_counter()
            s.embed(x)
            raw[n].append(len(x) / (time.perf_counter() - t))
    out = {}
    for n, v in raw.items():
        ratio = interval(np.log(np.divide(v, raw["fp32"])), seed=0, unit="pass")
        ci = None if ratio["units"] < 2 or n == "fp32" else [round(math.exp(ratio[e]), 3) for e in ("low", "high")]
        out[n] = {"img_per_s": round(float(np.median(v)), 2), "speedup_over_fp32": round(math.exp(ratio["mean"]), 3),
                  "speedup_95ci": ci}  # fmt: skip
    return out


def _ci(res: dict, digits: int) -> list[float]:
    return [round(res["low"], digits), round(res["high"], digits)]


BAR = {"mean_cosine": 0.97, "top5_overlap": 0.90, "speedup_over_fp32": 1.5}  # what a CNN's INT8 must keep to ship


def _bar(mean_cosine: float, top5: float, speedup: float | None) -> bool | None:
    """Whether a recipe keeps ``BAR``: False when its agreement is below it, whatever the speed; None when its
    agreement keeps it but no speed was timed (an emulated CPU)."""
    good = mean_cosine >= BAR["mean_cosine"] and top5 >= BAR["top5_overlap"]
    return None if good and speedup is None else good and speedup >= BAR["speedup_over_fp32"]


def compare_int8_methods(models_dir: Path, name: str, images: list[Path], work: Path, reps: int = 5,
                         batch: int = 8, timed: bool = True) -> dict:  # fmt: skip
    """FP32 vs static QDQ vs dynamic INT8 of ``name``, each with its recipe chosen for this CPU (``_int8``), and
    every candidate recipe of both methods: speed (batch ``batch``, interleaved passes) and agreement with FP32 on
    ``images`` (mean and min cosine, top-5 overlap, top-10 agreement). ``timed`` False (an emulated CPU): no speed.
    Returns the model's summary and its rows, one per recipe (``recipes``)."""
    from ..models.int8_recipe import per_image_agreement

    parent = get_spec(name).onnx_path(models_dir)
    meta = read_metadata_file(parent)
    recipe = recipe_from_metadata(meta, parent)
    work.mkdir(parents=True, exist_ok=True)
    calib = calibration_batches(images, recipe)
    x_measure, target_isa = np.concatenate(calib)[:MEASURE_IMAGES], this_cpu()["target_isa"]
    paths, made, chosen = {"fp32": parent}, {}, {}
    for method in ("static", "dynamic"):  # each with its recipe chosen for this CPU, every candidate made
        every = work / f"{name.replace('/', '_')}.{method}"
        shutil.rmtree(every, ignore_errors=True)
        out = work / f"{name.replace('/', '_')}.int8-{method}.onnx"
        t = time.perf_counter()
        how, rec = _int8(parent, out, calib, method, target_isa, x_measure, every_into=every)
        made[method] = how | {"int8_recipe": rec, "seconds": round(time.perf_counter() - t, 1)}
        chosen[method] = rec["recipe"]
        tried = candidates("conv" if method == "static" else "matmul", target_isa)  # in the order tried
        paths |= {f"{method}/{c.name}": every / f"{c.name}.onnx" for c in tried if (every / f"{c.name}.onnx").exists()}
    sessions = {n: ModelSession(p, SessionConfig(["cpu"])) for n, p in paths.items()}
    vectors = {n: embed_files(s, images) for n, s in sessions.items()}
    x = calib[0][:batch]
    none = {"img_per_s": None, "speedup_over_fp32": None, "speedup_95ci": None}
    speed = _speed(sessions, x, reps) if timed else {n: dict(none) for n in paths}
    rows = []
    for n in paths:
        method, _, rname = n.partition("/")
        cos, overlap = per_image_agreement(vectors["fp32"], vectors[n])
        cos_ci = interval(cos, seed=0, unit="image", bounds=(-1.0, 1.0))
        top5_ci = interval(overlap, seed=0, unit="image", bounds=(0.0, 1.0))
        row = {"model": name, "weights": meta.get("weights"), "quantisation": method if rname else "fp32",
               "recipe": rname or "fp32",
               "chosen": bool(rname) and chosen[method] == rname, **speed[n],
               "mean_cosine": round(float(cos.mean()), 4), "mean_cosine_95ci": _ci(cos_ci, 4) if rname else None,
               "min_cosine": round(float(cos.min()), 4),
               "top5_overlap": round(float(overlap.mean()), 3), "top5_overlap_95ci": _ci(top5_ci, 3) if rname else None,
               "top10_agreement": round(top_k_agreement(vectors["fp32"], vectors[n]), 3),
               "file_mb": round(paths[n].stat().st_size / 1e6, 1)}  # fmt: skip
        row["meets_bar"] = _bar(row["mean_cosine"], row["top5_overlap"], row["speedup_over_fp32"]) if rname else None
        lows = (row["mean_cosine_95ci"], row["top5_overlap_95ci"], row["speedup_95ci"])
        row["meets_bar_at_95_lower_bounds"] = _bar(*(ci and ci[0] for ci in lows)) if rname else None
        rows.append(row)
    summary = {"family": family(meta), "graph": graph_kind(parent), "weights": meta.get("weights"),
               "images": len(images), "batch": len(x), "reps": reps if timed else 0,
               "chosen": {m: {"recipe": made[m]["int8_recipe"]["recipe"], "reached": made[m]["int8_recipe"]["reached"],
                              "reason": made[m]["int8_recipe"]["reason"], "seconds_to_make_all": made[m]["seconds"]}
                          for m in made}}  # fmt: skip
    return {"summary": summary, "recipes": rows}


def main(argv: list[str] | None = None) -> int:
    """``python -m onnx_search.bench.int8_methods``: the INT8-per-family table and every recipe tried, as
    int8_methods.json (``--emulated``: another file, agreement only)."""
    import argparse

    from ..provenance import library_versions, machine
    from .results import WORK, default_out, write_result

    p = argparse.ArgumentParser(description="INT8 per family: every recipe of static QDQ and dynamic INT8 for this "
                                "CPU, speed and agreement with FP32")  # fmt: skip
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="converted FP32 models (default: models)")
    p.add_argument("--models", default="efficientnet-lite0,dinov2-vits14", help="comma list (a CNN, a transformer)")
    p.add_argument("--images", type=Path, default=Path("demo/images"), help="images for calibration and agreement")
    p.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    p.add_argument("--reps", type=int, default=15, help="interleaved timing passes (default: 15)")
    p.add_argument(
        "--emulated",
        metavar="HOW",
        help="this runs under an emulated CPU (say how, for example "
        "'qemu-x86_64 -cpu Haswell'): no speed is timed, and the result is int8_methods_emulated.json",
    )
    a = p.parse_args(argv)
    images = sorted(f for f in a.images.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        p.error(f"no .jpg/.png images under {a.images}: run `make demo` first or pass --images")
    models, recipes = {}, []
    for name in a.models.split(","):
        work = WORK / ("int8_methods_emulated" if a.emulated else "int8_methods")  # two runs never share files
        r = compare_int8_methods(a.models_dir, name, images, work, a.reps, timed=not a.emulated)
        models[name], recipes = r["summary"], recipes + r["recipes"]
        print(name, [(x["recipe"], x["speedup_over_fp32"], x["mean_cosine"], x["top5_overlap"]) for x in r["recipes"]])
    this = this_cpu()
    result = {"what": ("INT8 per family: for each model, FP32 and every INT8 recipe onnx-search tries for this CPU "
                       f"({this['target_isa']} list), static QDQ and dynamic; `chosen` marks the recipe the tool "
                       "keeps for each method (the first, in the list's order, whose mean cosine to FP32 on 16 "
                       "calibration images reaches the target and which is faster than FP32). `meets_bar`: mean "
                       f"cosine >= {BAR['mean_cosine']}, top-5 overlap >= {BAR['top5_overlap']} and speed >= "
                       f"{BAR['speedup_over_fp32']}x FP32 on these images (empty where speed was not timed)."
                       + (f" Run under an emulated CPU ({a.emulated}): agreement only, no speed." if a.emulated
                          else "")),
              "method": "img/s at batch 8, median of interleaved passes; speed-up over FP32: geometric mean of "
                        "each pass's ratio to FP32, 95% interval by Student t on the log ratios. Agreement with FP32 "
                        "on the images: mean/min cosine, top-5 overlap of each image's neighbours, top-10 agreement; "
                        "the 95% intervals of the mean cosine and the top-5 overlap resample images (bootstrap, or "
                        "the score interval below 20 images; neighbour overlaps of one set are not independent, so "
                        "that interval is approximate). `meets_bar` reads the point values, "
                        "`meets_bar_at_95_lower_bounds` the intervals' lower ends.",
              "target_isa": this["target_isa"], "emulated": a.emulated, "bar": BAR,
              "recipes": recipes, "models": models, "machine": machine(), "versions": library_versions()}  # fmt: skip
    name = "int8_methods_emulated.json" if a.emulated else "int8_methods.json"
    print(f"wrote {write_result(a.out, name, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
