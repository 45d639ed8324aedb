"""Registry of known models: one entry per model, everything a recipe needs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UnknownModelError
from .recipe import Recipe

POOLINGS = ("max", "avg")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one Keras application and feed it images."""

    name: str
    builder: str  # dotted path of the keras.applications constructor
    input_size: int  # square input side in pixels
    preprocess: str  # one of PREPROCESS_MODES, as keras' preprocess_input does it
    pooling: str  # global pooling over the last feature map
    dim: int  # output vector dimension
    weights_file: str  # file name Keras caches ImageNet no-top weights under
    resize: str = "squash"  # one of RESIZE_POLICIES
    interpolation: str = "bilinear"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def recipe(self) -> Recipe:
        return Recipe(self.input_size, self.preprocess, self.resize, self.interpolation)

    def recipe_metadata(self, name: str, source: str, weights: str) -> dict:
        """The recipe part of a .onnx file's metadata: what the session needs to feed the model correctly."""
        return {
            "name": name,
            "source": source,
            "weights": weights,
            "input_size": self.input_size,
            "preprocess": self.preprocess,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "pooling": self.pooling,
            "dim": self.dim,
            "layout": "NHWC",
            "normalized_output": False,
        }


def _spec(name: str, builder: str, size: int, mode: str, pooling: str, dim: int, weights_file: str) -> ModelSpec:
    return ModelSpec(name, f"keras.applications.{builder}", size, mode, pooling, dim, weights_file)


# Adding a model is one line: name, constructor, input side, preprocessing, pooling, dim, cached weights file.
REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        _spec(
            "resnet50", "ResNet50", 224, "caffe", "max", 2048, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        _spec("vgg16", "VGG16", 224, "caffe", "max", 512, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _spec(
            "mobilenetv2",
            "MobileNetV2",
            224,
            "tf",
            "avg",
            1280,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        ),
        _spec("efficientnetb0", "EfficientNetB0", 224, "raw", "avg", 1280, "efficientnetb0_notop.h5"),
        _spec(
            "densenet121",
            "DenseNet121",
            224,
            "torch",
            "avg",
            1024,
            "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        _spec(
            "inceptionv3",
            "InceptionV3",
            299,
            "tf",
            "avg",
            2048,
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
    )
}

DEFAULT_MODELS = ("resnet50", "vgg16")


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (case-insensitive), or a clear error listing the known names."""
    key = name.lower()
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known} (or give a path to a .onnx file)")
    return REGISTRY[key]
