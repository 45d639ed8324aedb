"""Peak memory of converting each registry model (convert_memory.json): what a laptop must hold.

Each model is converted with random weights (``force``: really converted, not skipped) in its own child process,
one at a time, exactly as ``onnx-search convert`` does; the figure is that child's VmHWM. With ``--baseline``,
the models named are also converted with protobuf's default (upb) backend, the setting before the fix described
in ``convert_keras.CHILD_ENV``, so the JSON holds both sides of the comparison.

Each converted file is also loaded once in this process (onnxruntime, CPU) for its dim, family and speed (img/s of
one batch of 8 after a warm-up batch), so ``--models ... --json families.json`` writes the README's model-families
table (its ``families`` view) from the same children.

    python -m onnx_search.bench.convert_memory [--models resnet50,vgg16] [--baseline resnet50,vgg16]
        [--work bench/work] [--json convert_memory.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..models.family import family
from ..models.isolated import convert_isolated
from ..models.session import ModelSession, SessionConfig
from ..models.zoo import REGISTRY, get_spec
from ..provenance import library_versions, machine
from .results import WORK, default_out, write_result

LIMIT_MB = 3000  # the goal: every registry conversion fits beside a desktop on an 8 GB laptop
PROTOBUF = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
SPEED_BATCH = 8


def speed(path: Path, batch: int = SPEED_BATCH) -> dict:
    """Dim, family and img/s of one batch of ``batch`` seeded random inputs after a warm-up batch (CPU session)."""
    session = ModelSession(path, SessionConfig(providers=["CPUExecutionProvider"]))
    r, hw = session.recipe, (session.recipe.input_size,) * 2
    shape = (batch, 3, *hw) if r.layout == "NCHW" else (batch, *hw, 3)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    session.embed(x)  # warm-up: the first run allocates and picks kernels
    t0 = time.perf_counter()
    session.embed(x)
    seconds = time.perf_counter() - t0
    return {"dim": session.dim, "family": family(session.meta), "img_s": round(batch / seconds, 2),
            "speed_batch": batch, "provider": session.provider}  # fmt: skip


def convert_peak(name: str, work: Path, protobuf: str | None = None, measure_speed: bool = True) -> dict:
    """Convert ``name`` in a child (``protobuf``: that protobuf backend forced there) and return its figures, with
    the file's dim, family and img/s (``speed``) unless ``measure_speed`` is False."""
    before = os.environ.get(PROTOBUF)
    if protobuf:
        os.environ[PROTOBUF] = protobuf  # the caller's environment wins over the backend's in the child
    try:
        with tempfile.TemporaryDirectory(dir=work) as out:
            child = convert_isolated(name, out, weights="random", seed=0, force=True)
            size = child.result.path.stat().st_size
            speeds = speed(child.result.path) if measure_speed else {}
    finally:
        os.environ.pop(PROTOBUF, None) if before is None else os.environ.__setitem__(PROTOBUF, before)
    return {"source": get_spec(name).source, "peak_rss_mb": round(child.peak_rss_mb),
            "seconds": round(child.seconds, 1), "file_mb": round(size / 1e6, 1),
            "parity_max_abs_diff": child.result.metadata["parity"]["max_abs_diff"],
            "protobuf": protobuf or "backend default"} | speeds  # fmt: skip


def bench_convert_memory(
    names: list[str], work: Path, baseline: list[str] = (), log=print, save=lambda result: None
) -> dict:
    """Every model in ``names`` converted once (those in ``baseline`` again with upb protobuf); ``save`` is called
    with the figures so far after each model, so a long run that stops keeps what it measured."""
    models, before = {}, {}
    for name in names:
        models[name] = convert_peak(name, work)
        m = models[name]
        log(f"{name}: peak {m['peak_rss_mb']:,} MB in {m['seconds']} s, dim {m['dim']}, {m['img_s']} img/s")
        if name in baseline:
            before[name] = convert_peak(name, work, protobuf="upb", measure_speed=False)
            log(f"{name} with upb protobuf: peak {before[name]['peak_rss_mb']:,} MB")
        save(_result(models, before))
    return _result(models, before)


def _result(models: dict, before: dict) -> dict:
    over = {n: m["peak_rss_mb"] for n, m in models.items() if m["peak_rss_mb"] > LIMIT_MB}
    keys = ("family", "dim", "file_mb", "seconds", "parity_max_abs_diff", "img_s")
    return {
        "models": models,
        "families": [{"model": n} | {k: m.get(k) for k in keys} for n, m in models.items()],
        "with_upb_protobuf": before,
        "limit_mb": LIMIT_MB,
        "over_limit": over,
        "method": "onnx_search.models.isolated.convert_isolated(name, weights='random', force=True), one model at a "
        "time; peak_rss_mb is the child's VmHWM (the parent process is not counted); seconds is the child's wall time "
        "(start, random weights, export, parity); parity_max_abs_diff = max |ONNX - source framework| on unit "
        f"vectors (the file's parity metadata); img_s = one batch of {SPEED_BATCH} seeded random inputs after a "
        "warm-up batch, onnx_search.models.session.ModelSession on CPUExecutionProvider in the parent",
        "machine": machine(),
        "versions": library_versions(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    p.add_argument("--models", default=",".join(REGISTRY), help="comma list of registry names (default: all)")
    p.add_argument("--baseline", default="", help="comma list of models to convert again with upb protobuf")
    p.add_argument(
        "--work", type=Path, default=WORK, help="folder for the temporary .onnx files (default: %(default)s)"
    )
    p.add_argument("--json", default="convert_memory.json", help="file name under --out (default: %(default)s)")
    a = p.parse_args(argv)
    names = [get_spec(n).name for n in a.models.split(",") if n]
    if not names:
        p.error("--models names no model: give a comma list of registry names")
    if not a.json.endswith(".json") or "/" in a.json:
        p.error(f"--json {a.json!r}: give a file name ending .json (it is written under --out)")
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    path = a.out / a.json
    result = bench_convert_memory(names, work, [n for n in a.baseline.split(",") if n],
                                  save=lambda r: write_result(a.out, a.json, r))  # fmt: skip
    print(f"wrote {path}; over {LIMIT_MB:,} MB: {result['over_limit'] or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
