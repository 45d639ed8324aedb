import json

import numpy as np
import pytest

from onnx_search.embed import pipeline
from onnx_search.embed.decode import load_for_recipes
from onnx_search.embed.files import embed_folder
from onnx_search.models.recipe import normalize
from tests.helpers import BAD_REASONS, GOOD, foreign_model, make_bad_folder, run_cli


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return root, make_bad_folder(root)


@pytest.fixture(scope="module")
def embedded(bad_folder, embedders, tmp_path_factory):
    root, _ = bad_folder
    out = tmp_path_factory.mktemp("emb")
    return embed_folder(root, embedders, out, batch_size=4, progress=False), out


def test_good_files_are_embedded_bad_ones_reported(embedded, bad_folder):
    summary, out = embedded
    root, paths = bad_folder
    index = json.loads((out / "index.json").read_text())
    embedded_names = {p.rsplit("/", 1)[-1] for p in (i["path"] for i in index["images"])}
    assert set(GOOD) <= embedded_names
    assert paths["unicode"].name in embedded_names and paths["long"].name in embedded_names
    assert len(str(paths["long"])) > 300
    assert summary.embedded == len(GOOD) + 2
    skipped = {p.rsplit("/", 1)[-1]: r for p, r in (tuple(s) for s in summary.skipped)}
    for name, reason in BAD_REASONS.items():
        assert name in skipped, f"{name} not reported"
        assert reason in skipped[name]
    assert any("loop" in r for r in skipped.values())
    report = json.loads((out / "skipped.json").read_text())
    assert len(report) == len(summary.skipped)


def test_vectors_match_the_runner_on_single_images(embedded, embedders):
    summary, out = embedded
    index = json.loads((out / "index.json").read_text())
    for name, m in embedders.items():
        vecs = np.load(out / f"{name}.npy")
        assert vecs.shape == (summary.embedded, m.dim)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        row = index["images"][2]
        _, (arr,) = load_for_recipes(row["path"], [m.recipe.geometry])
        alone = m.embed(normalize(arr[None], m.recipe.preprocess))[0]
        assert np.abs(alone - vecs[row["row"]]).max() < 1e-5


def test_each_file_is_read_and_decoded_once_for_all_models(embedders, labelled_set, tmp_path, monkeypatch):
    calls = []
    real = pipeline.load_for_recipes
    monkeypatch.setattr(pipeline, "load_for_recipes", lambda p, g, m: calls.append(p) or real(p, g, m))
    s = embed_folder(labelled_set, embedders, tmp_path, batch_size=5, progress=False)
    assert s.embedded == 12 and len(calls) == 12  # two models, one decode each
    assert len(pipeline.Pipeline(embedders).geometries) == 1


def test_cli_embed_and_clear_errors(labelled_set, models_dir, tmp_path):
    common = ["--models-dir", models_dir, "--output", tmp_path / "o", "--providers", "cpu", "--quiet"]
    r = run_cli("embed", labelled_set, "--model", "mobilenetv2", *common)
    assert r.returncode == 0, r.stderr
    assert "embedded 12 images" in r.stdout and "CPUExecutionProvider" in r.stdout
    assert np.load(tmp_path / "o" / "mobilenetv2.npy").shape == (12, 1280)
    r = run_cli("embed", labelled_set, "--model", "nosuchnet", *common)
    assert r.returncode == 2 and "unknown model 'nosuchnet'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("embed", labelled_set, "--model", "mobilenetv2", *common[2:], "--models-dir", tmp_path)
    assert r.returncode == 2 and "convert it first" in r.stderr


def test_an_unexpected_error_on_one_file_does_not_stop_the_run(embedders, labelled_set, tmp_path, monkeypatch):
    real = pipeline.load_for_recipes

    def flaky(path, geometries, max_pixels):
        if path.name == "stripes_002.jpg":
            raise RuntimeError("simulated decoder bug")
        return real(path, geometries, max_pixels)

    monkeypatch.setattr(pipeline, "load_for_recipes", flaky)
    s = embed_folder(labelled_set, {"mobilenetv2": embedders["mobilenetv2"]}, tmp_path, progress=False)
    assert s.embedded == 11
    assert [(p.rsplit("/", 1)[-1], r) for p, r in s.skipped] == [
        ("stripes_002.jpg", "unexpected error while decoding: RuntimeError: simulated decoder bug")
    ]


def test_models_with_different_recipes_share_one_decode(embedders, labelled_set, tmp_path, monkeypatch):
    """A 299-px model beside a 224-px one: two geometries, one read and decode per file."""
    from onnx_search.models.convert import annotate
    from onnx_search.models.session import ModelSession, SessionConfig

    path = tmp_path / "mean299.onnx"
    foreign_model(path, size=299)
    annotate(path, like="inceptionv3")
    tiny = ModelSession(path, SessionConfig(["cpu"]))
    models = {"mobilenetv2": embedders["mobilenetv2"], "mean299": tiny}
    calls = []
    real = pipeline.load_for_recipes
    monkeypatch.setattr(pipeline, "load_for_recipes", lambda p, g, m: calls.append(g) or real(p, g, m))
    s = embed_folder(labelled_set, models, tmp_path / "out", progress=False)
    assert s.embedded == 12 and len(calls) == 12
    assert calls[0] == [(224, "squash", "bilinear", 0.0), (299, "squash", "bilinear", 0.0)]
    means = np.load(tmp_path / "out" / "mean299.npy")
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    _, (arr,) = load_for_recipes(index["images"][0]["path"], [(299, "squash", "bilinear")])
    expected = normalize(arr[None], "tf").astype(np.float64).mean(axis=(1, 2))[0]
    np.testing.assert_allclose(means[0], expected / np.linalg.norm(expected), atol=1e-4)  # float32 sums


def _record_batches(monkeypatch, model, sizes: list[int]):
    real = model.embed
    monkeypatch.setattr(model, "embed", lambda x: sizes.append(len(x)) or real(x))


def test_each_model_infers_in_batches_of_its_own_size(embedders, labelled_set, monkeypatch):
    from onnx_search.embed.sinks import embed_paths

    seen = {"resnet50": [], "mobilenetv2": []}
    for name, m in embedders.items():
        _record_batches(monkeypatch, m, seen[name])
    files = sorted(labelled_set.rglob("*.jpg"))
    got = embed_paths(pipeline.Pipeline(embedders, batch_size={"resnet50": 3, "mobilenetv2": 5}, progress=False), files)
    assert max(seen["resnet50"]) == 3 and max(seen["mobilenetv2"]) == 5
    assert sum(seen["resnet50"]) == sum(seen["mobilenetv2"]) == len(files) == len(got.paths)


def test_a_symlink_to_an_image_in_the_folder_is_reported_as_merged(tmp_path):
    from onnx_search.embed.scan import scan_folder
    from tests.helpers import photo

    (tmp_path / "a").mkdir()
    photo(1).save(tmp_path / "a" / "real.jpg")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "alias.jpg").symlink_to(tmp_path / "a" / "real.jpg")
    scan = scan_folder(tmp_path)
    assert scan.files == [(tmp_path / "a" / "real.jpg").resolve()]
    ((path, reason),) = scan.skipped
    assert path == str(tmp_path / "b" / "alias.jpg")
    assert reason.startswith("merged:") and str(tmp_path / "a" / "real.jpg") in reason
