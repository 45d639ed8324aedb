"""The user's own model, three routes (a torch factory + state dict, a Keras file, a bare .onnx with a recipe),
each from the CLI and in a YAML run, and each bad input as a one-line error with nothing written."""

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from onnx_search.errors import ConfigError, ModelFileError, OnnxSearchError, WeightsUnavailableError
from onnx_search.experiment.loader import load_experiment
from onnx_search.experiment.run import run_experiment
from onnx_search.models.convert import convert_model
from onnx_search.models.recipe import prepare_batch, read_metadata_file
from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.user import user_spec
from tests.helpers import TINY_TORCH_NET, USER_RECIPE, foreign_model, photo, run_cli

RECIPE = USER_RECIPE
NET = (
    TINY_TORCH_NET
    + """

def make_fixed():  # takes 16x16 inputs only
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
"""
)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A package of the user's (on PYTHONPATH for the children), its state dict, a Keras model, a bare .onnx."""
    import torch

    root = tmp_path_factory.mktemp("user")
    (root / "mynets").mkdir()
    (root / "mynets" / "__init__.py").write_text("")
    (root / "mynets" / "net.py").write_text(NET)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    mp.setenv("PYTHONPATH", str(root))
    from mynets.net import make

    torch.manual_seed(5)
    net = make().eval()
    torch.save(net.state_dict(), root / "net.pth")
    foreign_model(root / "bare.onnx", 32)
    yield {"root": root, "net": net, "pth": root / "net.pth", "onnx": root / "bare.onnx"}
    mp.undo()
    sys.modules.pop("mynets.net", None)
    sys.modules.pop("mynets", None)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    from onnx_search.models.frameworks import tensorflow_safely

    tensorflow_safely()
    import keras

    keras.utils.set_random_seed(2)
    root = tmp_path_factory.mktemp("keras")
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(5, name="dense")(x))
    model.save(root / "mine.keras")
    model.save(root / "mine.h5")
    batch = prepare_batch(_pixels(), user_spec("k", "keras", RECIPE, file=str(root / "mine.keras")).recipe)
    return {"keras": root / "mine.keras", "h5": root / "mine.h5", "out": model(batch).numpy(), "x": batch}


def _pixels(n: int = 3) -> np.ndarray:
    return np.stack([np.asarray(photo(s, (32, 32))) for s in range(n)])


def _embed(path: Path, x: np.ndarray) -> np.ndarray:
    return ModelSession(path, SessionConfig(["cpu"])).embed(x)


def _unit(v: np.ndarray) -> np.ndarray:
    v = v.reshape(len(v), -1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _cli_user(tmp_path, name, *args):
    return run_cli("convert", "--model", name, "--models-dir", tmp_path / "m", *args)


def _no_files(folder: Path) -> bool:
    return not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]


def test_torch_factory_and_state_dict_from_the_cli_give_the_modules_vectors(tmp_path, user_files):
    import torch

    r = _cli_user(
        tmp_path, "my-net", "--source", "torch", "--factory", "mynets.net:make",
        "--weights", user_files["pth"], "--recipe", json.dumps(RECIPE),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    path = tmp_path / "m" / "my-net.onnx"
    meta = read_metadata_file(path)
    assert meta["source"] == "user-torch" and meta["dim"] == 6 and meta["pooling"] == "output"
    assert meta["parity"]["max_abs_diff"] <= 1e-4 and meta["input_size"] == 32 and meta["layout"] == "NCHW"
    session = ModelSession(path, SessionConfig(["cpu"]))
    x = prepare_batch(_pixels(), session.recipe)
    with torch.inference_mode():
        ref = user_files["net"](torch.from_numpy(x)).numpy()
    assert np.abs(session.embed(x) - _unit(ref)).max() < 1e-5


def test_a_named_layer_is_the_vector_and_a_feature_map_is_refused(tmp_path, user_files):
    import torch

    r = convert_model(
        "my-net-pool", tmp_path, weights=str(user_files["pth"]),
        user={"source": "torch", "factory": "mynets.net:make", "recipe": RECIPE, "layer": "pool"},
    )  # fmt: skip
    assert r.metadata["dim"] == 8 and r.metadata["pooling"] == "layer:pool"
    x = prepare_batch(_pixels(), ModelSession(r.path, SessionConfig(["cpu"])).recipe)
    net = user_files["net"]
    with torch.inference_mode():
        ref = net.pool(torch.relu(net.conv(torch.from_numpy(x)))).numpy()
    assert np.abs(_embed(r.path, x) - _unit(ref)).max() < 1e-5
    with pytest.raises(ModelFileError, match=r"layer 'conv' gives shape \(2, 8, 16, 16\).*not one vector"):
        convert_model(
            "conv-map", tmp_path / "bad",
            user={"source": "torch", "factory": "mynets.net:make", "recipe": RECIPE, "layer": "conv"},
        )  # fmt: skip
    assert _no_files(tmp_path / "bad")


TORCH = {"source": "torch", "factory": "mynets.net:make", "recipe": RECIPE}


@pytest.mark.parametrize(
    ("user", "weights", "message"),
    [
        ({"factory": "mynets.net:missing"}, "random", "cannot be imported: AttributeError"),
        ({}, "extra", "1 unexpected ['extra.weight']"),
        ({"factory": "mynets.net:make_fixed"}, "random", "cannot take the recipe's 32x32 NCHW input"),
    ],
)
def test_bad_torch_inputs_are_one_line_errors_with_nothing_written(tmp_path, user_files, user, weights, message):
    import torch

    torch.save(user_files["net"].state_dict() | {"extra.weight": torch.zeros(2)}, tmp_path / "extra.pth")
    weights = str(tmp_path / "extra.pth") if weights == "extra" else weights
    with pytest.raises(OnnxSearchError) as err:
        convert_model("bad", tmp_path / "m", weights=weights, user=TORCH | user)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert _no_files(tmp_path / "m")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--factory", "nowhere.at_all:make"], "factory 'nowhere.at_all:make' cannot be imported"),
        (["--factory", "mynets.net:make", "--weights", "{missing}"], "2 missing keys ['fc.weight', 'fc.bias']"),
    ],
)
def test_bad_torch_inputs_exit_2_from_the_cli_without_traceback(tmp_path, user_files, args, message):
    import torch

    torch.save({k: v for k, v in user_files["net"].state_dict().items() if k[:3] != "fc."}, tmp_path / "missing.pth")
    args = [a.format(missing=tmp_path / "missing.pth") for a in args]
    r = _cli_user(tmp_path, "bad", "--source", "torch", "--recipe", json.dumps(RECIPE), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _no_files(tmp_path / "m")


def test_keras_and_h5_files_with_an_output_layer_convert_with_parity(tmp_path, keras_files):
    for kind in ("keras", "h5"):
        cut = convert_model(f"cut-{kind}", tmp_path, user={"source": "keras", "file": str(keras_files[kind]),
                                                           "recipe": RECIPE, "layer": "gap"})  # fmt: skip
        meta = cut.metadata
        assert meta["dim"] == 4 and meta["layout"] == "NHWC" and meta["parity"]["max_abs_diff"] <= 1e-4
        whole = convert_model(f"whole-{kind}", tmp_path, user={"source": "keras", "file": str(keras_files[kind]),
                                                               "recipe": RECIPE})  # fmt: skip
        got = _embed(whole.path, keras_files["x"])
        assert np.abs(got - _unit(keras_files["out"])).max() < 1e-5


def test_keras_recipe_that_does_not_fit_the_input_is_refused(tmp_path, keras_files):
    with pytest.raises(ModelFileError, match=r"input is \(None, 32, 32, 3\) but the recipe says NHWC 64px"):
        convert_model("k", tmp_path / "m", user={"source": "keras", "file": str(keras_files["keras"]),
                                                 "recipe": RECIPE | {"input_size": 64}})  # fmt: skip
    assert _no_files(tmp_path / "m")


def test_bare_onnx_runs_with_a_recipe_and_without_one_lists_the_fields(tmp_path, user_files):
    before = user_files["onnx"].read_bytes()
    r = _cli_user(tmp_path, "bare", "--source", "onnx", "--file", user_files["onnx"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for field in ("input_size", "preprocess", "resize", "interpolation", "layout", "crop_pct", "mean", "std"):
        assert field in r.stderr
    onnx_user = {"source": "onnx", "file": str(user_files["onnx"])}
    with pytest.raises(ModelFileError, match="recipe says NHWC 48px"):
        convert_model("bare", tmp_path / "m", user=onnx_user | {"recipe": RECIPE | {"input_size": 48}})
    assert _no_files(tmp_path / "m")
    ok = convert_model("bare", tmp_path / "m", user=onnx_user | {"recipe": RECIPE})
    assert user_files["onnx"].read_bytes() == before  # the user's file is not modified
    session = ModelSession(ok.path, SessionConfig(["cpu"]))
    x = prepare_batch(_pixels(), session.recipe)
    assert session.dim == 3 and np.abs(session.embed(x) - _unit(x.mean(axis=(1, 2)))).max() < 1e-5


def test_config_checks_user_entries_before_any_work(tmp_path, user_files):
    def load(entry: str):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"experiment: e\ndataset: {{root: {tmp_path}}}\nmodels:\n  - {entry}\n")
        return load_experiment(cfg)

    exp = load(f"{{name: {user_files['onnx']}, recipe: {json.dumps(RECIPE)}}}")
    assert exp.models[0].key == "bare" and exp.models[0].user["file"] == str(user_files["onnx"])
    with pytest.raises(ConfigError, match="factory 'no.such:make' cannot be imported"):
        load("{name: n, source: torch, factory: 'no.such:make', recipe: {input_size: 32, preprocess: torch}}")
    with pytest.raises(ConfigError, match="preprocess 'bgr' is not one of"):
        load("{name: n, source: torch, factory: 'mynets.net:make', recipe: {input_size: 32, preprocess: bgr}}")
    with pytest.raises(ConfigError, match="only for the user's own model"):
        load("{name: resnet50, recipe: {input_size: 32}}")
    with pytest.raises(WeightsUnavailableError, match="no file"):
        convert_model("n", tmp_path, weights="nothere.pth",
                      user={"source": "torch", "factory": "mynets.net:make", "recipe": RECIPE})  # fmt: skip


def test_user_models_run_end_to_end_from_yaml(tmp_path, user_files, keras_files, labelled_set, redis_url):
    cfg = tmp_path / "user.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        experiment: user-models
        output: {tmp_path / "runs"}
        data_dir: {tmp_path / "data"}
        models_dir: {tmp_path / "models"}
        top_k: 3
        dataset: {{root: {labelled_set}}}
        models:
          - {{name: my-net, source: torch, factory: "mynets.net:make", weights: {user_files["pth"]},
              layer: pool, recipe: {json.dumps(RECIPE)}, providers: [cpu]}}
          - {{name: my-keras, source: keras, file: {keras_files["keras"]}, recipe: {json.dumps(RECIPE)},
              providers: [cpu]}}
          - {{name: {user_files["onnx"]}, recipe: {json.dumps(RECIPE)}, providers: [cpu]}}
        store: {{redis_url: "{redis_url}", namespace: user-models}}
        queries: {{sample: 3}}
        cost: null
        """)
    )
    run_experiment(cfg, progress=False)
    results = json.loads((tmp_path / "runs" / "user-models" / "results.json").read_text())
    text = json.dumps(results)
    for name in ("my-net", "my-keras", "bare"):
        assert name in text
    assert sorted(p.name for p in (tmp_path / "models").glob("*.onnx")) == ["bare.onnx", "my-keras.onnx", "my-net.onnx"]
