"""The user's own PyTorch model: ``package.module:callable`` builds it, a state dict loads strictly, and the
module's output or a named layer's (taken by a forward hook) is the vector; exported by torch.onnx."""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFileError, WeightsUnavailableError
from .parity import parity_images
from .recipe import prepare_batch
from .user import factory_import_path, untracked_note, vector_dim
from .weights import WeightsChoice
from .zoo import ModelSpec

LABEL = "PyTorch"
log = logging.getLogger(__name__)


def _factory(spec: ModelSpec):
    module, _, attr = spec.builder.partition(":")
    try:
        with factory_import_path(spec):
            return getattr(importlib.import_module(module), attr)
    except Exception as exc:  # noqa: BLE001 - any import failure of the user's code is one clear line
        raise ConfigError(
            f"{spec.name}: factory {spec.builder!r} cannot be imported: {type(exc).__name__}: {_first(exc)}; "
            "fix the module (or the name after ':') and run again"
        ) from None


def _first(exc: BaseException) -> str:
    """The first line of an exception's message (the user's code may raise long ones)."""
    return (str(exc).splitlines() or [""])[0][:200]


def _tap(model, layer: str | None):
    """The module whose output is the vector: the model itself, or a wrapper returning a named layer's output."""
    import torch

    class Tap(torch.nn.Module):
        """Runs the model and returns what ``layer`` produced (a forward hook keeps it), flattened per image."""

        def __init__(self, inner: torch.nn.Module, name: str | None) -> None:
            super().__init__()
            self.inner, self.name, self.raw_shape = inner, name, None
            self._seen: list = []
            if name:
                inner.get_submodule(name).register_forward_hook(lambda m, a, out: self._seen.append(out))

        def forward(self, x):
            out = self.inner(x)
            if self.name:
                out = self._seen.pop()
                self._seen.clear()
            if not isinstance(out, torch.Tensor):
                raise ModelFileError(f"the model's output is a {type(out).__name__}, not a tensor; name a layer")
            self.raw_shape = tuple(out.shape)
            return out.flatten(1)

    if layer:
        try:
            model.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][:12]
            raise ConfigError(f"no layer {layer!r} in the model; its layers include {', '.join(names)}") from None
    return Tap(model, layer).eval()


def _load_strictly(model, spec: ModelSpec, path: Path) -> None:
    from .convert_timm import read_checkpoint

    try:
        state = read_checkpoint(path)
    except Exception:  # noqa: BLE001 - an unreadable file is the user's to fix (torch's advice is for others)
        raise WeightsUnavailableError(
            f"{spec.name}: {path} is not a state dict torch can read (garbage, truncated, or not written by "
            "torch.save/safetensors); save it with torch.save(model.state_dict(), PATH)"
        ) from None
    own = model.state_dict()
    missing, extra = [k for k in own if k not in state], [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or extra or shapes:
        raise WeightsUnavailableError(
            f"{spec.name}: {path.name} does not fit the factory's model: {len(missing)} missing keys {missing[:3]}, "
            f"{len(extra)} unexpected {extra[:3]}, {len(shapes)} of another shape {shapes[:3]}; nothing was converted"
        )
    model.load_state_dict(state, strict=True)


def build(spec: ModelSpec, choice: WeightsChoice):
    """The factory's module in eval mode, the state dict loaded strictly, wrapped to give the chosen output."""
    import torch

    factory = _factory(spec)
    if choice.seed is not None:
        torch.manual_seed(choice.seed)
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(
            f"{spec.name}: factory {spec.builder} failed: {type(exc).__name__}: {_first(exc)}; fix the factory "
            "(it is called with no arguments)"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"{spec.name}: factory {spec.builder} returned a {type(model).__name__}, not a torch module")
    if choice.pretrained:
        _load_strictly(model, spec, Path(choice.pretrained))
    try:
        tap = _tap(model.eval(), spec.pooling.removeprefix("layer:") if spec.pooling != "output" else None)
    except ConfigError as exc:
        raise ConfigError(f"{spec.name}: {exc}") from None
    tap.choice = choice  # export says when the weights are the factory's own and untracked
    return tap


def describe(model, spec: ModelSpec) -> ModelSpec:
    """Run the recipe's input once: it must fit the model, and give one vector per image."""
    x = prepare_batch(parity_images(spec, 2), spec.recipe)
    try:
        forward(model, x)
    except ModelFileError as exc:
        raise ModelFileError(f"{spec.name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a shape error inside the user's model
        raise ModelFileError(
            f"{spec.name}: the model cannot take the recipe's {spec.input_size}x{spec.input_size} {spec.layout} "
            f"input: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None
    where = f"layer {spec.pooling[6:]!r}" if spec.pooling.startswith("layer:") else "the module's output"
    return replace(spec, dim=vector_dim(model.raw_shape, spec.name, where))


def forward(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def export(model, spec: ModelSpec, path, opset: int) -> None:
    import torch

    s = spec.input_size
    dummy = torch.zeros((2, 3, s, s) if spec.layout == "NCHW" else (2, s, s, 3))
    try:
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["input"], output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=opset, dynamo=False,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - an operator or control flow torch.onnx cannot export
        raise ModelFileError(
            f"{spec.name}: torch.onnx.export cannot export the factory's model: {type(exc).__name__}: "
            f"{_first(exc)}; make the module exportable (standard ops, no data-dependent control flow) or export it "
            "yourself and use --source onnx"
        ) from None
    if note := untracked_note(spec, model.choice):  # said once the model is exported
        log.warning("%s", note)
