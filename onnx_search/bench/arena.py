"""onnxruntime's CPU memory arena on and off (arena.json): the peak of one process holding several models.

For each setting a fresh interpreter opens one session per model (``SessionConfig(memory_arena=...)``), embeds
one batch of random pixels through each in turn, ``--rounds`` times, and reports its own peak RSS (VmHWM) and the
seconds per round. The arena keeps each session's largest activations for good, so with several models they add
up; the default (off) is what a run uses.

    python -m onnx_search.bench.arena --models-dir models --models resnet50,vgg16,efficientnet-lite0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ..provenance import library_versions, machine
from .results import default_out, write_result

CHILD = """
import json, sys, time
import numpy as np
from onnx_search.models.session import ModelSession, SessionConfig, resolve_model_path
from onnx_search.provenance import peak_rss_mb
models_dir, names, arena, batch, rounds = sys.argv[1], sys.argv[2].split(","), sys.argv[3] == "on", \\
    int(sys.argv[4]), int(sys.argv[5])
sessions = [ModelSession(resolve_model_path(n, models_dir), SessionConfig(["cpu"], memory_arena=arena)) for n in names]
rng = np.random.default_rng(0)
times = []
for _ in range(rounds):
    t = time.perf_counter()
    for s in sessions:
        shape = (batch, 3, s.recipe.input_size, s.recipe.input_size) if s.recipe.layout == "NCHW" else \\
            (batch, s.recipe.input_size, s.recipe.input_size, 3)
        s.embed(rng.random(shape, dtype=np.float32))
    times.append(time.perf_counter() - t)
print(json.dumps({"peak_rss_mb": round(peak_rss_mb()), "seconds_per_round": round(float(np.median(times)), 2)}))
"""


def measure(models_dir: Path, names: list[str], arena: bool, batch: int, rounds: int) -> dict:
    """Peak RSS and median seconds per round of a fresh process with the arena ``arena``."""
    args = [str(models_dir), ",".join(names), "on" if arena else "off", str(batch), str(rounds)]
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"arena {'on' if arena else 'off'} failed (exit {r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--models", default="resnet50,vgg16,efficientnet-lite0,dinov2-vits14", help="comma list")
    p.add_argument("--batch", type=int, default=32, help="images per batch (a run's default: 32)")
    p.add_argument("--rounds", type=int, default=3, help="batches through every model (default: 3)")
    p.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    a = p.parse_args(argv)
    names = [n for n in a.models.split(",") if n]
    result = {"models": names, "batch": a.batch, "rounds": a.rounds,
              "arena_on": measure(a.models_dir, names, True, a.batch, a.rounds),
              "arena_off": measure(a.models_dir, names, False, a.batch, a.rounds),
              "method": "a fresh process per setting: one session per model, one batch each per round; VmHWM at "
                        "the end", "machine": machine(), "versions": library_versions()}  # fmt: skip
    path = write_result(a.out, "arena.json", result)
    print(f"arena on: {result['arena_on']}; off: {result['arena_off']}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
