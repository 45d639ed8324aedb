"""Deployment variants: self-describing files that name their parent, rebuilt when it changes."""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnx_search.errors import ConfigError, ModelFileError
from onnx_search.ids import file_sha256
from onnx_search.models.parity import parity_images
from onnx_search.models.recipe import prepare_batch, read_metadata_file, write_metadata
from onnx_search.models.session import ModelSession, SessionConfig, resolve_model_path
from onnx_search.models.variants import calibration_batches, calibration_files, make_variant
from onnx_search.models.zoo import get_spec, split_variant
from tests.helpers import photo, run_cli


def _vectors(path, n: int = 3, seed: int = 41):
    """Unit vectors of ``path`` on images no conversion step saw (not the parity or agreement batches)."""
    spec = get_spec("resnet50")
    return ModelSession(path, SessionConfig(["cpu"])).embed(prepare_batch(parity_images(spec, n, seed), spec.recipe))


@pytest.fixture
def own_models(models_dir, tmp_path):
    """A private copy of the converted fixture models: these tests change parents."""
    d = tmp_path / "models"
    d.mkdir()
    for name in ("resnet50",):
        shutil.copy(models_dir / f"{name}.onnx", d / f"{name}.onnx")
    return d


def test_a_variant_names_its_parent_and_keeps_the_recipe(own_models):
    r = make_variant("resnet50", "fp16", own_models)
    meta = read_metadata_file(r.path)
    parent = read_metadata_file(own_models / "resnet50.onnx")
    assert r.path == own_models / "resnet50.fp16.onnx" and meta["name"] == "resnet50.fp16" and meta["variant"] == "fp16"
    assert meta["parent"] == {
        "name": "resnet50",
        "sha256": file_sha256(own_models / "resnet50.onnx"),
        "file": "resnet50.onnx",
    }
    for key in ("input_size", "preprocess", "resize", "layout", "dim", "weights"):
        assert meta[key] == parent[key], key
    assert meta["made_by"]["keep_io_types"] and meta["parent_agreement"]["min_cosine"] > 0.9999
    s = ModelSession(resolve_model_path("resnet50.fp16", own_models), SessionConfig(["cpu"]))
    assert s.name == "resnet50.fp16" and s.describe()["parent"]["name"] == "resnet50"
    assert split_variant("resnet50.fp16") == ("resnet50", "fp16") and split_variant("torchvision/vgg16") == (
        "torchvision/vgg16",
        "fp32",
    )

    # the file itself is FP16: float16 weights in about half the bytes, float32 vectors out, close to the parent's
    weights = [t for t in onnx.load(str(r.path)).graph.initializer if len(t.dims) > 1]  # conv kernels, not shapes
    assert weights and {t.data_type for t in weights} == {onnx.TensorProto.FLOAT16}
    assert 0.45 < r.path.stat().st_size / (own_models / "resnet50.onnx").stat().st_size < 0.55
    a, b = _vectors(own_models / "resnet50.onnx"), _vectors(r.path)
    assert b.dtype == np.float32 and (a * b).sum(axis=1).min() > 0.999  # float32 in and out, vectors kept


def _change_weights(path, label: str) -> None:
    """The parent changes: one weight tensor scaled, its metadata saying so (as a reconversion would)."""
    model = onnx.load(str(path))
    t = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    w = numpy_helper.to_array(t) * np.float32(1.5)
    t.CopyFrom(numpy_helper.from_array(w, t.name))
    onnx.save(model, str(path))
    write_metadata(path, read_metadata_file(path) | {"weights": label})


def test_optimized_is_a_fused_graph_and_is_rebuilt_when_its_parent_changes(own_models):
    parent = own_models / "resnet50.onnx"
    first = make_variant("resnet50", "optimized", own_models)
    ops = [n.op_type for n in onnx.load(str(first.path)).graph.node]
    parent_ops = [n.op_type for n in onnx.load(str(parent)).graph.node]
    assert len(ops) < len(parent_ops) and "FusedConv" in ops and "FusedConv" not in parent_ops
    assert np.abs(_vectors(parent) - _vectors(first.path)).max() < 1e-4
    assert not first.skipped and make_variant("resnet50", "optimized", own_models).skipped
    _change_weights(own_models / "resnet50.onnx", "random:1")
    again = make_variant("resnet50", "optimized", own_models)
    assert not again.skipped
    assert (
        again.metadata["parent"]["sha256"]
        == file_sha256(own_models / "resnet50.onnx")
        != first.metadata["parent"]["sha256"]
    )
    assert again.metadata["weights"] == "random:1"


def test_int8_is_quantised_static_qdq_per_channel_and_close_to_its_parent(own_models, labelled_set):
    r = make_variant("resnet50", "int8", own_models, calibration=calibration_files(labelled_set))
    ops = {n.op_type for n in onnx.load(str(r.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert r.metadata["made_by"]["calibration_images"] == 12 and r.metadata["made_by"]["per_channel"]
    assert r.path.stat().st_size < 0.4 * (own_models / "resnet50.onnx").stat().st_size
    spec = get_spec("resnet50")
    x = prepare_batch(parity_images(spec, n=4, seed=8), spec.recipe)
    a = ModelSession(own_models / "resnet50.onnx", SessionConfig(["cpu"])).embed(x)
    b = ModelSession(r.path, SessionConfig(["cpu"])).embed(x)
    assert (a * b).sum(axis=1).min() > 0.99


def test_int8_calibration_from_an_empty_or_unreadable_folder_fails_clearly(own_models, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no image files"):
        calibration_files(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (bad / "b.png").write_text("text")
    with pytest.raises(ConfigError, match="no readable calibration image among 2 files"):
        calibration_batches(calibration_files(bad), get_spec("resnet50").recipe)
    with pytest.raises(ConfigError, match="int8 needs calibration images"):
        make_variant("resnet50", "int8", own_models)
    r = run_cli(
        "convert",
        "--model",
        "resnet50",
        "--models-dir",
        own_models,
        "--weights",
        "random",
        "--variant",
        "int8",
        "--calibrate",
        empty,
    )
    assert r.returncode == 2 and "holds no image files" in r.stderr and "Traceback" not in r.stderr
    assert not (own_models / "resnet50.int8.onnx").exists() and not list(own_models.glob("resnet50.int8.*"))


def test_cli_writes_variants(own_models, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        photo(i).save(photos / f"p{i}.jpg")
    r = run_cli(
        "convert",
        "--model",
        "resnet50",
        "--models-dir",
        own_models,
        "--weights",
        "random",
        "--variant",
        "fp16",
        "--variant",
        "int8",
        "--calibrate",
        photos,
    )
    assert r.returncode == 0, r.stderr
    assert (
        "resnet50.fp16: wrote" in r.stdout and "resnet50.int8: wrote" in r.stdout and "cosine to its parent" in r.stdout
    )
    int8 = resolve_model_path("resnet50.int8", own_models)  # the one INT8 of resnet50 here, named by its inputs
    assert np.isclose(read_metadata_file(int8)["made_by"]["calibration_images"], 4)


def _run_experiment(name: str, images, models, base, redis_url) -> dict:
    """``onnx-search run`` of a one-model experiment (Lite0 + its INT8) in a child; its manifest."""
    import json
    import subprocess

    from tests.helpers import cli_command

    cfg = base / f"{name}.yaml"
    cfg.write_text(
        f"experiment: {name}\noutput: {base / 'runs'}\ndata_dir: {base / (name + '-data')}\nmodels_dir: {models}\n"
        f"top_k: 3\ndataset: {{root: {images}}}\nseed: 0\n"
        "models:\n  - {name: efficientnet-lite0, weights: imagenet, variants: [fp32, int8], providers: [cpu]}\n"
        f"store: {{redis_url: '{redis_url}', namespace: {name}}}\nqueries: {{sample: 2}}\ncost: null\n"
    )
    out = subprocess.run(cli_command("run", cfg), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads((base / "runs" / name / "manifest.json").read_text())


def test_experiments_alternating_on_one_models_folder_never_remake_or_reembed_each_others_int8(
    trained_dir, tmp_path, redis_url
):
    """A, then B (other images), then A again, sharing models_dir: B's INT8 sits beside A's, the second A
    re-quantises nothing and re-embeds nothing, its manifest and collection name the file, and its explorer starts."""
    from onnx_search.synth import generate_labelled_set
    from tests.serve_fixture import start_server

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained_dir / "efficientnet-lite0.onnx", models / "efficientnet-lite0.onnx")
    sets = {"a": tmp_path / "images-a", "b": tmp_path / "images-b"}
    generate_labelled_set(sets["a"], per_class=3, classes=("circles", "stripes"), size=96, seed=1)
    generate_labelled_set(sets["b"], per_class=3, classes=("checkers", "gradient"), size=96, seed=2)

    first = _run_experiment("a", sets["a"], models, tmp_path, redis_url)
    int8_a = Path(first["models"]["efficientnet-lite0.int8"]["path"])
    sha_a = file_sha256(int8_a)
    second = _run_experiment("b", sets["b"], models, tmp_path, redis_url)
    int8_b = Path(second["models"]["efficientnet-lite0.int8"]["path"])
    assert int8_b != int8_a and int8_b.parent == int8_a.parent == models  # named by their calibration sets
    assert file_sha256(int8_a) == sha_a  # B left A's file as it was
    third = _run_experiment("a", sets["a"], models, tmp_path, redis_url)
    remade = [c for c in third["children"] if c["task"] == "variant" and not c["skipped"]]
    assert remade == [], third["children"]  # 0 re-quantised
    assert third["ingest"]["embedded"] in ({}, {"efficientnet-lite0": 0, "efficientnet-lite0.int8": 0}), third["ingest"]
    assert third["ingest"]["unchanged"] == 6  # 0 re-embedded
    assert third["models"]["efficientnet-lite0.int8"]["path"] == str(int8_a) and file_sha256(int8_a) == sha_a
    assert {c["path"] for c in third["children"] if c["task"] == "variant"} == {str(int8_a)}

    server = start_server(tmp_path / "runs" / "a")  # the explorer's own startup check over A's collections
    try:
        status, health = server.json("/api/health")
        assert status == 200 and health["unavailable"] == [], health
        assert sorted(health["models"]) == ["efficientnet-lite0", "efficientnet-lite0.int8"]
    finally:
        server.stop()


def test_a_variant_name_resolves_to_its_one_file_and_several_are_refused_naming_them(tmp_path):
    from onnx_search.errors import ModelFileError

    (tmp_path / "resnet50.int8.aaaaaaaaaaaa.onnx").write_bytes(b"x")
    assert resolve_model_path("resnet50.int8", tmp_path) == tmp_path / "resnet50.int8.aaaaaaaaaaaa.onnx"
    (tmp_path / "resnet50.int8.bbbbbbbbbbbb.onnx").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"2 int8 files of resnet50 .*aaaa.*bbbb.*--model PATH"):
        resolve_model_path("resnet50.int8", tmp_path)


def test_a_variant_whose_vectors_vanish_is_refused_in_one_line_and_not_written(models_dir, tmp_path):
    """Random-weight MobileNetV2's activations shrink to about 1e-10 by its last layer: in float16 they underflow
    to zero, so its FP16 file would give zero vectors (NaN cosines). It is refused, and no file is left."""
    shutil.copy(models_dir / "mobilenetv2.onnx", tmp_path / "mobilenetv2.onnx")
    with pytest.raises(ModelFileError, match=r"^mobilenetv2\.fp16: .*zero or non-finite vectors.*not written"):
        make_variant("mobilenetv2", "fp16", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mobilenetv2.onnx"]
