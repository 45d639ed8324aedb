"""`make bench` code paths in a small mode (ResNet50, batches 1 and 2, a few images): every stage writes its JSON,
and what a stage derives from its own measurements is checked against them (ratios, recall of exact search)."""

import json

import pytest

from onnx_search.bench.__main__ import main as bench_main
from onnx_search.models.recipe import read_metadata_file


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench(models_dir, tmp_path_factory):
    """One small run of every stage; the models folder is a private one (variants are written beside parents)."""
    work = tmp_path_factory.mktemp("bench")
    models = work / "models"
    models.mkdir()
    (models / "resnet50.onnx").symlink_to(models_dir / "resnet50.onnx")
    out = work / "out"
    args = ["--models-dir", models, "--out", out, "--models", "resnet50", "--reps", "1", "--batches", "1,2"]
    args += ["--photos", "4", "--variants", "fp32,optimized", "--store-images", "30", "--store-queries", "6"]
    args += ["--scale-sizes", "30,100", "--rss-sizes", "20,60", "--rss-models", "1"]
    assert bench_main([str(a) for a in args]) == 0
    return {"out": out, "models": models}


def test_embed_ratios_are_those_of_the_measured_rates(bench):
    embed = json.loads((bench["out"] / "embed.json").read_text())
    v = embed["resnet50"]
    assert set(v["ratio_by_batch"]) == {"1", "2"} and embed["batch_sizes"] == [1, 2]
    for b, ratio in v["ratio_by_batch"].items():  # ORT over Keras, as the method says, not the other way round
        assert ratio == pytest.approx(v["img_per_s"]["ort"][b] / v["img_per_s"]["keras"][b], rel=0.02)
    assert v["ort_over_keras"] == v["ratio_by_batch"]["2"]  # the figure quoted is the largest batch's
    e2e = v["end_to_end"]
    assert e2e["photos"] == 4 and e2e["batch_size"] == 2
    assert v["end_to_end_fraction"] == pytest.approx(v["end_to_end_img_per_s"] / v["model_only_img_per_s"], rel=0.02)
    assert v["providers"][-1] == "CPUExecutionProvider" and embed["versions"]["onnxruntime"]


def test_matrix_cells_and_speedup_come_from_the_variant_file(bench):
    matrix = json.loads((bench["out"] / "matrix.json").read_text())
    fp32, opt = matrix["resnet50"]["fp32"], matrix["resnet50"]["optimized"]
    assert set(opt["img_per_s"]["CPUExecutionProvider"]) == {"1", "2"} and fp32["speedup_over_fp32"] == 1.0
    rates = opt["img_per_s"]["CPUExecutionProvider"]["2"] / fp32["img_per_s"]["CPUExecutionProvider"]["2"]
    assert opt["speedup_over_fp32"] == pytest.approx(rates, rel=0.02)  # one pass: the median is that pass's ratio
    meta = read_metadata_file(bench["models"] / "resnet50.optimized.onnx")
    assert meta["variant"] == "optimized" and meta["parent"]["name"] == "resnet50"
    assert _png(bench["out"] / "matrix.png")


def test_scale_exact_search_has_full_recall_at_every_size(bench):
    scale = json.loads((bench["out"] / "scale.json").read_text())
    assert set(scale["stores"]) == {"30", "100"} and scale["stores"]["30"]["vectors"] == "real"
    assert scale["stores"]["100"]["vectors"] == "random" and scale["dim"] == 2048
    for n in ("30", "100"):
        rows = {r["index"]: r for r in scale["stores"][n]["indexes"]}
        assert set(rows) == {"FLAT", "IVF_FLAT", "HNSW"} and all(r["rows"] == int(n) for r in rows.values())
        assert rows["FLAT"]["recall_at_k"] == 1.0  # FLAT against numpy's exact top-k
        assert all(0 < r["recall_at_k"] <= 1 for r in rows.values())
        assert scale["catalogue_bytes_per_image"][n] > 50  # the records really reached Redis
    rss = scale["ingest_peak_rss_mb"]
    assert set(rss) == {"20", "60"} and min(rss.values()) > 100  # a process with onnxruntime and the stores
    assert scale["ingest_rss_growth"] == pytest.approx(rss["60"] / rss["20"], rel=1e-2)
    assert _png(bench["out"] / "scale.png")


def test_store_rows_queries_and_the_recall_latency_frontier(bench):
    store = json.loads((bench["out"] / "store.json").read_text())
    assert store["rows"] == 36 - 6 and store["queries"] == 6 and store["dim"] == 2048  # 6 classes x 6 images
    rows = store["index"]
    assert {r["index"] for r in rows} == {"FLAT", "IVF_FLAT", "HNSW"}
    assert next(r for r in rows if r["index"] == "FLAT")["recall_at_k"] == 1.0
    assert all(0 < r["recall_at_k"] <= 1 for r in rows)
    for f in store["frontier"]:  # no measured setting is both faster and at least as good as a frontier point
        assert not any(r["p50_ms"] < f["p50_ms"] and r["recall_at_k"] >= f["recall_at_k"] for r in rows), f
    assert store["milvus_lite_upsert_rows_per_s"] > 0 and store["redis_catalogue_rows_per_s"] > 0


def test_run_peak_rss_is_measured_in_a_fresh_process(bench):
    rss = json.loads((bench["out"] / "run_rss.json").read_text())
    assert rss["models"] == {"1": ["resnet50.onnx"]} and rss["peak_rss_mb"]["1"] > 100
