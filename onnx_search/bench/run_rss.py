"""Peak RSS of a whole ``onnx-search run`` by the number of models (run_rss.json): how memory grows.

The models are the registry models' FP32 files, then their INT8, then their FP16 variants (2, 4, 6 models),
given to the run as .onnx paths so that nothing is converted inside it (variants missing from the models folder
are made first, each in its own child process). Each run is a fresh interpreter that reports its own peak
(VmHWM), on a small generated labelled set with a short cost phase.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..models.isolated import variant_isolated
from ..models.variants import calibration_files
from ..models.zoo import get_spec
from ..provenance import library_versions, machine
from ..store.local_redis import LocalRedis
from ..synth import generate_labelled_set

CHILD = (
    "import sys\nfrom onnx_search.cli import main\nfrom onnx_search.provenance import peak_rss_mb\n"
    "rc = main(sys.argv[1:])\nprint('PEAK_MB', peak_rss_mb())\nsys.exit(rc)"
)


def ladder(models_dir: Path, names: list[str], calibration: list[Path], n: int) -> list[Path]:
    """The first ``n`` of: FP32 files of ``names``, then their int8, then their fp16 variants (made when missing)."""
    order = [(name, v) for v in ("fp32", "int8", "fp16") for name in names][:n]
    return [
        variant_isolated(name, v, models_dir, calibration=calibration).result.path  # INT8: named by its inputs
        if v != "fp32"
        else get_spec(name).onnx_path(models_dir)
        for name, v in order
    ]


def run_peak_rss_mb(config: Path, data: Path) -> float:
    """Peak RSS of ``onnx-search run config`` in a fresh child process, in MB."""
    r = subprocess.run([sys.executable, "-c", CHILD, "run", str(config), "--quiet"], capture_output=True, text=True,
                       timeout=3600)  # fmt: skip
    LocalRedis(data).stop()
    if r.returncode != 0 or "PEAK_MB" not in r.stdout:
        raise RuntimeError(f"run of {config} failed (exit {r.returncode}): {r.stderr[-2000:]}")
    return float(r.stdout.split("PEAK_MB")[1].split()[0])


def bench_run_rss(models_dir: Path, work: Path, names=("resnet50", "vgg16"), counts=(2, 4, 6)) -> dict:
    """Peak RSS of a run with each number of models in ``counts`` (at most 3 per name: fp32, int8, fp16)."""
    images = work / "images"
    generate_labelled_set(images, per_class=4, size=96, seed=7)
    models = ladder(models_dir, list(names), calibration_files(images), max(counts))
    peaks = {}
    for n in counts:
        data = (work / f"data_{n}").resolve()
        config = work / f"rss_{n}.yaml"
        entries = "\n".join(f"  - name: {p.resolve()}" for p in models[:n])
        config.write_text(
            f"experiment: rss_{n}\noutput: {(work / 'runs').resolve()}\ndata_dir: {data}\ntop_k: 3\n"
            f"dataset: {{root: {images.resolve()}}}\nmodels:\n{entries}\nqueries: {{sample: 4}}\ngrid_queries: 0\n"
            "cost: {images: 4, repeats: 1}\n"
        )
        peaks[str(n)] = round(run_peak_rss_mb(config, data), 1)
        print(f"run with {n} models: peak RSS {peaks[str(n)]:,.0f} MB", flush=True)
    return {
        "peak_rss_mb": peaks,
        "models": {str(n): [p.name for p in models[:n]] for n in counts},
        "images": len(calibration_files(images)),
        "method": "onnx-search run in a fresh process per count, models given as .onnx paths; VmHWM at its end",
        "machine": machine(),
        "versions": library_versions(),
    }
