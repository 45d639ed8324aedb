"""torchvision models as a second source: conversion with parity, torchvision's preprocessing, weights."""

import json
import time

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from onnx_search.embed.decode import load_for_recipes
from onnx_search.errors import ParityError, WeightsUnavailableError
from onnx_search.models import convert, convert_torch
from onnx_search.models.parity import PARITY_TOLERANCE
from onnx_search.models.recipe import METADATA_KEY, prepare_batch
from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.weights import WeightsChoice
from onnx_search.models.zoo import get_spec
from tests.helpers import photo, run_cli

TORCH_MODELS = ("torchvision/resnet50", "torchvision/vgg16")


def _torchvision_transform():
    from torchvision import transforms as T

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(mean, std)])


@pytest.mark.parametrize("name,dim", [("torchvision/resnet50", 2048), ("torchvision/vgg16", 4096)])
def test_converted_torchvision_model_is_self_describing(models_dir, name, dim):
    path = models_dir / f"{name}.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["source"] == "torchvision" and meta["builder"] == f"torchvision.models.{name.split('/')[1]}"
    assert (meta["preprocess"], meta["resize"], meta["layout"], meta["dim"]) == ("torch", "center_crop", "NCHW", dim)
    assert meta["parity"]["against"] == "PyTorch" and meta["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    assert {"torch", "torchvision", "onnxruntime"} <= {k for k, v in meta["versions"].items() if v}
    inp = sess.get_inputs()[0]
    assert not isinstance(inp.shape[0], int) and inp.shape[1:] == [3, 224, 224]  # dynamic batch, NCHW


def test_onnx_equals_pytorch_on_other_images(models_dir):
    spec = get_spec("torchvision/resnet50")
    model = convert_torch.build(spec, WeightsChoice.random(0))
    pixels = np.stack([np.asarray(photo(s, (224, 224))) for s in (11, 12, 13)])
    x = prepare_batch(pixels, spec.recipe)
    ref = convert_torch.forward(model, x)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    got = ModelSession(models_dir / f"{spec.name}.onnx", SessionConfig(["cpu"])).embed(x)
    assert np.abs(ref - got).max() < PARITY_TOLERANCE


def test_parity_gate_refuses_a_wrong_torch_graph(tmp_path, monkeypatch):
    real_export = convert_torch.export
    spec = get_spec("torchvision/resnet50")

    def export_other_weights(model, spec_, path, opset):
        real_export(convert_torch.build(spec, WeightsChoice.random(5)), spec_, path, opset)

    monkeypatch.setattr(convert_torch, "export", export_other_weights)
    with pytest.raises(ParityError, match="ONNX and PyTorch disagree"):
        convert.convert_model(spec.name, tmp_path, weights="random", seed=0)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("size", [(224, 224), (257, 256), (500, 375), (375, 500), (1000, 300), (300, 1000)])
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_preprocessing_equals_torchvision_transforms_to_the_last_bit(tmp_path, size, ext):
    """Same resampler (Pillow's antialiased bilinear), same arithmetic: max abs difference 0.0."""
    path = tmp_path / f"img.{ext}"
    photo(sum(size), size).save(path, quality=90) if ext == "jpg" else photo(sum(size), size).save(path)
    recipe = get_spec("torchvision/resnet50").recipe
    _, (arr,) = load_for_recipes(path, [recipe.geometry])
    ours = prepare_batch(arr[None], recipe)[0]
    theirs = _torchvision_transform()(Image.open(path).convert("RGB")).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert np.abs(ours - theirs).max() == 0.0


def test_large_jpegs_decoded_at_reduced_scale_stay_within_the_stated_tolerance(tmp_path):
    """JPEGs at least twice the needed 256 px are decoded in Pillow's draft mode (reduced DCT scale): measured
    here max 0.052 and mean 0.005 in normalised units (about 3 and 0.3 grey levels); the bound is 0.1 / 0.01."""
    from onnx_search.bench.embed import photo_folder

    recipe = get_spec("torchvision/resnet50").recipe
    src = sorted(photo_folder(tmp_path / "p", 2).glob("*.jpg"))
    for i, p in enumerate(src):
        big = tmp_path / f"big{i}.jpg"
        Image.open(p).resize((1280, 960), Image.BICUBIC).save(big, quality=90)
        _, (arr,) = load_for_recipes(big, [recipe.geometry])
        diff = np.abs(prepare_batch(arr[None], recipe)[0] - _torchvision_transform()(Image.open(big)).numpy())
        assert diff.max() < 0.1 and diff.mean() < 0.01


def test_keras_and_torchvision_recipes_share_one_decode(models_dir, embedders, labelled_set, monkeypatch):
    from onnx_search.embed import pipeline
    from onnx_search.embed.sinks import embed_paths

    tv = ModelSession(models_dir / "torchvision/resnet50.onnx", SessionConfig(["cpu"]))
    models = {"resnet50": embedders["resnet50"], "torchvision/resnet50": tv}
    calls = []
    real = pipeline.load_for_recipes
    monkeypatch.setattr(pipeline, "load_for_recipes", lambda p, g, m: calls.append(g) or real(p, g, m))
    files = sorted(labelled_set.rglob("*.jpg"))
    got = embed_paths(pipeline.Pipeline(models, batch_size=4, progress=False), files)
    geometries = [(224, "center_crop", "bilinear", 0.0), (224, "squash", "bilinear", 0.0)]
    assert len(calls) == len(files) and calls[0] == geometries
    assert got.vectors("torchvision/resnet50").shape == (len(files), 2048)
    _, (arr,) = load_for_recipes(files[0], [tv.recipe.geometry])
    alone = tv.embed(prepare_batch(arr[None], tv.recipe))[0]
    assert np.abs(alone - got.vectors("torchvision/resnet50")[0]).max() < 1e-5


def test_offline_imagenet_fails_fast_naming_the_torch_cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        convert.convert_model("torchvision/resnet50", tmp_path / "out", weights="imagenet")
    assert time.monotonic() - t0 < 10
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in str(err.value)
    assert "torchvision looked for" in str(err.value) and "random" in str(err.value)


def test_a_local_state_dict_loads_plain_or_wrapped(tmp_path):
    import torch

    spec = get_spec("torchvision/resnet50")
    donor = convert_torch.build(spec, WeightsChoice.random(3))
    full = {k: v for k, v in donor.state_dict().items()}
    full["fc.weight"], full["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)  # a whole classifier's file
    torch.save(full, tmp_path / "plain.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in full.items()}, "epoch": 7}, tmp_path / "wrapped.pt")
    x = prepare_batch(np.stack([np.asarray(photo(1, (224, 224)))]), spec.recipe)
    want = convert_torch.forward(donor, x)
    for name in ("plain.pth", "wrapped.pt"):
        model = convert_torch.build(spec, WeightsChoice.from_file(tmp_path / name))
        np.testing.assert_array_equal(convert_torch.forward(model, x), want)
    r = convert.convert_model(spec.name, tmp_path / "m", weights=str(tmp_path / "plain.pth"))
    assert r.metadata["weights"] == f"file:{tmp_path / 'plain.pth'}" and r.metadata["parity"]["max_abs_diff"] < 1e-4


def test_cli_converts_a_torchvision_model(tmp_path):
    r = run_cli("convert", "--model", "torchvision/resnet50", "--models-dir", tmp_path, "--weights", "random")
    assert r.returncode == 0, r.stderr
    assert "torchvision/resnet50: wrote" in r.stdout and "parity max|diff|" in r.stdout
    assert (tmp_path / "torchvision" / "resnet50.onnx").is_file()


def test_torchvision_after_tensorflow_is_a_clear_error_not_a_crash():
    import subprocess
    import sys

    code = (
        "import tensorflow\n"
        "from onnx_search.models.convert_torch import build\n"
        "from onnx_search.models.weights import WeightsChoice\n"
        "from onnx_search.models.zoo import get_spec\n"
        "build(get_spec('torchvision/resnet50'), WeightsChoice.random(0))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "TensorFlow was imported before torchvision" in r.stderr


def test_shipped_keras_vs_torch_config_runs_end_to_end(models_dir, labelled_set, tmp_path, redis_url, monkeypatch):
    from pathlib import Path

    from onnx_search.experiment.run import run_experiment

    text = (Path(__file__).parents[1] / "configs" / "keras_vs_torch.yaml").read_text()
    text = text.replace(
        "output: runs", f"output: {tmp_path / 'runs'}\ndata_dir: {tmp_path / 'data'}\nmodels_dir: {models_dir}"
    )
    text = (
        text.replace("weights: auto", "weights: random")
        .replace("sample: 50", "sample: 6")
        .replace("top_k: 10", "top_k: 4")
    ) + "cost: {images: 4, repeats: 1}\n"  # the cost phase runs, on fewer images (16 x 2 took 32 of 46 s)
    cfg = tmp_path / "kvt.yaml"
    cfg.write_text(text)
    monkeypatch.setenv("PHOTOS", str(labelled_set))
    monkeypatch.setenv("REDIS_URL", redis_url)
    out = run_experiment(cfg, progress=False)
    c = json.loads((out.run_dir / "comparison.json").read_text())
    pairs = c["summary"]["pairs"]
    assert "resnet50|torchvision/resnet50" in pairs and "vgg16|torchvision/vgg16" in pairs
    assert 0 <= pairs["resnet50|torchvision/resnet50"]["overlap_at_k"] <= 1
    assert "| resnet50 vs torchvision/resnet50 |" in out.summary_md
    m = json.loads((out.run_dir / "manifest.json").read_text())
    assert m["models"]["torchvision/vgg16"]["dim"] == 4096 and m["models"]["torchvision/resnet50"]["dim"] == 2048
