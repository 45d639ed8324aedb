"""Deployment variants of a converted model, each a self-describing model of its own.

``int8``: by graph. Conv-heavy (a CNN): ONNX Runtime static quantisation, QDQ format, activations u8 / weights s8,
per channel, calibrated on images (dynamic QInt8 was about 7x *slower* than FP32 for these convolutions here).
MatMul-heavy (a transformer): dynamic quantisation of the MatMul/Gemm weights, LayerNorm and Softmax in float
(on DINOv2 ViT-S/14 here x2.06 vs static QDQ's x1.58 over FP32; on timm's test ViT cosine to FP32 0.9997 vs 0.94).
``made_by`` records the method and the graph kind. Within the method, the INT8 recipe (u8s8, reduce_range, U8U8,
calibration method, nodes left in float) is chosen by measurement for the CPU that will run the file
(``int8_recipe``; ``target`` auto: this CPU, or avx2 | vnni) and recorded as ``int8_recipe``; the target ISA and
the candidates tried are part of the file's identity (``int8_request``).
``fp16``: float16 weights and activations, float32 inputs and outputs kept. ``optimized``: ORT's offline graph
optimisation saved to a file. Each file records its parent's hash, so a changed parent makes it stale.
An INT8 file's name also carries a digest of its inputs (``<name>.int8.<inputs>.onnx``, ``variant_file``): two
experiments calibrating on their own images keep two files and never re-make each other's.

The calibration sample survives a changing folder. It is drawn once (``calibration_sample``: files ranked by a
seeded hash of their path relative to the dataset root, the first ``CALIBRATION_IMAGES`` whose header reads) and
recorded in the INT8 file (relative paths and content hashes). A later run reuses that file while its sample holds
(``sample_holds``): no sampled file still in the folder has other bytes, and at least half of them are still there.
Photos added, or deleted outside the sample, change nothing. The name's digest covers the sampled contents, the
seed and the sample size (``calibration_digest``), never the rest of the folder.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DecodeError, ModelFileError
from ..ids import content_hash, file_sha256
from .convert import ConvertResult
from .identity import model_identity
from .int8_recipe import (
    MEASURE_IMAGES,
    MIN_SPEEDUP,
    TARGET,
    Candidate,
    Trial,
    candidates,
    choose,
    record,
    resolve_target,
    search,
    speedup,
    this_cpu,
)
from .int8_recipe import (
    agreement as vector_agreement,
)
from .parity import parity_images
from .recipe import (
    Recipe,
    prepare_batch,
    read_metadata_file,
    recipe_from_metadata,
    up_to_date,
    write_metadata,
    write_property,
)
from .zoo import VARIANTS, get_spec, variant_name

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 64
# a transformer's INT8: only these ops take int8 weights; LayerNorm and Softmax (and GELU, Add, ...) stay float
TRANSFORMER_OPS = ("MatMul", "Gemm", "Conv")  # Conv: the patch embedding
FLOAT_OPS = ("LayerNormalization", "Softmax")
INT8_MATMUL_METHOD = "dynamic"  # measured against static QDQ on DINOv2 ViT-S/14 (README, families)


def calibration_sample(
    paths: list[Path], n: int = CALIBRATION_IMAGES, seed: int = 0, root: str | Path | None = None
) -> list[tuple[Path, str]]:
    """The calibration images among ``paths`` and their content hashes, chosen so that files outside the sample
    do not change it.

    Rule: rank every file by BLAKE2b(seed, its path relative to ``root``, POSIX form; the absolute path when it is
    not under ``root`` or no root is given); walk that order and take the first ``n`` files that can be read and
    whose image header Pillow identifies. Only those files are read (no hash of the whole folder). Adding a file
    can only displace a sampled one if it ranks before it, deleting one only matters if it was sampled; a
    sampled file that changes changes its content hash, hence the digest (``calibration_digest``). Returned in
    content-hash order, the order calibration feeds them, so the result depends only on the sampled contents.
    """
    base = _root(root)
    ranked = sorted(paths, key=lambda p: _rank_key(p, base, seed))
    sample: list[tuple[Path, str]] = []
    for p in ranked:
        if len(sample) >= n:
            break
        try:
            data = Path(p).read_bytes()
        except OSError:
            continue
        if not _header_reads(data):
            continue
        sample.append((Path(p), content_hash(data)))
    return sorted(sample, key=lambda s: (s[1], str(s[0])))


def _rank_key(path: Path, root: Path | None, seed: int) -> bytes:
    rel = _rel(path, root)
    return hashlib.blake2b(f"{seed}\0{rel}".encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _header_reads(data: bytes) -> bool:
    """Whether Pillow identifies the bytes as an image with a size (reads the header, decodes no pixels)."""
    import io
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as img:
                return min(img.size) > 0
        except Exception:  # noqa: BLE001 - Pillow raises many types on bad headers
            return False


def calibration_digest(hashes: list[str], seed: int, n: int) -> str:
    """What an INT8 file is calibrated from: the sampled files' content hashes (as a set), the seed, the size."""
    body = json.dumps({"contents": sorted(hashes), "seed": seed, "images": n}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def sample_holds(recorded: list[dict], current: dict[str, Path]) -> list[tuple[Path, str]] | None:
    """The files of a recorded sample (``{"path": relative path, "sha": content hash}``) still in the folder
    (``current``: relative path -> file), when the sample still holds: at least half of them are there and none
    of those has other bytes. A deleted sampled file does not void it (the INT8 file was calibrated on the
    recorded bytes); a sample mostly gone, or edited, is drawn again."""
    present = [(current[r["path"]], r["sha"]) for r in recorded if r.get("path") in current]
    if not recorded or 2 * len(present) < len(recorded):
        return None
    for p, sha in present:
        try:
            if content_hash(p.read_bytes()) != sha:
                return None
        except OSError:
            return None
    return present


def _rel(path: Path, root: Path | None) -> str:
    """The name a sample records: the path relative to the dataset root (POSIX), else the absolute path."""
    p = Path(path)
    return p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root) else str(p)


def _root(root: str | Path | None) -> Path | None:
    return Path(root).expanduser().resolve() if root is not None else None


def calibration_batches(
    paths: list[Path],
    recipe: Recipe,
    n: int = CALIBRATION_IMAGES,
    seed: int = 0,
    batch: int = 8,
    root: str | Path | None = None,
    sample: list[tuple[Path, str]] | None = None,
):
    """Model inputs for calibration: the sample of ``paths`` (``calibration_sample``) decoded, in batches; a
    sampled file that does not decode is left out (not replaced: the digest names exactly the files read)."""
    from ..embed.decode import load_for_recipes

    sample = calibration_sample(paths, n, seed, root) if sample is None else sample
    pixels, skipped = [], 0
    for p, _ in sample:
        try:
            pixels.append(load_for_recipes(p, [recipe.geometry])[1][0])
        except (DecodeError, OSError):
            skipped += 1
    if not pixels:
        raise ConfigError(
            f"no readable calibration image among {len(paths)} files (none of the {len(sample)} sampled decodes): "
            "give a folder of real photos with --calibrate DIR"
        )
    return [prepare_batch(np.stack(pixels[i : i + batch]), recipe) for i in range(0, len(pixels), batch)]


def calibration_files(folder: str | Path) -> list[Path]:
    """Image files under a calibration folder, or a clear error when there are none."""
    from ..embed.scan import scan_folder

    files = scan_folder(folder).files
    if not files:
        raise ConfigError(f"calibration folder {folder} holds no image files (jpg, png, ...)")
    return files


def graph_kind(path: Path) -> str:
    """``matmul`` when most weights feed MatMul/Gemm (a transformer), else ``conv`` (a CNN)."""
    import onnx

    model = onnx.load(str(path))
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    weights = {"conv": 0, "matmul": 0}
    for node in model.graph.node:
        kind = "conv" if node.op_type == "Conv" else "matmul" if node.op_type in ("MatMul", "Gemm") else None
        if kind:
            weights[kind] += sum(sizes.get(i, 0) for i in node.input[1:2])
    return "matmul" if weights["matmul"] > weights["conv"] else "conv"


def _int8(
    parent: Path,
    out: Path,
    batches: list[np.ndarray],
    method: str,
    target_isa: str,
    x: np.ndarray,
    every_into: Path | None = None,
) -> tuple[dict, dict]:
    """INT8 by the method that suits the graph (static QDQ for a Conv-heavy one; for a MatMul-heavy one, a
    transformer, INT8_MATMUL_METHOD, measured: README, families; LayerNorm/Softmax float either way), with the
    recipe chosen for ``target_isa`` by measurement on ``x`` (``int8_recipe``): ``made_by`` plus ``int8_recipe``.

    ``every_into`` (the benchmarks): every candidate is made and measured, not only those up to the first that
    reaches the target, and each is kept as ``every_into/<recipe>.onnx``; the recipe recorded is still the one the
    search would have chosen."""
    import onnxruntime as ort

    kind = graph_kind(parent)
    cpu = this_cpu()
    here = target_isa == cpu["target_isa"]
    fp32 = ort.InferenceSession(str(parent), providers=["CPUExecutionProvider"])
    reference = _run(fp32, x)
    hows: dict[str, dict] = {}

    # static: the graph is prepared once and calibrated once; every candidate quantises that graph with the same
    # activation ranges (MinMax ranges do not depend on the integer types, reduce_range or the nodes left in float)
    prepared = out.with_name(f"{out.name}.pre.onnx")
    ranges = out.with_name(f"{out.name}.ranges.json")
    for f in (prepared, ranges):  # left by a build that was killed: never reused
        f.unlink(missing_ok=True)

    def make(c: Candidate, f: Path) -> None:
        if method == "dynamic":
            hows[c.name] = _int8_dynamic(parent, f, c)
            return
        if not prepared.exists():
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(parent), str(prepared), skip_symbolic_shape=True)
        ops = TRANSFORMER_OPS if kind == "matmul" else None
        hows[c.name] = _int8_static(prepared, f, batches, ops, c, ranges)

    def try_one(c: Candidate) -> Trial:
        if not here and not c.exact:
            return Trial(
                c, why=f"can saturate: figures from this CPU ({cpu['target_isa']}) do not hold on {target_isa}"
            )
        f = out.with_name(f"{out.name}.{c.name}.onnx")
        make(c, f)
        s = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
        fast = speedup(fp32, s, x[:8]) if here else None
        return Trial(c, vector_agreement(reference, _run(s, x)), fast, None, f)

    lists = "conv" if method == "static" else "matmul"  # the candidates and target of the method
    try:
        if every_into is None:
            trials = search(candidates(lists, target_isa), try_one, TARGET[lists])
        else:
            every = [try_one(c) for c in candidates(lists, target_isa)]
            first = next((i for i, t in enumerate(every) if t.reaches(TARGET[lists])), len(every))
            trials = every[: first + 1]  # what the search tried
            every_into.mkdir(parents=True, exist_ok=True)
            for t in every:
                if t.file is not None:
                    shutil.copyfile(t.file, every_into / f"{t.candidate.name}.onnx")
        chosen, _, _ = choose(trials, TARGET[lists])
        if chosen.file is None:  # nothing could be measured for that target here: the first, unmeasured
            make(chosen.candidate, out)
        else:
            os.replace(chosen.file, out)
    finally:  # the candidates not kept, the prepared graph and its ranges, also when one failed to quantise
        for f in [*out.parent.glob(f"{out.name}.*.onnx"), ranges]:
            f.unlink(missing_ok=True)
    where = "calibration images" if method == "static" else "parity images (dynamic INT8 reads none)"
    rec = record(trials, TARGET[lists], target_isa, cpu, where)
    rec["agreement"]["on_this_cpu"] = here
    return hows[chosen.candidate.name] | {"graph": kind, "recipe": chosen.candidate.name}, rec


def _run(session, x: np.ndarray, batch: int = 16) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def _measure_images(batches: list[np.ndarray], spec, recipe: Recipe) -> np.ndarray:
    """The images an INT8 recipe is measured on: the first MEASURE_IMAGES calibration images; for dynamic INT8
    (which reads none, so its file does not depend on them) the fixed parity batch."""
    if batches:
        return np.concatenate(batches)[:MEASURE_IMAGES]
    return prepare_batch(parity_images(spec, n=16, seed=77), recipe)


_QTYPE = {"uint8": "QUInt8", "int8": "QInt8"}


def _int8_dynamic(parent: Path, out: Path, c: Candidate) -> dict:
    """Dynamic quantisation: MatMul/Gemm weights int8 (per channel), activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(parent), str(out), op_types_to_quantize=list(TRANSFORMER_OPS[:2]),
                     weight_type=getattr(QuantType, _QTYPE[c.weights]), per_channel=True,
                     reduce_range=c.reduce_range)  # fmt: skip
    return {"method": "onnxruntime quantize_dynamic", "activations": "uint8 (per batch)", "weights": c.weights,
            "reduce_range": c.reduce_range, "per_channel": True, "quantized_ops": list(TRANSFORMER_OPS[:2]),
            "float_ops": list(FLOAT_OPS)}  # fmt: skip


def _int8_static(
    prepared: Path, out: Path, batches: list[np.ndarray], ops: tuple[str, ...] | None, c: Candidate, ranges: Path
) -> dict:
    """Static QDQ of ``prepared`` (onnxruntime's ``quant_pre_process`` output) with candidate ``c``'s options. The
    activation ranges are computed on the first call and kept in ``ranges`` (onnxruntime's own calibration cache),
    so the later candidates of one build, and the second pass that leaves nodes in float, do not calibrate again."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: b} for b in batches])

        def get_next(self):
            return next(self.items, None)

    input_name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    options = dict(quant_format=QuantFormat.QDQ, activation_type=getattr(QuantType, _QTYPE[c.activations]),
                   weight_type=getattr(QuantType, _QTYPE[c.weights]), per_channel=True, reduce_range=c.reduce_range,
                   calibrate_method=getattr(CalibrationMethod, c.calibration),
                   op_types_to_quantize=list(ops) if ops else None)  # fmt: skip
    if _caches_ranges():  # an onnxruntime without the calibration cache calibrates for each call
        options["calibration_cache_path"] = str(ranges)
    floats: list[str] = []
    quantize_static(str(prepared), str(out), Reader(input_name), **options)
    if c.float_nodes:
        floats = _most_damaged(prepared, out, c.float_nodes)
        quantize_static(str(prepared), str(out), Reader(input_name), nodes_to_exclude=floats, **options)
    images = sum(len(b) for b in batches)
    return {"method": "onnxruntime quantize_static", "format": "QDQ", "activations": c.activations,
            "weights": c.weights, "per_channel": True, "reduce_range": c.reduce_range, "calibrate": c.calibration,
            "calibration_images": images} | ({"float_nodes": floats} if floats else {}) | (
        {"quantized_ops": list(ops), "float_ops": list(FLOAT_OPS)} if ops else {})  # fmt: skip


def _caches_ranges() -> bool:
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def _most_damaged(float_model: Path, qdq_model: Path, n: int) -> list[str]:
    """The ``n`` nodes whose quantised weights lose most (lowest signal-to-quantisation-noise ratio), by
    onnxruntime's ``qdq_loss_debug`` weight matching."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import compute_weight_error, create_weight_matching

    errors = compute_weight_error(create_weight_matching(str(float_model), str(qdq_model)))
    consumer = {}
    for node in onnx.load(str(float_model)).graph.node:
        for i in node.input[1:2]:
            consumer.setdefault(i, node.name)
    ranked = sorted((sqnr, consumer[w]) for w, sqnr in errors.items() if w in consumer)
    return [name for _, name in ranked[:n]]


def _fp16(parent: Path, out: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(parent)), keep_io_types=True)
    onnx.save(model, str(out))
    return {"method": "onnxruntime.transformers.float16", "keep_io_types": True}


def _optimized(parent: Path, out: Path) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable: no CPU-specific layouts
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(parent), sess_options=so, providers=["CPUExecutionProvider"])
    return {"method": "onnxruntime offline graph optimisation", "level": "ORT_ENABLE_EXTENDED"}


def _agreement(parent: Path, variant: Path, recipe: Recipe, spec) -> dict:
    """Cosine (and neighbour overlap) between the variant's and the parent's vectors on the fixed parity batch."""
    from .session import ModelSession, SessionConfig

    x = prepare_batch(parity_images(spec, n=8, seed=77), recipe)
    a = ModelSession(parent, SessionConfig(["cpu"])).embed(x)
    b = ModelSession(variant, SessionConfig(["cpu"])).embed(x)
    return vector_agreement(a, b)


def make_variant(
    name: str,
    variant: str,
    models_dir: str | Path = "models",
    calibration: list[Path] | None = None,
    seed: int = 0,
    force: bool = False,
    calibration_root: str | Path | None = None,
    target: str | None = "auto",
) -> ConvertResult:
    """Write ``models_dir/<name>.<variant>.onnx`` from the converted parent, unless an identical one exists.

    INT8 is named by its inputs too (``variant_file``): ``<name>.int8.<inputs>.onnx``; its calibration sample is
    drawn from ``calibration`` by ``calibration_sample`` (paths ranked relative to ``calibration_root``); its recipe
    is chosen for ``target`` (auto: this CPU; avx2 | vnni) by measurement (``int8_recipe``)."""
    plan = _plan(name, variant, models_dir, calibration, seed, calibration_root, target)
    spec, parent, parent_meta, recipe, out, request, method, sample = plan
    if not force and (meta := up_to_date(out, request)):
        return ConvertResult(out.stem, out, True, meta, 0.0)
    t0 = time.perf_counter()
    tmp = out.with_name(f".{out.name}.partial")
    chosen = None
    try:
        if variant == "int8":
            batches = calibration_batches(calibration, recipe, seed=seed, sample=sample) if method == "static" else []
            x = _measure_images(batches, spec, recipe)
            how, chosen = _int8(parent, tmp, batches, method, request["int8"]["target_isa"], x)
        elif variant == "fp16":
            how = _fp16(parent, tmp)
        else:
            how = _optimized(parent, tmp)
        agreement = _agreement(parent, tmp, recipe, spec)
        if not np.isfinite(agreement["mean_cosine"]):  # zero or NaN vectors: nothing a search could use
            raise ModelFileError(
                f"{variant_name(spec.name, variant)}: the {variant} file gives zero or non-finite vectors on the "
                f"parity images (activations under- or overflow in {variant}), so it was not written: use the "
                "parent or another variant"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    meta = {k: v for k, v in parent_meta.items() if k not in ("request", "converted_at")} | {
        "name": variant_name(spec.name, variant),
        "variant": variant,
        "parent": {"name": spec.name, "sha256": file_sha256(parent), "file": parent.name},
        "made_by": how | {"seconds": round(seconds, 2)},
        "parent_agreement": agreement,
        **({"int8_recipe": chosen} if chosen is not None else {}),
        "request": request,
        **({"calibration_sample": _sample_record(sample, calibration_root)} if sample is not None else {}),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_metadata(tmp, meta)
    if chosen is not None:
        write_property(tmp, "int8_recipe", chosen)  # also under its own key, for readers of the bare file
    os.replace(tmp, out)
    log.info("%s: %s in %.1fs, min cosine to parent %.5f", out, variant, seconds, agreement["min_cosine"])
    if chosen is not None and not chosen["reached"]:
        log.warning("%s: %s", out.name, chosen["reason"])
    if others := [p.name for p in sibling_variants(out) if p != out]:
        log.info("%s: other %s files of %s in %s (other calibration images; delete those no experiment uses): %s",
                 out.name, variant, spec.name, out.parent, ", ".join(others))  # fmt: skip
    return ConvertResult(meta["name"], out, False, meta, seconds)


def _sample_record(sample: list[tuple[Path, str]], root) -> dict:
    """What an INT8 file records of its sample: the dataset root and each file's relative path and content hash."""
    base = _root(root)
    return {"root": str(base) if base else None, "files": [{"path": _rel(p, base), "sha": h} for p, h in sample]}


def variant_made(
    name: str,
    variant: str,
    models_dir: str | Path = "models",
    calibration: list[Path] | None = None,
    seed: int = 0,
    force: bool = False,
    calibration_root: str | Path | None = None,
    target: str | None = "auto",
) -> ConvertResult | None:
    """The up-to-date variant ``make_variant`` would keep (no framework loaded, nothing written), else None."""
    if force:
        return None
    out, request = _plan(name, variant, models_dir, calibration, seed, calibration_root, target)[4:6]
    meta = up_to_date(out, request)
    return ConvertResult(out.stem, out, True, meta, 0.0) if meta else None


def _plan(name, variant, models_dir, calibration, seed, calibration_root, target="auto") -> tuple:
    """What a variant is made from: (spec, parent, parent's metadata, recipe, file, request, INT8 method, sample)."""
    if variant not in VARIANTS or variant == "fp32":
        raise ConfigError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS[1:])}")
    spec = get_spec(name)
    parent, out = spec.onnx_path(models_dir), spec.onnx_path(models_dir, variant)
    if not parent.is_file():
        raise ModelFileError(
            f"{parent} does not exist: convert {spec.name} first (`onnx-search convert --model {spec.name}`)"
        )
    parent_meta = read_metadata_file(parent) or {}
    if parent_meta:  # the recipe the parent was converted with (a timm model's is read from timm at conversion)
        recipe = recipe_from_metadata(parent_meta, parent)
        spec = replace(spec, input_size=recipe.input_size)
    else:
        recipe = spec.recipe
    # the parent's identity (graph, weights, recipe), not its file hash: converting it again unchanged keeps this
    request = {"parent_identity": model_identity(parent, recipe), "variant": variant, "code": _fingerprint()}
    method, sample = None, None
    if variant == "int8":
        if not calibration:
            raise ConfigError("int8 needs calibration images: give --calibrate DIR (or run it from an experiment)")
        kind = graph_kind(parent)
        method = "static" if kind == "conv" else INT8_MATMUL_METHOD
        request["method"] = {"int8": method, "graph": kind}
        request["int8"] = int8_request(kind, resolve_target(target))
        if method == "static":  # dynamic INT8 reads no image: its file does not depend on them
            kept = _recorded_sample(out, request, calibration, seed, calibration_root)
            if kept is not None:  # an INT8 file of this parent whose sample still holds: the same request
                request["calibration"], sample = kept
            else:
                sample = calibration_sample(calibration, CALIBRATION_IMAGES, seed, calibration_root)
                digest = calibration_digest([h for _, h in sample], seed, CALIBRATION_IMAGES)
                request["calibration"] = {"sample": digest, "seed": seed, "images": CALIBRATION_IMAGES}
        out = variant_file(out, request)
    return spec, parent, parent_meta, recipe, out, request, method, sample


def int8_request(kind: str, target_isa: str) -> dict:
    """What an INT8 file's recipe is chosen from, part of its identity: the target ISA, the candidates in the order
    tried (each one's options), the agreement target and the speed floor. The machine it is chosen on is not: two
    CPUs of one ISA make the same choice from the same inputs (the file records where it was chosen)."""
    return {"target_isa": target_isa, "candidates": [c.as_dict() for c in candidates(kind, target_isa)],
            "target": TARGET[kind], "min_speedup": MIN_SPEEDUP, "measure_images": MEASURE_IMAGES}  # fmt: skip


def sibling_variants(path: Path) -> list[Path]:
    """Every ``<name>.<variant>.<inputs>.onnx`` beside ``path`` (itself such a file) of the same model and variant."""
    stem = path.name.removesuffix(".onnx").rsplit(".", 1)[0]
    return sorted(p for p in path.parent.glob(f"{stem}.*.onnx") if p.name.count(".") == path.name.count("."))


def _recorded_sample(plain: Path, request: dict, calibration, seed: int, root) -> tuple[dict, list] | None:
    """``(request["calibration"], files still there)`` of the INT8 file beside ``plain`` (``<name>.int8.onnx``)
    made from the same parent, method and code, seed and sample size, whose recorded sample still holds (the one
    with most files left, then by name); None when there is none (the sample is drawn again)."""
    base = _root(root)
    current = {_rel(p, base): Path(p) for p in calibration}
    best = None
    for f in sibling_variants(plain.with_name(plain.name.removesuffix(".onnx") + ".x.onnx")):
        try:
            meta = read_metadata_file(f) or {}
        except Exception:  # noqa: BLE001 - an unreadable file is no candidate
            continue
        req, rec = meta.get("request") or {}, meta.get("calibration_sample") or {}
        cal = req.get("calibration") or {}
        if {k: v for k, v in req.items() if k != "calibration"} != request:
            continue
        if cal.get("seed") != seed or cal.get("images") != CALIBRATION_IMAGES:
            continue
        kept = sample_holds(rec.get("files") or [], current)
        if kept is not None and (best is None or len(kept) > len(best[1])):
            best = (cal, kept)
    return best


def variant_file(plain: Path, request: dict) -> Path:
    """``<name>.<variant>.<inputs>.onnx``: ``<inputs>`` digests everything the file is made from besides the code
    (the parent's identity, the method, the calibration set, seed and sample size), so variants made from other
    inputs (another experiment's images) sit beside each other instead of overwriting each other."""
    inputs = {k: v for k, v in request.items() if k != "code"}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return plain.with_name(f"{plain.name.removesuffix('.onnx')}.{digest}.onnx")


def _fingerprint() -> str:
    from . import int8_recipe

    code = inspect.getsource(inspect.getmodule(_fingerprint)) + inspect.getsource(int8_recipe)
    return hashlib.sha256(code.encode()).hexdigest()[:12]
