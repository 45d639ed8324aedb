"""torchvision model -> ONNX through ``torch.onnx.export`` (classic exporter, opset 17, dynamic batch, NCHW)."""

from __future__ import annotations

import importlib

import numpy as np

from .frameworks import torchvision_safely
from .weights import WeightsChoice
from .zoo import ModelSpec

LABEL = "PyTorch"


def _cut_head(model, head: str):
    """Keep the layer the spec names: ``avgpool`` (classifier replaced by identity) or ``fc7`` (VGG's 4096-d)."""
    import torch

    if head == "avgpool":
        model.fc = torch.nn.Identity()
    elif head == "fc7":
        model.classifier = model.classifier[:-1]  # Linear-ReLU-Dropout-Linear-ReLU-Dropout: fc7 after its ReLU
    else:
        raise ValueError(f"unknown torchvision head {head!r}; expected avgpool or fc7")
    return model


def _state_dict(path: str) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint that wraps the weights
    return {k.removeprefix("module."): v for k, v in state.items()}


def build(spec: ModelSpec, choice: WeightsChoice):
    """The torchvision model in eval mode with its head cut, weights from the cache, a file, or a seed."""
    torchvision_safely()
    import torch

    module, _, attr = spec.builder.rpartition(".")
    ctor = getattr(importlib.import_module(module), attr)
    if choice.seed is not None:
        torch.manual_seed(choice.seed)
    if choice.pretrained == "imagenet":  # torchvision's own loader, reading $TORCH_HOME/hub/checkpoints
        model = ctor(weights=spec.torch_weights)
    else:
        model = ctor(weights=None)
        if choice.pretrained:
            model.load_state_dict(_state_dict(choice.pretrained))
    return _cut_head(model, spec.pooling).eval()


def forward(model, x: np.ndarray) -> np.ndarray:
    """PyTorch's own forward pass on a float32 NCHW batch (the reference the parity gate compares with)."""
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def export(model, spec: ModelSpec, path, opset: int) -> None:
    import torch

    dummy = torch.zeros(2, 3, spec.input_size, spec.input_size)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
