"""A run that never surprises a newcomer: conversion in a child process, model identity for the collection guard,
safe file names for any model name, and a Ray cluster that cannot be reached as a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

from onnx_search.errors import ChildFailedError, ModelChangedError, ModelFileError, UnknownModelError
from onnx_search.filenames import model_file_stem
from onnx_search.ingest import ingest
from onnx_search.models.isolated import convert_isolated, run_child, variant_isolated
from onnx_search.models.recipe import read_metadata_file, write_metadata
from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.tiny import write_pixel_mean_model
from tests.helpers import run_cli


def test_conversion_runs_in_a_child_and_the_caller_never_loads_a_framework(tmp_path):
    code = (
        "import json, sys\nfrom onnx_search.models.isolated import convert_isolated\n"
        "from onnx_search.provenance import peak_rss_mb\n"
        f"c = convert_isolated('mobilenetv2', {str(tmp_path)!r}, weights='random', seed=0)\n"
        "print(json.dumps({'child': c.as_dict(), 'parent_mb': peak_rss_mb(), 'path': str(c.result.path),\n"
        "  'frameworks': sorted(m for m in ('tensorflow', 'torch', 'keras', 'tf2onnx') if m in sys.modules)}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "", r.stderr[-2000:]  # the frameworks' log lines stay in the child's log file
    out = json.loads(r.stdout)
    assert out["frameworks"] == [], out
    parity = read_metadata_file(tmp_path / "mobilenetv2.onnx")["parity"]
    assert not out["child"]["skipped"] and parity["max_abs_diff"] <= parity["tolerance"]
    assert out["child"]["peak_rss_mb"] > 500 > out["parent_mb"], out  # TensorFlow's memory was the child's
    again = convert_isolated("mobilenetv2", tmp_path, weights="random", seed=0)
    assert again.result.skipped and again.result.metadata == read_metadata_file(tmp_path / "mobilenetv2.onnx")


def test_an_up_to_date_model_is_checked_here_and_starts_no_child(models_dir, tmp_path, monkeypatch):
    """The request key (spec, weights, opset, converter code) is computed without a framework, so a model already
    converted from it starts no child; another seed, or a file made by other converter code, still does."""
    import shutil

    from onnx_search.models import isolated

    def no_child(*args, **kwargs):
        raise AssertionError("a conversion child was started")

    monkeypatch.setattr(isolated.subprocess, "Popen", no_child)
    done = convert_isolated("vgg16", models_dir, weights="random", seed=0)
    assert done.result.skipped and done.peak_rss_mb == 0 and done.as_dict()["child"] is False
    assert done.result.metadata == read_metadata_file(models_dir / "vgg16.onnx")
    with pytest.raises(AssertionError, match="child was started"):
        convert_isolated("vgg16", models_dir, weights="random", seed=1)
    stale = shutil.copy(models_dir / "vgg16.onnx", tmp_path / "vgg16.onnx")
    meta = read_metadata_file(stale)
    write_metadata(stale, meta | {"request": meta["request"] | {"converter": "0" * 12}})
    with pytest.raises(AssertionError, match="child was started"):
        convert_isolated("vgg16", tmp_path, weights="random", seed=0)


def test_the_summary_says_which_models_started_no_child():
    from onnx_search.experiment.report.costs import children_line

    kids = [
        {"task": "convert", "model": "a", "skipped": True, "child": False, "peak_rss_mb": 0.0, "seconds": 0.01},
        {"task": "convert", "model": "b", "skipped": True, "child": True, "peak_rss_mb": 600.0, "seconds": 2.0},
        {"task": "variant", "model": "c", "skipped": False, "child": True, "peak_rss_mb": 900.0, "seconds": 5.0},
    ]
    line = children_line({"children": kids})
    assert "a up to date (no child started)" in line and "a convert" not in line
    assert "b convert 600 MB (up to date, checked only)" in line and "c quantise 900 MB" in line


def test_a_childs_error_is_raised_again_in_the_parent_as_the_same_one_line_error(tmp_path):
    with pytest.raises(UnknownModelError, match="unknown model 'no_such_net'"):
        convert_isolated("no_such_net", tmp_path)
    with pytest.raises(ModelFileError, match="does not exist: convert resnet50 first"):
        variant_isolated("resnet50", "int8", tmp_path, calibration=[])
    with pytest.raises(ChildFailedError, match="TypeError in the conversion child.*no_such_argument"):
        run_child("convert", {"name": "resnet50", "no_such_argument": 1})
    r = run_cli("convert", "--model", "no_such_net", "--models-dir", tmp_path, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown model 'no_such_net'" in r.stderr


def _tiny(path, name: str | None = None, size: int = 32):
    """The pixel-mean model with resnet50's recipe, its metadata name set to ``name`` (may hold ``/``)."""
    write_pixel_mean_model(path, size=size, like="resnet50")
    meta = read_metadata_file(path) | {"input_size": size} | ({"name": name} if name else {})
    write_metadata(path, meta)
    return path


BARE_RECIPE = {"input_size": 32, "preprocess": "meanstd", "layout": "NHWC", "std": [0.25, 0.25, 0.25]}
KERAS_TINY = (
    "import sys, keras\nkeras.utils.set_random_seed(0)\ninp = keras.Input((32, 32, 3))\n"
    "x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))\nkeras.Model(inp, x).save(sys.argv[1])"
)


def _convert_bare(bare, out, mean: float):
    """The user's bare .onnx through ``onnx-search convert --source onnx`` (a process of its own), ``mean`` its
    recipe's per-channel mean; the file written."""
    recipe = json.dumps(BARE_RECIPE | {"mean": [mean] * 3})
    r = run_cli("convert", "--model", "tiny", "--source", "onnx", "--file", bare, "--recipe", recipe,
                "--models-dir", out)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return out / "tiny.onnx"


def test_reconverting_an_identical_model_keeps_its_collection_and_a_changed_one_is_explained(
    tmp_path, labelled_set, make_stores, caplog
):
    bare = write_pixel_mean_model(tmp_path / "bare.onnx", size=32)
    first = ModelSession(_convert_bare(bare, tmp_path / "m1", 0.5), SessionConfig(["cpu"]))
    stores = make_stores()
    assert ingest(labelled_set, {"tiny": first}, stores, progress=False).embedded == {"tiny": 12}
    time.sleep(1.1)  # a real reconversion, in another process: same graph and recipe, a new converted_at
    again = ModelSession(_convert_bare(bare, tmp_path / "m2", 0.5), SessionConfig(["cpu"]))
    assert again.sha256 != first.sha256 and again.identity == first.identity
    r = ingest(labelled_set, {"tiny": again}, stores, progress=False)
    assert r.embedded == {"tiny": 0} and r.unchanged == 12
    changed = ModelSession(_convert_bare(bare, tmp_path / "m3", 0.4), SessionConfig(["cpu"]))  # only the recipe
    assert changed.identity != first.identity
    with pytest.raises(ModelChangedError, match="changed since collection"):
        ingest(labelled_set, {"tiny": changed}, stores, progress=False)
    r = ingest(labelled_set, {"tiny": changed}, stores, rebuild_changed=True, progress=False)
    assert r.embedded == {"tiny": 12} and "changed since collection" in caplog.text and "rebuilding" in caplog.text


@pytest.mark.parametrize("route", ["keras", "torch"])
def test_the_same_model_converted_twice_in_two_processes_has_one_identity(tmp_path, route):
    """tf2onnx (a user's Keras file) and torch.onnx (a timm model, seeded weights), each converted twice, each time
    by ``onnx-search convert`` in a process of its own: the files differ (converted_at), the identity does not."""
    if route == "keras":
        src = tmp_path / "tiny.keras"
        made = subprocess.run([sys.executable, "-c", KERAS_TINY, str(src)], capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
        args, stem = (
            ["--model", "tinyk", "--source", "keras", "--file", src, "--recipe", "{input_size: 32, preprocess: tf}"],
            "tinyk",
        )
    else:
        args, stem = (
            ["--model", "timm/test_efficientnet", "--weights", "random", "--seed", "0"],
            "timm/test_efficientnet",
        )
    sessions = []
    for out in ("a", "b"):
        r = run_cli("convert", *args, "--models-dir", tmp_path / out, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        sessions.append(ModelSession(tmp_path / out / f"{stem}.onnx", SessionConfig(["cpu"])))
        time.sleep(1.1)  # converted_at has one-second resolution
    a, b = sessions
    assert a.sha256 != b.sha256 and a.identity == b.identity


def test_the_identity_follows_the_recipe_alone(tmp_path):
    """The same bare graph annotated with another mean: same weights and nodes, another identity."""
    bare = write_pixel_mean_model(tmp_path / "bare.onnx", size=32)
    a = ModelSession(_convert_bare(bare, tmp_path / "a", 0.5), SessionConfig(["cpu"]))
    b = ModelSession(_convert_bare(bare, tmp_path / "b", 0.45), SessionConfig(["cpu"]))
    assert onnx.load(str(a.path)).graph == onnx.load(str(b.path)).graph
    assert a.recipe.mean != b.recipe.mean and a.identity != b.identity


def test_embed_writes_one_file_per_model_whatever_its_name(tmp_path, labelled_set, models_dir):
    from onnx_search.models.convert import convert_model

    convert_model("timm/test_efficientnet", models_dir, weights="random", seed=0)  # a real timm model, cached
    (tmp_path / "m").mkdir()
    plain = _tiny(tmp_path / "m" / "b.onnx")
    out = tmp_path / "out"
    models = ["--model", "torchvision/resnet50", "--model", "timm/test_efficientnet", "--model", plain]
    r = run_cli("embed", labelled_set, "--output", out, *models, "--models-dir", models_dir, "--providers", "cpu",
                "--quiet", "--batch-size", 4)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    index = json.loads((out / "index.json").read_text())
    files = {n: m["vectors_file"] for n, m in index["models"].items()}
    assert files == {"torchvision/resnet50": "torchvision__resnet50.npy",
                     "timm/test_efficientnet": "timm__test_efficientnet.npy", "b": "b.npy"}  # fmt: skip
    for name, f in files.items():
        assert np.load(out / f).shape[0] == index["count"] == 12, name
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == []


@pytest.mark.parametrize(
    "name,stem",
    [("torchvision/vgg16", "torchvision__vgg16"), ("resnet50.int8", "resnet50.int8"), ("../x", "__x"),
     ("a b:c", "a_b_c"), ("/", "__"), ("", "model")],
)  # fmt: skip
def test_model_file_stem_is_one_safe_path_component(name, stem):
    assert model_file_stem(name) == stem and "/" not in stem


def test_an_unreachable_ray_address_is_a_clear_error_within_seconds_and_writes_nothing(tmp_path, labelled_set):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        model = _tiny(tmp_path / "tiny.onnx")
        data = tmp_path / "data"
        t = time.monotonic()
        r = run_cli("ingest", labelled_set, "--model", model, "--data-dir", data, "--engine", "ray",
                    "--ray-address", f"ray://127.0.0.1:{port}", "--quiet", timeout=120)  # fmt: skip
        took = time.monotonic() - t
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr[-2000:]
    assert f"cannot reach the Ray cluster at ray://127.0.0.1:{port}" in r.stderr and "--ray-address" in r.stderr
    assert took < 30, took
    from onnx_search.store.stores import StoreSettings, open_stores

    stores = open_stores(StoreSettings(data_dir=data))
    try:
        assert stores.catalog.models() == {} and stores.catalog.ids() == set() and stores.vectors.collections() == []
    finally:
        stores.close()
