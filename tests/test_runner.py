import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnx_search.convert import annotate, parity_images
from onnx_search.metadata import ModelFileError
from onnx_search.preprocess import normalize
from onnx_search.runner import OnnxEmbedder, ProviderError, RunnerOptions, expand_providers, resolve_model_path


def _batch(n, seed=5):
    from onnx_search.zoo import get_spec

    return normalize(parity_images(get_spec("resnet50"), n=n, seed=seed), "caffe")


def test_vectors_are_unit_length_float32_and_deterministic(embedders):
    m = embedders["resnet50"]
    x = _batch(5)
    a, b = m.embed(x), m.embed(x)
    assert a.dtype == np.float32 and a.shape == (5, 2048)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)


def test_any_batch_size_gives_the_same_vectors(embedders):
    m = embedders["vgg16"]
    x = _batch(7)
    whole = m.embed(x)
    pieces = np.concatenate([m.embed(x[:1]), m.embed(x[1:4]), m.embed(x[4:])])
    assert np.abs(whole - pieces).max() < 1e-5
    assert m.embed(x[:0]).shape == (0, 512)


def test_input_and_output_names_come_from_the_model(embedders):
    m = embedders["resnet50"]
    assert m.input_name == m.session.get_inputs()[0].name
    assert m.output_name == m.session.get_outputs()[0].name
    assert m.recipe.input_size == 224 and m.dim == 2048


def test_unloadable_provider_falls_back_and_says_what_ran(models_dir):
    m = OnnxEmbedder(models_dir / "vgg16.onnx", RunnerOptions(["cuda", "cpu"]))
    assert m.providers_requested == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert m.providers_active == ["CPUExecutionProvider"]  # no GPU on this machine
    assert m.describe()["providers_active"] == ["CPUExecutionProvider"]


def test_strict_mode_refuses_to_fall_back(models_dir):
    with pytest.raises(ProviderError, match="strict"):
        OnnxEmbedder(models_dir / "vgg16.onnx", RunnerOptions(["cuda"], strict=True))


def test_auto_order_and_unknown_names():
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert expand_providers(["auto"], avail) == avail
    assert expand_providers(["auto"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert expand_providers(["cpu", "auto"], avail)[0] == "CPUExecutionProvider"
    with pytest.raises(ProviderError, match="unknown execution provider"):
        expand_providers(["gpu"], avail)


def test_registry_name_resolves_and_missing_file_says_convert(tmp_path, models_dir):
    assert resolve_model_path("vgg16", models_dir) == models_dir / "vgg16.onnx"
    with pytest.raises(ModelFileError, match="onnx-search convert --model vgg16"):
        resolve_model_path("vgg16", tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_model_path(tmp_path / "x.onnx")


def _foreign_model(path, size=224):
    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", size, size, 3])
    out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    node = helper.make_node("ReduceMean", ["pixels", "axes"], ["feat"], keepdims=0)
    graph = helper.make_graph([node], "g", [inp], [out], initializer=[axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))


def test_file_without_metadata_is_explained_and_annotate_fixes_it(tmp_path):
    path = tmp_path / "foreign.onnx"
    _foreign_model(path)
    with pytest.raises(ModelFileError, match="no onnx-search metadata"):
        OnnxEmbedder(path, RunnerOptions(["cpu"]))
    annotate(path, like="resnet50")
    m = OnnxEmbedder(path, RunnerOptions(["cpu"]))
    assert m.name == "foreign" and m.dim == 3 and m.input_name == "pixels"
    v = m.embed(_batch(2))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)


def test_unloadable_file_is_a_model_file_error(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="cannot load"):
        OnnxEmbedder(bad, RunnerOptions(["cpu"]))
