"""Registry model -> self-describing .onnx: build in its framework, export, parity gate, recipe in metadata.

The flow is the same for every source; what differs (build, forward pass, export) lives in one backend
module per source: ``convert_keras`` (tf2onnx), ``convert_torch`` (torchvision, torch.onnx) and ``convert_timm``
(timm, torch.onnx; its recipe is read from timm for the model as created); the user's own models (no registry
line, their recipe given by the user) through ``convert_user_torch``, ``convert_user_keras`` and
``convert_user_onnx`` (see ``user.py``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ModelFileError
from ..provenance import library_versions
from .parity import PARITY_TOLERANCE, check_parity, parity_images
from .recipe import prepare_batch, up_to_date, write_metadata
from .user import input_hashes, is_user, user_spec, user_weights
from .weights import resolve_weights
from .zoo import ModelSpec, get_spec

log = logging.getLogger(__name__)

OPSET = 17
BACKENDS = {
    "keras": "convert_keras",
    "torchvision": "convert_torch",
    "timm": "convert_timm",
    "user-torch": "convert_user_torch",
    "user-keras": "convert_user_keras",
    "user-onnx": "convert_user_onnx",
}


@dataclass
class ConvertResult:
    name: str
    path: Path
    skipped: bool  # True when the file was already up to date
    metadata: dict
    seconds: float


def backend_for(spec: ModelSpec):
    """The backend module of the spec's source (imported only when used: each needs its own framework)."""
    return importlib.import_module(f".{BACKENDS[spec.source]}", __package__)


def converter_fingerprint(backend) -> str:
    """A hash of the conversion code (this flow and the backend): a change to it makes earlier files stale."""
    code = inspect.getsource(inspect.getmodule(converter_fingerprint)) + inspect.getsource(backend)
    return hashlib.sha256(code.encode()).hexdigest()[:12]


def _plan(name: str, out_dir: str | Path, weights: str, seed: int, user: dict | None):
    """(spec, backend module, weights choice, output path, request key): everything but the framework."""
    spec = user_spec(name, **user) if user is not None else get_spec(name)
    backend = backend_for(spec)
    choice = user_weights(spec, weights, seed) if is_user(spec) else resolve_weights(spec, weights, seed)
    out = spec.onnx_path(out_dir)
    request = {
        "spec": spec.to_dict(),
        "weights": choice.label,
        "opset": OPSET,
        "converter": converter_fingerprint(backend),
    }
    if is_user(spec):  # the user's files may change in place: their contents decide staleness
        request["inputs"] = input_hashes(spec, choice)
    return spec, backend, choice, out, json.loads(json.dumps(request))  # as the file holds it: tuples become lists


def already_converted(name: str, out_dir: str | Path = "models", weights: str = "random", seed: int = 0):
    """The skipped ``ConvertResult`` when ``out_dir`` holds this registry model converted from exactly this request,
    else None. Framework-free (the backends import TensorFlow or torch only to build), so a caller can check before
    it starts a conversion child."""
    spec, _, choice, out, request = _plan(name, out_dir, weights, seed, None)
    return _skipped_if_up_to_date(spec, choice, out, request)


def _skipped_if_up_to_date(spec, choice, out: Path, request: dict) -> ConvertResult | None:
    """The skipped result (and its log line) when ``out`` was converted from exactly ``request``."""
    if not (meta := up_to_date(out, request)):
        return None
    log.info("%s is up to date (%s), skipping", out, choice.label)
    return ConvertResult(spec.name, out, True, meta, 0.0)


def convert_model(
    name: str,
    out_dir: str | Path = "models",
    weights: str = "random",
    seed: int = 0,
    force: bool = False,
    tolerance: float = PARITY_TOLERANCE,
    user: dict | None = None,
) -> ConvertResult:
    """Convert one registry model to ``out_dir/<name>.onnx`` unless an identical one exists.

    ``user`` (source, recipe, factory, file, layer) makes ``name`` the user's own model instead of a registry one.
    """
    spec, backend, choice, out, request = _plan(name, out_dir, weights, seed, user)
    if not force and (done := _skipped_if_up_to_date(spec, choice, out, request)):
        return done
    t0 = time.perf_counter()
    model = backend.build(spec, choice)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        if hasattr(backend, "describe"):  # a source whose recipe or dim is read from the model (timm, user)
            spec = backend.describe(model, spec)
        backend.export(model, spec, tmp, OPSET)
        x = prepare_batch(parity_images(spec), spec.recipe)
        parity = check_parity(lambda b: backend.forward(model, b), tmp, spec.name, x, tolerance, backend.LABEL)
    except BaseException:  # a refused or failed export leaves no file behind
        tmp.unlink(missing_ok=True)
        raise
    meta = spec.recipe_metadata(spec.name, spec.source, choice.label) | {
        "parity": parity,
        "versions": library_versions(),
        "request": request,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_metadata(tmp, meta)
    os.replace(tmp, out)
    return ConvertResult(spec.name, out, False, meta, time.perf_counter() - t0)


def annotate(path: str | Path, like: str, weights: str = "unknown") -> dict:
    """Attach a registry model's recipe to a foreign .onnx file so a session can use it."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such file")
    spec = get_spec(like)
    meta = spec.recipe_metadata(p.stem, f"annotated like {spec.name}", weights) | {
        "parity": None,
        "versions": {"onnx_search": __version__},
    }
    write_metadata(p, meta)
    return meta
