"""One onnxruntime session per model: providers in the order asked, what really ran, unit vectors out."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, ProviderError
from ..ids import file_sha256
from ..vectors import l2_normalize
from .identity import model_identity
from .providers import expand_providers, provider_loadable, with_provider_options
from .recipe import parse_metadata, recipe_from_metadata
from .zoo import get_spec, split_variant

log = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    """How to build a session: provider order, strictness and thread counts."""

    providers: list[str] = field(default_factory=lambda: ["auto"])
    strict: bool = False
    intra_op_threads: int = 0  # 0: one per core (onnxruntime's default), set explicitly below
    inter_op_threads: int = 1  # these models are sequential graphs: one op at a time is best
    trt_cache_dir: str | None = None  # TensorRT engine cache (engines take minutes to build)
    # onnxruntime's CPU memory arena keeps each session's largest batch of activations for good; with several
    # models in one process those add up (5 demo models, one batch of 32 each: 2,283 MB with the arena, 1,472 MB
    # without, same speed here), so it is off unless asked for
    memory_arena: bool = False


def resolve_model_path(name_or_path: str | Path, models_dir: str | Path = "models") -> Path:
    """A registry name resolves to ``models_dir/<name>.onnx``; anything ending .onnx is a path."""
    s = str(name_or_path)
    if s.endswith(".onnx"):
        p = Path(s).expanduser()
        if not p.is_file():
            raise ModelFileError(f"model file {p} does not exist")
        return p
    base, variant = split_variant(s)
    own = Path(models_dir) / f"{s}.onnx"
    if "/" not in s and own.is_file():
        return own  # a converted model under its own name (the user's own models have no registry line)
    spec = get_spec(base)
    p = spec.onnx_path(models_dir, variant)
    if not p.is_file() and variant != "fp32":  # a variant named by its inputs: <name>.<variant>.<inputs>.onnx
        made = sorted(p.parent.glob(p.name.removesuffix(".onnx") + ".*.onnx"))
        if len(made) > 1:
            raise ModelFileError(
                f"{len(made)} {variant} files of {spec.name} in {models_dir} (made from different inputs: "
                f"{', '.join(m.name for m in made)}): pass the one you mean as --model PATH"
            )
        p = made[0] if made else p
    if not p.is_file():
        how = f"--model {spec.name}" + (f" --variant {variant}" if variant != "fp32" else "")
        raise ModelFileError(
            f"{p} does not exist: convert it first with `onnx-search convert {how}` (or `make convert`)"
        )
    return p


class ModelSession:
    """An onnxruntime session for one converted model that turns preprocessed batches into unit vectors."""

    def __init__(self, path: str | Path, options: SessionConfig | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.options = options or SessionConfig()
        available = ort.get_available_providers()
        self.providers_requested = expand_providers(self.options.providers, available)
        self.providers_skipped: dict[str, str] = {}
        if any(p.lower() == "auto" for p in self.options.providers):
            for p in list(self.providers_requested):
                ok, why = provider_loadable(p)
                if not ok:
                    self.providers_skipped[p] = why
                    self.providers_requested.remove(p)
            if self.providers_skipped:
                log.info("auto: skipping providers that cannot load here: %s", self.providers_skipped)
        unavailable = [p for p in self.providers_requested if p not in available]
        if unavailable and self.options.strict:
            raise ProviderError(
                f"{self.path.name}: providers {unavailable} are not in this onnxruntime build (available: {available})"
            )
        chosen = [p for p in self.providers_requested if p in available]
        if "CPUExecutionProvider" not in chosen and not self.options.strict:
            chosen.append("CPUExecutionProvider")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.options.intra_op_threads or (os.cpu_count() or 1)
        so.inter_op_num_threads = self.options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.enable_cpu_mem_arena = self.options.memory_arena
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        ort.set_default_logger_severity(4)  # a provider that fails to load is reported by us, below
        t0 = time.perf_counter()
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=so, providers=[with_provider_options(p, self._trt_cache()) for p in chosen]
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{self.path}: onnxruntime cannot load this model: {exc}") from None
        finally:
            ort.set_default_logger_severity(3)
        self.startup_s = time.perf_counter() - t0  # session creation: graph load, optimisation, provider set-up
        self.providers_active = self.session.get_providers()
        missing = [p for p in self.providers_requested if p not in self.providers_active]
        if missing:
            msg = f"{self.path.name}: requested providers {missing} did not load; running on {self.providers_active}"
            if self.options.strict:
                raise ProviderError(msg + " (strict mode: refusing to fall back)")
            log.warning(msg)
        self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.recipe = recipe_from_metadata(self.meta, self.path)
        self.name = self.meta.get("name", self.path.stem)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.dim = int(out.shape[-1]) if isinstance(out.shape[-1], int) else int(self.meta["dim"])
        hw = inp.shape[2:4] if self.recipe.layout == "NCHW" else inp.shape[1:3]
        if all(isinstance(v, int) for v in hw) and tuple(hw) != (self.recipe.input_size,) * 2:
            raise ModelFileError(f"{self.path}: input is {hw} but its recipe says {self.recipe.input_size}")
        self._sha256: str | None = None
        self._identity: str | None = None

    def _trt_cache(self) -> str:
        return self.options.trt_cache_dir or str(self.path.parent / ".trt_cache")

    @property
    def sha256(self) -> str:
        """Hash of the model file, computed once."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    @property
    def identity(self) -> str:
        """Hash of what decides this model's vectors (graph, weights, recipe; no timestamps), computed once."""
        if self._identity is None:
            self._identity = model_identity(self.path, self.recipe)
        return self._identity

    @property
    def provider(self) -> str:
        """The provider that runs the graph (the first active one)."""
        return self.providers_active[0]

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed float32 batch (the recipe's layout) -> float32 L2-normalised vectors, one row per image."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]
        return l2_normalize(out.reshape(len(batch), -1))

    def describe(self) -> dict:
        """What a manifest records about this model's session."""
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "identity": self.identity,
            "dim": self.dim,
            "providers_requested": self.providers_requested,
            "providers_active": self.providers_active,
            "providers_skipped": self.providers_skipped,
            "weights": self.meta.get("weights"),
            "parity": self.meta.get("parity"),
            "variant": self.meta.get("variant", "fp32"),
            "parent": self.meta.get("parent"),
            "file_bytes": self.path.stat().st_size,
            "startup_s": round(self.startup_s, 3),
        }
