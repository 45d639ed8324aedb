"""Peak memory of a whole ``onnx-search run`` on a camera roll (camera_roll.json).

A folder of generated camera-like JPEGs (``camera_roll``: 4000x3000 and 3024x4032, some stored sideways with an
EXIF orientation tag, 1-3 MB each, in a few subfolders) and an experiment on it with EfficientNet-Lite0 FP32 and
INT8, augmented copies as ground truth (50 originals x 8 transforms) and the cost phase. The run is a child process;
the figure is the largest sum of resident memory over its whole process tree (it and every process it starts,
sampled from /proc), beside the largest single process's own peak (VmHWM, which the kernel keeps).

``python -m onnx_search.bench.camera_roll --work bench/work`` (``make bench-camera``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..provenance import library_versions, machine
from ..store.local_redis import LocalRedis
from .results import WORK, default_out, write_result

FOLDERS = ("DCIM/100CANON", "DCIM/101CANON", "Camera", "Trips/2023/Lisbon")
NOISE_TILE = 1021  # a prime side: the tiled grain never lines up with JPEG's 8x8 blocks
SIZES = ((4000, 3000), (3024, 4032))
ORIENTATIONS = (None, None, 6, 8)  # half the photos upright, half stored sideways with the tag that turns them


def _scene(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth scene (two-colour gradient, a soft wave, a few filled shapes) drawn at 1/10 scale, then enlarged."""
    lw, lh = w // 10, h // 10
    y, x = np.mgrid[0:lh, 0:lw] / max(lw, lh)
    c0, c1, c2 = rng.uniform(20, 235, (3, 3))
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * x + np.sin(a) * y)[..., None]
    base = c0 * (1 - t) + c1 * t + 25 * np.sin(6 * x + rng.uniform(0, 6))[..., None] * (c2 / 255)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):
        cx, cy = int(rng.integers(0, lw)), int(rng.integers(0, lh))
        r = int(rng.integers(lh // 12, lh // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon([(cx + int(rng.integers(-r, r)), cy + int(rng.integers(-r, r))) for _ in range(3)], fill=fill)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(1.5)).resize((w, h), Image.BICUBIC))


def camera_roll(root: str | Path, count: int = 320, seed: int = 0, quality: int = 88) -> list[Path]:
    """Write ``count`` camera-like JPEGs under ``root`` (seeded; files already there are left alone).

    Each is a 4000x3000 or 3024x4032 photo as seen upright; a quarter are stored rotated with EXIF orientation 6 and a
    quarter with 8 (so the stored pixels are sideways, as a phone writes them). Sensor-like grain (a seeded noise
    tile at a random offset) makes each file 1-3 MB at JPEG quality 88, as a camera's. About 0.5 s per photo."""
    rng = np.random.default_rng(seed)
    grain = rng.integers(-10, 11, (NOISE_TILE, NOISE_TILE, 3)).astype(np.int16)
    written = []
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        orientation = ORIENTATIONS[(i // len(SIZES)) % len(ORIENTATIONS)]
        path = Path(root) / FOLDERS[i % len(FOLDERS)] / f"IMG_{1000 + i:04d}.JPG"
        photo_rng = np.random.default_rng([seed, i])  # each photo its own generator: any one can be made alone
        written.append(path)
        if path.exists():
            continue
        arr = _scene(photo_rng, w, h).astype(np.int16)
        oy, ox = (int(v) for v in photo_rng.integers(0, NOISE_TILE, 2))
        arr += np.tile(grain, (h // NOISE_TILE + 2, w // NOISE_TILE + 2, 1))[oy : oy + h, ox : ox + w]
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "onnx-search", "synthetic camera"  # Make, Model
        if orientation == 6:  # shown upright after a 90 degree clockwise turn: stored turned the other way
            img, exif[0x0112] = img.transpose(Image.Transpose.ROTATE_90), 6
        elif orientation == 8:
            img, exif[0x0112] = img.transpose(Image.Transpose.ROTATE_270), 8
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        img.save(tmp, "JPEG", quality=quality, exif=exif)
        os.replace(tmp, path)
    return written


def _tree_rss_kb(root: int) -> tuple[int, int, int]:
    """(sum of VmRSS, largest VmHWM, process count) over ``root`` and its descendants alive now, in kB."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    todo, rss, hwm, n = [root], 0, 0, 0
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS:", "VmHWM:")))
        except OSError:
            continue
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        hwm = max(hwm, int(fields.get("VmHWM", "0 kB").split()[0]))
        n += 1
    return rss, hwm, n


def run_tree_peak(cmd: list[str], every: float = 0.5, log: Path | None = None) -> dict:
    """Run ``cmd``; its whole process tree's peak RSS (sampled every ``every`` s), largest process peak, seconds."""
    peak = {"tree_kb": 0, "process_kb": 0, "processes": 0}
    stop = threading.Event()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def sample() -> None:
        while not stop.is_set():
            rss, hwm, n = _tree_rss_kb(proc.pid)
            peak["tree_kb"], peak["process_kb"] = max(peak["tree_kb"], rss), max(peak["process_kb"], hwm)
            peak["processes"] = max(peak["processes"], n)
            stop.wait(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    stop.set()
    sampler.join()
    if log:
        out.close()
    return {"exit_status": rc, "seconds": round(time.monotonic() - t0, 1),
            "peak_tree_rss_mb": round(peak["tree_kb"] / 1024), "peak_process_mb": round(peak["process_kb"] / 1024),
            "max_processes": peak["processes"], "sample_every_s": every}  # fmt: skip


def write_config(work: Path, images: Path, models_dir: Path, augment: int, transforms: list[str]) -> Path:
    config = work / "camera_roll.yaml"
    config.write_text(
        "# written by onnx_search.bench.camera_roll\n"
        f"experiment: camera_roll\noutput: {(work / 'runs').resolve()}\ndata_dir: {(work / 'data').resolve()}\n"
        f"models_dir: {models_dir.resolve()}\nseed: 0\ntop_k: 10\n"
        f"dataset: {{root: {images.resolve()}, labels: false}}\n"
        "models:\n  - {name: efficientnet-lite0, weights: imagenet, variants: [fp32, int8]}\n"
        "store: {metric: COSINE, index: {type: FLAT}}\n"
        f"queries:\n  sample: 20\n  augment: {{sample: {augment}, seed: 0, transforms: [{', '.join(transforms)}]}}\n"
        "grid_queries: 2\ncost: {images: 16, repeats: 1}\n"
    )
    return config


TRANSFORMS = ["crop", "rotate", "hflip", "color", "blur", "jpeg", "downscale", "overlay"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=default_out(), help="folder of camera_roll.json (default: %(default)s)")
    p.add_argument("--work", type=Path, default=WORK, help="folder of the photos, data and runs")
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--count", type=int, default=320, help="photos generated (at least 300 for the figure)")
    p.add_argument("--augment", type=int, default=50, help="originals with copies (8 transforms each)")
    a = p.parse_args(argv)
    work = (a.work / "camera_roll").resolve()
    images = work / "images"
    t = time.perf_counter()
    files = camera_roll(images, a.count)
    generate_s = round(time.perf_counter() - t, 1)
    config = write_config(work, images, a.models_dir, a.augment, TRANSFORMS)
    cmd = [sys.executable, "-m", "onnx_search.cli", "run", str(config), "--quiet"]
    print(f"{len(files)} photos under {images} ({generate_s} s); running: {' '.join(cmd)}", flush=True)
    measured = run_tree_peak(cmd, log=work / "run.log")
    LocalRedis(work / "data").stop()  # an embedded redis-server left by the run is not part of the next figure
    if measured["exit_status"] != 0:
        print((work / "run.log").read_text()[-3000:], file=sys.stderr)
        print(f"run failed (exit {measured['exit_status']}); its log: {work / 'run.log'}", file=sys.stderr)
        return 1
    result = {
        "what": "onnx-search run on generated camera JPEGs: EfficientNet-Lite0 FP32 + INT8, augmented copies "
        f"({a.augment} originals x {len(TRANSFORMS)} transforms), cost phase; peak RSS of the whole process tree",
        "images": len(files),
        "image_bytes": sum(f.stat().st_size for f in files),
        "sizes": [list(s) for s in SIZES],
        "exif_rotated": sum(1 for i in range(len(files)) if ORIENTATIONS[(i // len(SIZES)) % len(ORIENTATIONS)]),
        "augment": {"sample": a.augment, "transforms": TRANSFORMS},
        "generate_s": generate_s,
        "config": config.read_text(),
        **measured,
        "target_peak_tree_rss_mb": 3072,
        "machine": machine(),
        "versions": library_versions(),
    }
    path = write_result(a.out, "camera_roll.json", result)
    print(f"camera roll: {len(files)} photos, peak RSS {measured['peak_tree_rss_mb']:,} MB (process tree), "
          f"{measured['seconds']} s -> {path}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
