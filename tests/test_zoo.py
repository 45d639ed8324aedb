import pytest

from onnx_search.errors import UnknownModelError
from onnx_search.models.recipe import PREPROCESS_MODES, RESIZE_POLICIES
from onnx_search.models.zoo import POOLINGS, REGISTRY, SOURCES, get_spec


def test_registry_has_the_tutorial_models_and_more():
    assert {"resnet50", "vgg16"} <= set(REGISTRY)
    assert len(REGISTRY) >= 6
    assert get_spec("ResNet50").dim == 2048 and get_spec("vgg16").dim == 512
    assert get_spec("inceptionv3").input_size == 299


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=list(REGISTRY))
def test_every_entry_is_consistent(spec):
    assert spec.preprocess in PREPROCESS_MODES
    assert spec.pooling in POOLINGS
    assert spec.resize in RESIZE_POLICIES and spec.source in SOURCES
    if spec.source == "keras":
        assert spec.builder.startswith("keras.applications.") and spec.weights_file.endswith(".h5")
        assert spec.layout == "NHWC" and spec.pooling in ("max", "avg")
    elif spec.source == "timm":  # the recipe is read from timm at conversion; these are its defaults
        assert spec.layout == "NCHW" and spec.preprocess == "meanstd" and spec.mean and spec.std and spec.dim > 0
        assert "/" not in spec.builder and not spec.weights_file
    else:
        assert spec.name == f"torchvision/{spec.builder.rsplit('.', 1)[1]}" and spec.weights_file.endswith(".pth")
        assert spec.layout == "NCHW" and spec.pooling in ("avgpool", "fc7") and spec.torch_weights
        assert (spec.resize, spec.preprocess) == ("center_crop", "torch")


def test_any_timm_architecture_is_a_model_and_its_name_is_checked():
    spec = get_spec("timm/convnext_small")
    assert (spec.source, spec.builder, spec.name) == ("timm", "convnext_small", "timm/convnext_small")
    for bad in ("timm/", "timm/a/b", "timm/../x"):
        with pytest.raises(UnknownModelError, match="timm architecture"):
            get_spec(bad)


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownModelError, match="known models: .*resnet50"):
        get_spec("resnet5O")
