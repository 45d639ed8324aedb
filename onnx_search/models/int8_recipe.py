"""Which INT8 recipe a file is made with, chosen by measurement for the CPU that will run it.

ONNX Runtime's u8s8 kernels (u8 activations, s8 weights) multiply with VPMADDUBSW on x86 without VNNI (AVX2, and
AVX-512 without VNNI), which adds two products into a saturating int16: large weights times large activations
clip, and the vectors drift from FP32's. VNNI adds into int32 and never saturates. So the recipe that keeps
quality depends on the target ISA (``int8_target``: ``vnni``, ``avx2``, ...), and no recipe fits both.

The candidates are ONNX Runtime's own quantisation options (``Candidate``): u8s8, u8s8 with ``reduce_range``
(7-bit weights: 2 x 255 x 64 fits int16, nothing saturates), S8S8, U8U8
(weights uint8: multiplied as int16, nothing saturates), and leaving the nodes whose weights suffer most in float
(ranked by ``onnxruntime.quantization.qdq_loss_debug``). Each target ISA tries them in the order of their expected
speed, fastest first (``CANDIDATES``). ``search`` makes and measures one after the other and stops at the first
that reaches the target; ``choose`` keeps the fastest that reaches it, else the one closest to FP32, with the
reason. A candidate reaches the target when its mean cosine to FP32 on the measured images is at least
``TARGET[graph kind]`` and, where speed was measured, it is faster than FP32 (an INT8 file slower than its parent
has no use). The targets, measured on a VNNI CPU and under an emulated AVX2 one (QEMU ``-cpu Haswell``):
- conv (static QDQ, a CNN): 0.97. Trained EfficientNet-Lite0's u8s8 gives 0.981 on VNNI and 0.869 on AVX2 (top-1
  agreement with FP32 0.81 vs 0.56); below about 0.97 its top-1 agreement falls under 0.75 and neighbours move.
- matmul (dynamic, a transformer): 0.999. Dynamic INT8 quantises only the MatMul weights; unsaturated it costs
  under 0.0006 (timm's test ViT: 0.9997 with u8s8 on VNNI, 0.9994 with reduce_range on either), saturated 0.994.

Agreement measured on this CPU holds for another target only for a recipe that cannot saturate (``exact``): its
integers are the same on every x86 ISA. A candidate that can saturate is left unmeasured for another target
(``measured`` false), and speed is only measured where the target is this CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import provenance

TARGET_ISAS = ("avx2", "vnni")  # what --target names besides auto (this CPU)
TARGET = {"conv": 0.97, "matmul": 0.999}  # mean cosine to FP32 on the measured images (module docstring)
MIN_SPEEDUP = 1.0  # an INT8 recipe must be faster than FP32 where its speed is measured
MEASURE_IMAGES = 16  # images the agreement is measured on (the first of the calibration sample; the targets
# sit far from the saturated recipes, 0.97 against 0.87-0.94 on AVX2, so 16 images separate them)
FLOAT_NODES = 8  # nodes left in float by the qdq_loss_debug candidate


@dataclass(frozen=True)
class Candidate:
    """One INT8 recipe: ONNX Runtime quantisation options."""

    name: str
    activations: str = "uint8"  # uint8 | int8
    weights: str = "int8"  # int8 | uint8
    reduce_range: bool = False  # 7-bit weights
    calibration: str = "MinMax"  # static only; MinMax (the histogram methods hold every image: see CANDIDATES)
    float_nodes: int = 0  # nodes left in float, the most damaged by qdq_loss_debug's weight error (static only)

    @property
    def exact(self) -> bool:
        """Whether the kernels compute the same integers on every x86 ISA: nothing can saturate (7-bit weights,
        or uint8 weights, which the u8u8 kernels widen to int16 before multiplying)."""
        return self.reduce_range or self.weights == "uint8"

    def as_dict(self) -> dict:
        return asdict(self)


U8S8 = Candidate("u8s8")
RR = Candidate("u8s8-reduce-range", reduce_range=True)
CANDIDATES: dict[str, tuple[Candidate, ...]] = {
    # a CNN, static QDQ; fastest expected first
    # (no U8U8 for VNNI: many times slower than u8s8 there, and u8s8 does not saturate)
    # (no Percentile/Entropy calibration: onnxruntime's histogram calibrators keep every calibration image's
    # activations in memory before they build histograms, unbounded per image; under emulated AVX2 reduce_range
    # with Percentile gave 0.934 against MinMax's 0.936 on trained Lite0: no gain for that memory)
    "conv/vnni": (U8S8, Candidate(f"u8s8-float{FLOAT_NODES}", float_nodes=FLOAT_NODES),
                  Candidate("s8s8", activations="int8")),
    "conv/avx2": (U8S8, RR,
                  Candidate(f"u8s8-reduce-range-float{FLOAT_NODES}", reduce_range=True, float_nodes=FLOAT_NODES),
                  Candidate("u8u8", weights="uint8")),  # (S8S8 saturates on AVX2 too: 0.878 there, emulated)
    # a transformer, dynamic (MatMul weights only); LayerNorm/Softmax stay float either way
    "matmul/vnni": (U8S8, RR),
    "matmul/avx2": (U8S8, RR, Candidate("u8u8", weights="uint8")),
}  # fmt: skip


def candidates(kind: str, target_isa: str) -> tuple[Candidate, ...]:
    """The recipes tried for a method (conv: static QDQ | matmul: dynamic) and target ISA; an ISA without a list
    of its own (ARM, x86 without AVX2) gets the VNNI list: its int8 kernels add in int32 and do not saturate."""
    return CANDIDATES.get(f"{kind}/{target_isa}") or CANDIDATES[f"{kind}/vnni"]


def this_cpu(cpuinfo: str | None = None, features: dict[str, bool] | None = None) -> dict:
    """This CPU as the INT8 choice sees it: ``{cpu_model, isa, isa_summary, target_isa, slug}``."""
    text = cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")
    info = provenance.parse_cpuinfo(text)
    isa = provenance.effective_isa(info, provenance.cpu_features() if features is None else features)
    family = info.get("family")
    model = info.get("cpu_model")
    slug = provenance.slug({"cpu_model": model, "family": family, "isa": isa, "cpus_usable": _cores()})
    return {"cpu_model": model, "isa": isa, "isa_summary": provenance.isa_summary(family, isa),
            "target_isa": provenance.int8_target(family, isa), "slug": slug}  # fmt: skip


def resolve_target(target: str | None, cpu: dict | None = None) -> str:
    """``auto`` (or None): this CPU's INT8 kernel class; else the named one (``avx2`` | ``vnni``)."""
    from ..errors import ConfigError

    if target in (None, "auto"):
        return (cpu or this_cpu())["target_isa"]
    if target not in TARGET_ISAS:
        raise ConfigError(f"unknown INT8 target {target!r}: give auto (this CPU), {' or '.join(TARGET_ISAS)}")
    return target


def per_image_agreement(reference: np.ndarray, variant: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray | None]:
    """Each image's cosine between its two vectors, and the overlap of its ``k`` nearest neighbours among the
    others under each (1.0: the same neighbours; None for fewer than 2 images), over L2-normalised rows."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero vector has no direction: its cosine is NaN
        a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        b = variant / np.linalg.norm(variant, axis=1, keepdims=True)
    cos = np.clip((a * b).sum(axis=1), -1.0, 1.0)  # float32 rounding gives 1.0000001 for equal vectors
    k = min(k, len(a) - 1)
    if k <= 0:
        return cos, None
    na, nb = _neighbours(a, k), _neighbours(b, k)
    return cos, np.array([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)])


def agreement(reference: np.ndarray, variant: np.ndarray) -> dict:
    """Mean and min cosine between the two vectors of each image, and the mean overlap of each image's 5 nearest
    neighbours (``per_image_agreement``)."""
    cos, overlap = per_image_agreement(reference, variant)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "top5_overlap": None if overlap is None else float(overlap.mean()), "images": len(cos)}  # fmt: skip


def _neighbours(v: np.ndarray, k: int) -> np.ndarray:
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


@dataclass
class Trial:
    """A candidate as made and measured: agreement None when it was not measured (``why``)."""

    candidate: Candidate
    agreement: dict | None = None
    speedup: float | None = None  # FP32 seconds / INT8 seconds, model only, interleaved on this CPU
    why: str | None = None
    file: Path | None = field(default=None, repr=False)

    def reaches(self, target: float) -> bool:
        a = self.agreement
        fast = self.speedup is None or self.speedup >= MIN_SPEEDUP
        return a is not None and a["mean_cosine"] >= target and fast

    def as_dict(self, target: float) -> dict:
        return {"recipe": self.candidate.name, "options": self.candidate.as_dict(), "agreement": self.agreement,
                "speedup": self.speedup, "reached": self.reaches(target), "why": self.why}  # fmt: skip


def choose(trials: list[Trial], target: float) -> tuple[Trial, bool, str | None]:
    """``(chosen, reached, reason)``: the fastest trial that reaches the target (measured speed first, then the
    order tried); none reaching, the one with the highest mean cosine, else (nothing measured) the first."""
    passing = [t for t in trials if t.reaches(target)]
    if passing:
        best = min(passing, key=lambda t: (-(t.speedup or 0.0), trials.index(t)))
        return best, True, None
    measured = [t for t in trials if t.agreement is not None]
    if not measured:
        why = trials[0].why or "not measured"
        return trials[0], False, f"no candidate was measured ({why}); kept the first, {trials[0].candidate.name}"
    best = max(measured, key=lambda t: t.agreement["mean_cosine"])
    tried = ", ".join(_figure(t) for t in measured)
    return best, False, (f"no candidate reaches mean cosine {target} to FP32 faster than FP32 ({tried}); kept the "
                         f"closest to FP32, {best.candidate.name}")  # fmt: skip


def _figure(t: Trial) -> str:
    speed = f", x{t.speedup:.2f}" if t.speedup is not None else ""
    return f"{t.candidate.name} {t.agreement['mean_cosine']:.4f}{speed}"


def search(cands: tuple[Candidate, ...], try_one: Callable[[Candidate], Trial], target: float) -> list[Trial]:
    """Make and measure the candidates in order (``try_one``), stopping at the first that reaches the target."""
    trials = []
    for c in cands:
        trials.append(try_one(c))
        if trials[-1].reaches(target):
            break
    return trials


def record(trials: list[Trial], target: float, target_isa: str, cpu: dict, where: str) -> dict:
    """The ``int8_recipe`` metadata of the file made with ``choose``'s pick: what, for which ISA, chosen on which
    CPU, its agreement with FP32 against the target, and every candidate tried."""
    chosen, reached, reason = choose(trials, target)
    a = chosen.agreement or {}
    return {
        "recipe": chosen.candidate.name,
        "options": chosen.candidate.as_dict(),
        "target_isa": target_isa,
        "chosen_on": {k: cpu[k] for k in ("cpu_model", "isa_summary", "slug", "target_isa")},
        "agreement": {
            "mean_cosine": a.get("mean_cosine"),
            "min_cosine": a.get("min_cosine"),
            "top5_overlap": a.get("top5_overlap"),
            "images": a.get("images"),
            "target": target,
            "measured": chosen.agreement is not None,
            "where": where,
        },  # fmt: skip
        "speedup": chosen.speedup,
        "reached": reached,
        "reason": reason,
        "candidates": [t.as_dict(target) for t in trials],
    }


def speedup(parent_session, variant_session, x: np.ndarray, repeats: int = 2) -> float:
    """FP32 seconds / INT8 seconds on the same batch, interleaved, best of ``repeats`` each (after one warm-up)."""
    name = parent_session.get_inputs()[0].name
    best = {"p": float("inf"), "v": float("inf")}
    for s in (parent_session, variant_session):
        s.run(None, {name: x})
    for _ in range(repeats):
        for key, s in (("p", parent_session), ("v", variant_session)):
            t0 = time.perf_counter()
            s.run(None, {name: x})
            best[key] = min(best[key], time.perf_counter() - t0)
    return round(best["p"] / best["v"], 3)


def low_agreement(name: str, mean_cosine: float, rec: dict, images: int) -> str | None:
    """The warning line for a run whose INT8 variant agrees with its parent below the recipe's target on the
    run's own images, else None."""
    target = (rec.get("agreement") or {}).get("target")
    if target is None or mean_cosine >= target:
        return None
    made = f"made for {rec.get('target_isa')}, recipe {rec.get('recipe')}"
    return (f"{name}: mean cosine to its parent {mean_cosine:.4f} on {images} of the run's images, below the INT8 "
            f"target {target} ({made}); its quality may differ from the parent's on this CPU")  # fmt: skip


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
