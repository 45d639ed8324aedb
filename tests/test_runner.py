import numpy as np
import pytest

from onnx_search.errors import ModelFileError, ProviderError
from onnx_search.models.convert import annotate
from onnx_search.models.parity import parity_images
from onnx_search.models.providers import expand_providers
from onnx_search.models.recipe import normalize
from onnx_search.models.session import ModelSession, SessionConfig, resolve_model_path
from tests.helpers import cuda_really_runs, foreign_model


def _batch(n, seed=5):
    from onnx_search.models.zoo import get_spec

    return normalize(parity_images(get_spec("resnet50"), n=n, seed=seed), "caffe")


def test_vectors_are_unit_length_float32_and_deterministic(embedders):
    m = embedders["resnet50"]
    x = _batch(5)
    a, b = m.embed(x), m.embed(x)
    assert a.dtype == np.float32 and a.shape == (5, 2048)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)


def test_any_batch_size_gives_the_same_vectors(embedders):
    m = embedders["resnet50"]
    x = _batch(7)
    whole = m.embed(x)
    pieces = np.concatenate([m.embed(x[:1]), m.embed(x[1:4]), m.embed(x[4:])])
    assert np.abs(whole - pieces).max() < 1e-5
    assert m.embed(x[:0]).shape == (0, 2048)


def test_input_and_output_names_come_from_the_model(embedders):
    m = embedders["resnet50"]
    assert m.input_name == m.session.get_inputs()[0].name
    assert m.output_name == m.session.get_outputs()[0].name
    assert m.recipe.input_size == 224 and m.dim == 2048


def test_requested_provider_reports_what_really_ran(models_dir):
    path = models_dir / "vgg16.onnx"
    m = ModelSession(path, SessionConfig(["cuda", "cpu"]))
    assert m.providers_requested == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    expected = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_really_runs(path) else ["CPUExecutionProvider"]
    assert m.providers_active == expected and m.describe()["providers_active"] == expected


def test_a_provider_this_build_lacks_falls_back_or_fails_in_strict_mode(models_dir):
    path = models_dir / "vgg16.onnx"
    m = ModelSession(path, SessionConfig(["NoSuchAcceleratorExecutionProvider", "cpu"]))
    assert m.providers_active == ["CPUExecutionProvider"]
    with pytest.raises(ProviderError, match="not in this onnxruntime build"):
        ModelSession(path, SessionConfig(["NoSuchAcceleratorExecutionProvider"], strict=True))


def test_strict_cuda_runs_on_cuda_or_refuses_to_fall_back(models_dir):
    path = models_dir / "vgg16.onnx"
    if cuda_really_runs(path):
        assert ModelSession(path, SessionConfig(["cuda"], strict=True)).provider == "CUDAExecutionProvider"
    else:
        with pytest.raises(ProviderError, match="strict"):
            ModelSession(path, SessionConfig(["cuda"], strict=True))


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


def test_file_without_metadata_is_explained_and_annotate_fixes_it(tmp_path):
    path = tmp_path / "foreign.onnx"
    foreign_model(path)
    with pytest.raises(ModelFileError, match="no onnx-search metadata"):
        ModelSession(path, SessionConfig(["cpu"]))
    annotate(path, like="resnet50")
    m = ModelSession(path, SessionConfig(["cpu"]))
    assert m.name == "foreign" and m.dim == 3 and m.input_name == "pixels"
    v = m.embed(_batch(2))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)


def test_unloadable_file_is_a_model_file_error(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="cannot load"):
        ModelSession(bad, SessionConfig(["cpu"]))
