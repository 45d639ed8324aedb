"""End to end embedding against the shared bound, and where each image's core-milliseconds go (embed.json).

On a CPU-only machine decoding and the model share the cores, so the ceiling of end-to-end embedding is not the
model-only rate R_model but the shared bound 1 / (1/R_model + 1/R_decode), where R_decode is the rate of the decode
side alone (read, hash, decode, resize, normalise, with the pipeline's own threads). Both are measured with the
whole machine and interleaved with the end-to-end run in one process, pass by pass; the fraction of the bound is the
median of the passes' own fractions, so the machine's slow swings hit all three alike.

The profile is single-threaded CPU time per stage (``time.thread_time``), before (Pillow's draft decode and
``prepare_batch`` on the inference thread, as the pipeline did) and after (simplejpeg at the same DCT scale and the
recipe's normalisation fused into one lookup pass in the decode threads).

Images: JPEGs made from the photos scikit-image and Matplotlib ship (``onnx_search.photos``): a seeded 4:3 crop
of a photo (area 50-100%), resized to 640x480 or upscaled to 4000x3000 (bicubic), Gaussian grain added (sigma 2 and
3 grey levels: upscaled photos are too smooth to compress like a camera's) and saved at quality 90, 4:2:0.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..embed.decode import _to_rgb, decode, draft_scale, needed_side, read_bytes, resize
from ..embed.normalize import FusedNormalizer
from ..embed.pipeline import Pipeline
from ..embed.sinks import MemorySink, drain
from ..ids import content_hash
from ..models.recipe import prepare_batch, read_metadata_file
from ..models.session import ModelSession, SessionConfig
from ..provenance import library_versions, machine

# name -> (width, height), images per pass, grain sigma
SETS = {"640x480": ((640, 480), 192, 2.0), "4000x3000": ((4000, 3000), 48, 3.0)}
MODELS = ("efficientnet-lite0.int8", "resnet50")


def rate(fn, images: int) -> float:
    t = time.perf_counter()
    fn()
    return images / (time.perf_counter() - t)


def photo_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` photo-sized JPEGs (640x480, smooth content plus noise), generated, not downloaded."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(n):
        p = root / f"photo_{i:04d}.jpg"
        if p.exists():
            continue
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], -1) * 100 + 128
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(p, quality=88)
    return root


def camera_set(root: Path, size: tuple[int, int], n: int, grain: float, seed: int = 0) -> list[Path]:
    """``n`` JPEGs of ``size`` from the package photos (see the module's docstring); made once, reused."""
    from PIL import Image

    from ..photos import available_photos

    root.mkdir(parents=True, exist_ok=True)
    files = [root / f"img_{i:04d}.jpg" for i in range(n)]
    if all(p.is_file() for p in files):
        return files
    photos = [_to_rgb(Image.open(path)) for _, path in available_photos()]
    rng = np.random.default_rng(seed)
    w, h = size
    for i, p in enumerate(files):
        photo = photos[i % len(photos)]
        pw, ph = photo.size
        cw = min(pw, ph * 4 / 3) * np.sqrt(rng.uniform(0.5, 1.0))
        ch = cw * 3 / 4
        x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
        img = photo.resize((w, h), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        px = np.asarray(img, dtype=np.float32) + rng.normal(0, grain, (h, w, 3)).astype(np.float32)
        Image.fromarray(np.clip(px + 0.5, 0, 255).astype(np.uint8)).save(p, quality=90, subsampling=2)
    return files


def int8_lite0(models_dir: Path, work: Path) -> Path:
    """The INT8 EfficientNet-Lite0 (static QDQ) calibrated on the package photos; made once beside its parent."""
    from ..models.variants import make_variant
    from ..photos import copy_photos

    return make_variant("efficientnet-lite0", "int8", models_dir, calibration=copy_photos(work / "calibration")).path


def _cpu_ms(fn, *args):
    t = time.thread_time()
    out = fn(*args)
    return out, (time.thread_time() - t) * 1e3


def _pillow_decode(data: bytes, draft_size: int):
    return decode(data, draft_size=draft_size, turbo=False)


def profile(files: list[Path], session: ModelSession, batch: int = 32) -> dict:
    """Single-threaded core-ms per image and stage, before and after (see the module's docstring)."""
    recipe, g = session.recipe, session.recipe.geometry
    side, fused = needed_side(g), FusedNormalizer(recipe)
    out = {}
    for when, dec in (("before", _pillow_decode), ("after", decode)):
        st = dict.fromkeys(("read", "hash", "decode", "resize", "normalise"), 0.0)
        pixels, inputs = [], []
        for p in files:
            data, ms = _cpu_ms(read_bytes, p)
            st["read"] += ms
            st["hash"] += _cpu_ms(content_hash, data)[1]
            img, ms = _cpu_ms(dec, data, side)
            st["decode"] += ms
            arr, ms = _cpu_ms(resize, img, *g)
            st["resize"] += ms
            pixels.append(arr)
            if when == "after":
                x, ms = _cpu_ms(fused, arr)
                st["normalise"] += ms
                inputs.append(x)
        for s in range(0, len(files), batch):  # before: the whole batch on the inference thread
            if when == "before":
                st["normalise"] += _cpu_ms(lambda s=s, px=pixels: prepare_batch(np.stack(px[s : s + batch]), recipe))[1]
            else:
                st["stack"] = st.get("stack", 0.0) + _cpu_ms(lambda s=s, xs=inputs: np.stack(xs[s : s + batch]))[1]
        per = {k: round(v / len(files), 3) for k, v in st.items()}
        per["decode_side_total"] = round(sum(v for k, v in per.items() if k != "stack"), 3)
        out[when] = per
    return out


def _consume(it) -> None:
    for _ in it:
        pass


def interleaved(session: ModelSession, files: list[Path], reps: int, batch: int = 32) -> dict:
    """R_model, R_decode and end to end, interleaved pass by pass, with their core-ms per image."""
    name = session.name
    pipe = Pipeline({name: session}, batch_size=batch, progress=False)
    tasks = [(p, frozenset([name])) for p in files]
    x = np.stack([it.inputs[name] for it in pipe.decoded(tasks[:batch])])
    n_batches = -(-len(files) // batch)
    one = Pipeline({name: session}, batch_size=batch, workers=1, progress=False)  # the GIL check: 1 thread
    raw: dict[str, list[float]] = {"model": [], "decode": [], "end_to_end": [], "decode_1_thread": []}
    cpu: dict[str, list[float]] = {k: [] for k in raw}
    runs = {
        "model": lambda: [session.embed(x) for _ in range(n_batches)],
        "decode": lambda: _consume(pipe.decoded(tasks)),
        "end_to_end": lambda: drain(pipe, files, MemorySink({name: session.dim})),
        "decode_1_thread": lambda: _consume(one.decoded(tasks)),
    }
    n_images = {"model": n_batches * len(x)} | dict.fromkeys(("decode", "end_to_end", "decode_1_thread"), len(files))
    runs["end_to_end"]()  # warm-up: the session's first batches, the thread pool
    for _ in range(reps):
        for key, fn in runs.items():
            c = time.process_time()
            raw[key].append(rate(fn, n_images[key]))
            cpu[key].append((time.process_time() - c) * 1e3 / n_images[key])
    fractions = [
        e / (1 / (1 / m + 1 / d)) for m, d, e in zip(raw["model"], raw["decode"], raw["end_to_end"], strict=True)
    ]
    med = {k: float(np.median(v)) for k, v in raw.items()}
    return {
        "R_model_img_per_s": round(med["model"], 2),
        "R_decode_img_per_s": round(med["decode"], 2),
        "end_to_end_img_per_s": round(med["end_to_end"], 2),
        "shared_bound_img_per_s": round(1 / (1 / med["model"] + 1 / med["decode"]), 2),
        "fraction_of_shared_bound": round(float(np.median(fractions)), 3),
        "fraction_of_model_only": round(med["end_to_end"] / med["model"], 3),
        # decode threads over one thread: the core count when the GIL does not limit decoding
        "decode_thread_scaling": round(med["decode"] / med["decode_1_thread"], 2),
        "core_ms_per_image": {k: round(float(np.median(v)), 3) for k, v in cpu.items()},
        "raw_img_per_s": {k: [round(v, 2) for v in vs] for k, vs in raw.items()},
        "raw_fractions": [round(f, 3) for f in fractions],
        "batch_size": batch,
        "decode_workers": pipe.workers,
        "intra_op_threads": session.options.intra_op_threads or os.cpu_count(),
    }


def decoder_settings(files: list[Path], session: ModelSession) -> dict:
    """What decodes these files for this recipe: the library, its DCT scale and the decoded size."""
    from PIL import Image

    side = needed_side(session.recipe.geometry)
    with Image.open(io.BytesIO(read_bytes(files[0]))) as img:
        size = img.size
    s = draft_scale(size, side)
    return {
        "decoder": "simplejpeg (libjpeg-turbo), fastdct=False, fastupsample=False; Pillow for other formats",
        "dct_scale": f"1/{s}",
        "decoded_size": f"{-(-size[0] // s)}x{-(-size[1] // s)}",
        "needed_side": side,
        "geometry": list(session.recipe.geometry),
    }


def parse_sets(text: str) -> dict:
    """``640x480:192,4000x3000:48`` -> SETS-like entries (grain as SETS gives it for that size, else 2)."""
    out = {}
    for part in filter(None, text.split(",")):
        label, n = part.split(":")
        w, h = (int(v) for v in label.split("x"))
        out[label] = ((w, h), int(n), SETS.get(label, (None, None, 2.0))[2])
    return out


def bench_embed(
    models_dir: Path, work: Path | None = None, reps: int = 3, sets: dict | None = None, models=MODELS
) -> dict:
    """embed.json: per model and image size, the interleaved rates, the bound and the profile.

    ``models``: registry names in ``models_dir``; ``efficientnet-lite0.int8`` is made from its parent there."""
    work = work or Path(tempfile.mkdtemp())
    sets = sets or SETS
    paths = {
        m: int8_lite0(models_dir, work) if m == "efficientnet-lite0.int8" else models_dir / f"{m}.onnx" for m in models
    }
    out: dict = {
        "machine": machine(),
        "versions": library_versions(),
        "reps": reps,
        "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "profile_method": __doc__.split("\n\n")[2].replace("\n", " "),
        "images": __doc__.split("\n\n")[3].replace("\n", " "),
    }
    files = {label: camera_set(work / f"images_{label}", size, n, grain) for label, (size, n, grain) in sets.items()}
    for name, path in paths.items():
        session = ModelSession(path, SessionConfig(["cpu"]))
        weights = read_metadata_file(path).get("weights")  # "random:0": a speed figure only
        out[name] = {"file": path.name, "weights": weights, "providers": session.providers_active}
        for label, fs in files.items():
            res = {"images": len(fs), "mean_file_kb": round(float(np.mean([p.stat().st_size for p in fs])) / 1024)}
            res |= decoder_settings(fs, session)
            res["profile_core_ms_per_image"] = profile(fs[: min(len(fs), 32)], session)
            prof = res["profile_core_ms_per_image"]
            res["decode_core_ms_per_image"] = {
                "before": prof["before"]["decode_side_total"],
                "after": prof["after"]["decode_side_total"],
            }
            res |= interleaved(session, fs, reps)
            out[name][label] = res
            print(
                f"{name} {label}: R_model {res['R_model_img_per_s']}, R_decode {res['R_decode_img_per_s']}, "
                f"end to end {res['end_to_end_img_per_s']} img/s = {res['fraction_of_shared_bound']:.0%} of the "
                f"shared bound; decode core-ms {res['decode_core_ms_per_image']}",
                flush=True,
            )
    return out


if __name__ == "__main__":
    import argparse

    from .results import WORK, default_out, write_result

    ap = argparse.ArgumentParser(description="embed.json: end to end against the shared bound")
    ap.add_argument("--models-dir", default="models", type=Path)
    ap.add_argument("--out", default=default_out(), type=Path, help="results folder (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sets", default="", help="image sets, e.g. 640x480:192,4000x3000:48 (the default)")
    a = ap.parse_args()
    work, sets = WORK / "embed", parse_sets(a.sets) or None
    result = bench_embed(a.models_dir, work, reps=a.reps, sets=sets, models=a.models.split(","))
    write_result(a.out, "embed.json", result)
