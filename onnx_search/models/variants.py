"""Deployment variants of a converted model, each a self-describing model of its own.

``int8``: by graph. Conv-heavy (a CNN): ONNX Runtime static quantisation, QDQ format, activations u8 / weights s8,
per channel, calibrated on images (dynamic QInt8 was about 7x *slower* than FP32 for these convolutions here).
MatMul-heavy (a transformer): dynamic quantisation of the MatMul/Gemm weights, LayerNorm and Softmax in float
(on DINOv2 ViT-S/14 here x2.06 vs static QDQ's x1.58 over FP32; on timm's test ViT cosine to FP32 0.9997 vs 0.94).
``made_by`` records the method and the graph kind.
``fp16``: float16 weights and activations, float32 inputs and outputs kept. ``optimized``: ORT's offline graph
optimisation saved to a file. Each file records its parent's hash, so a changed parent makes it stale.
An INT8 file's name also carries a digest of its inputs (``<name>.int8.<inputs>.onnx``, ``variant_file``): two
experiments calibrating on their own images keep two files and never re-make each other's.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DecodeError, ModelFileError
from ..ids import file_sha256
from .convert import ConvertResult
from .identity import model_identity
from .parity import parity_images
from .recipe import Recipe, prepare_batch, read_metadata_file, recipe_from_metadata, up_to_date, write_metadata
from .zoo import VARIANTS, get_spec, variant_name

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 64
# a transformer's INT8: only these ops take int8 weights; LayerNorm and Softmax (and GELU, Add, ...) stay float
TRANSFORMER_OPS = ("MatMul", "Gemm", "Conv")  # Conv: the patch embedding
FLOAT_OPS = ("LayerNormalization", "Softmax")
INT8_MATMUL_METHOD = "dynamic"  # measured against static QDQ on DINOv2 ViT-S/14 (README, families)


def calibration_batches(paths: list[Path], recipe: Recipe, n: int = CALIBRATION_IMAGES, seed: int = 0, batch: int = 8):
    """Model inputs for calibration: a seeded sample of ``paths`` that decode, in batches; unreadable ones skipped."""
    from ..embed.decode import load_for_recipes

    rng = np.random.default_rng(seed)
    order = [paths[i] for i in rng.permutation(len(paths))]
    pixels, skipped = [], 0
    for p in order:
        if len(pixels) >= n:
            break
        try:
            pixels.append(load_for_recipes(p, [recipe.geometry])[1][0])
        except (DecodeError, OSError):
            skipped += 1
    if not pixels:
        raise ConfigError(
            f"no readable calibration image among {len(paths)} files ({skipped} could not be decoded): "
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


def _int8(parent: Path, out: Path, batches: list[np.ndarray], method: str | None = None) -> dict:
    """INT8 by the method that suits the graph: static QDQ for a Conv-heavy one; for a MatMul-heavy one (a
    transformer) INT8_MATMUL_METHOD, measured (README, families), LayerNorm/Softmax kept in float either way."""
    kind = graph_kind(parent)
    method = method or ("static" if kind == "conv" else INT8_MATMUL_METHOD)
    if method == "dynamic":
        how = _int8_dynamic(parent, out)
    else:
        how = _int8_static(parent, out, batches, TRANSFORMER_OPS if kind == "matmul" else None)
    return how | {"graph": kind}


def _int8_dynamic(parent: Path, out: Path) -> dict:
    """Dynamic quantisation: MatMul/Gemm weights int8 (per channel), activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(parent), str(out), op_types_to_quantize=list(TRANSFORMER_OPS[:2]),
                     weight_type=QuantType.QInt8, per_channel=True)  # fmt: skip
    return {"method": "onnxruntime quantize_dynamic", "activations": "uint8 (per batch)", "weights": "int8",
            "per_channel": True, "quantized_ops": list(TRANSFORMER_OPS[:2]), "float_ops": list(FLOAT_OPS)}  # fmt: skip


def _int8_static(parent: Path, out: Path, batches: list[np.ndarray], ops: tuple[str, ...] | None = None) -> dict:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: b} for b in batches])

        def get_next(self):
            return next(self.items, None)

    import onnxruntime as ort

    input_name = ort.InferenceSession(str(parent), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    prepared = out.with_name(out.name + ".pre.onnx")
    try:
        quant_pre_process(str(parent), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(input_name),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(ops) if ops else None,
        )
    finally:
        prepared.unlink(missing_ok=True)
    images = sum(len(b) for b in batches)
    return {"method": "onnxruntime quantize_static", "format": "QDQ", "activations": "uint8", "weights": "int8",
            "per_channel": True, "calibration_images": images}| (
        {"quantized_ops": list(ops), "float_ops": list(FLOAT_OPS)} if ops else {})  # fmt: skip


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
    """Cosine between the variant's and the parent's vectors on the fixed parity batch."""
    from .session import ModelSession, SessionConfig

    x = prepare_batch(parity_images(spec, n=8, seed=77), recipe)
    a = ModelSession(parent, SessionConfig(["cpu"])).embed(x)
    b = ModelSession(variant, SessionConfig(["cpu"])).embed(x)
    cos = (a * b).sum(axis=1)
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "images": len(x)}


def make_variant(
    name: str,
    variant: str,
    models_dir: str | Path = "models",
    calibration: list[Path] | None = None,
    seed: int = 0,
    force: bool = False,
) -> ConvertResult:
    """Write ``models_dir/<name>.<variant>.onnx`` from the converted parent, unless an identical one exists.

    INT8 is named by its inputs too (``variant_file``): ``<name>.int8.<inputs>.onnx``."""
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
    method = None
    if variant == "int8":
        if not calibration:
            raise ConfigError("int8 needs calibration images: give --calibrate DIR (or run it from an experiment)")
        kind = graph_kind(parent)
        method = "static" if kind == "conv" else INT8_MATMUL_METHOD
        request["method"] = {"int8": method, "graph": kind}
        if method == "static":  # dynamic INT8 reads no image: its file does not depend on them
            request["calibration"] = {"files": _files_digest(calibration), "seed": seed, "images": CALIBRATION_IMAGES}
        out = variant_file(out, request)
    if not force and (meta := up_to_date(out, request)):
        return ConvertResult(out.stem, out, True, meta, 0.0)
    t0 = time.perf_counter()
    tmp = out.with_name(f".{out.name}.partial")
    try:
        if variant == "int8":
            batches = calibration_batches(calibration, recipe, seed=seed) if method == "static" else []
            how = _int8(parent, tmp, batches, method)
        elif variant == "fp16":
            how = _fp16(parent, tmp)
        else:
            how = _optimized(parent, tmp)
        agreement = _agreement(parent, tmp, recipe, spec)
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
        "request": request,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_metadata(tmp, meta)
    os.replace(tmp, out)
    log.info("%s: %s in %.1fs, min cosine to parent %.5f", out, variant, seconds, agreement["min_cosine"])
    return ConvertResult(meta["name"], out, False, meta, seconds)


def variant_file(plain: Path, request: dict) -> Path:
    """``<name>.<variant>.<inputs>.onnx``: ``<inputs>`` digests everything the file is made from besides the code
    (the parent's identity, the method, the calibration set, seed and sample size), so variants made from other
    inputs (another experiment's images) sit beside each other instead of overwriting each other."""
    inputs = {k: v for k, v in request.items() if k != "code"}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return plain.with_name(f"{plain.name.removesuffix('.onnx')}.{digest}.onnx")


def _files_digest(paths: list[Path]) -> str:
    """The calibration set: every file's path, size and modification time (a changed image changes it)."""
    h = hashlib.sha256()
    for p in sorted(map(str, paths)):
        try:
            st = os.stat(p)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(p.encode("utf-8", "surrogateescape") + b"\0" + stamp.encode() + b"\0")
    return h.hexdigest()[:16]


def _fingerprint() -> str:
    return hashlib.sha256(inspect.getsource(inspect.getmodule(_fingerprint)).encode()).hexdigest()[:12]
