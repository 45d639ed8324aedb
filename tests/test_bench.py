"""`make bench` code paths in a small mode (MobileNetV2, batches 1 and 2, a few images): every stage writes its JSON,
and what a stage derives from its own measurements is checked against them (ratios, recall of exact search)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from onnx_search.models.recipe import read_metadata_file


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench(models_dir, tmp_path_factory):
    """One small run of every stage; the models folder is a private one (variants are written beside parents)."""
    work = tmp_path_factory.mktemp("bench")
    models = work / "models"
    models.mkdir()
    (models / "mobilenetv2.onnx").symlink_to(models_dir / "mobilenetv2.onnx")
    out = work / "out"
    args = ["--models-dir", models, "--out", out, "--models", "mobilenetv2", "--reps", "1", "--batches", "1,2"]
    args += ["--photos", "4", "--variants", "fp32,optimized", "--store-images", "30", "--store-queries", "6"]
    args += ["--scale-sizes", "30,100", "--rss-sizes", "20,60", "--rss-models", "1"]
    args += ["--embed-models", "mobilenetv2", "--embed-sets", "640x480:4,1600x1200:2"]
    args += ["--scale-model", "mobilenetv2", "--scale-real", "40"]
    # `python -m onnx_search.bench`, as `make bench` runs it: its Keras stage loads TensorFlow there, not here
    cmd = [sys.executable, "-m", "onnx_search.bench", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"out": out, "models": models}


def test_keras_ratios_are_those_of_the_measured_rates(bench):
    keras = json.loads((bench["out"] / "keras.json").read_text())
    v = keras["mobilenetv2"]
    assert set(v["ratio_by_batch"]) == {"1", "2"} and keras["batch_sizes"] == [1, 2]
    for b, ratio in v["ratio_by_batch"].items():  # ORT over Keras, as the method says, not the other way round
        assert ratio == pytest.approx(v["img_per_s"]["ort"][b] / v["img_per_s"]["keras"][b], rel=0.02)
    assert v["ort_over_keras"] == v["ratio_by_batch"]["2"]  # the figure quoted is the largest batch's
    assert v["providers"][-1] == "CPUExecutionProvider" and keras["versions"]["onnxruntime"]


def test_embed_fraction_is_of_the_shared_bound_of_its_own_passes(bench):
    embed = json.loads((bench["out"] / "embed.json").read_text())
    for label, n in (("640x480", 4), ("1600x1200", 2)):
        v = embed["mobilenetv2"][label]
        assert v["images"] == n and v["dct_scale"] == ("1/2" if n == 4 else "1/4")  # 480 // 224 = 2, 1200 // 224 = 5
        raw = v["raw_img_per_s"]
        fractions = [
            e / (1 / (1 / m + 1 / d)) for m, d, e in zip(raw["model"], raw["decode"], raw["end_to_end"], strict=True)
        ]
        assert v["raw_fractions"] == pytest.approx(fractions, rel=0.01)
        assert v["fraction_of_shared_bound"] == pytest.approx(float(np.median(fractions)), rel=0.01)
        bound = 1 / (1 / v["R_model_img_per_s"] + 1 / v["R_decode_img_per_s"])
        assert v["shared_bound_img_per_s"] == pytest.approx(bound, rel=0.01)
        prof = v["profile_core_ms_per_image"]
        for when in ("before", "after"):  # the total is the sum of the decode side's stages
            parts = sum(prof[when][k] for k in ("read", "hash", "decode", "resize", "normalise"))
            assert prof[when]["decode_side_total"] == pytest.approx(parts, abs=0.01)
        assert v["decode_core_ms_per_image"] == {k: prof[k]["decode_side_total"] for k in ("before", "after")}


def test_matrix_cells_and_speedup_come_from_the_variant_file(bench):
    matrix = json.loads((bench["out"] / "matrix.json").read_text())
    fp32, opt = matrix["mobilenetv2"]["fp32"], matrix["mobilenetv2"]["optimized"]
    assert set(opt["img_per_s"]["CPUExecutionProvider"]) == {"1", "2"} and fp32["speedup_over_fp32"] == 1.0
    rates = opt["img_per_s"]["CPUExecutionProvider"]["2"] / fp32["img_per_s"]["CPUExecutionProvider"]["2"]
    assert opt["speedup_over_fp32"] == pytest.approx(rates, rel=0.02)  # one pass: the median is that pass's ratio
    meta = read_metadata_file(bench["models"] / "mobilenetv2.optimized.onnx")
    assert meta["variant"] == "optimized" and meta["parent"]["name"] == "mobilenetv2"
    assert _png(bench["out"] / "matrix.png")


def test_scale_exact_search_has_full_recall_at_every_size(bench):
    scale = json.loads((bench["out"] / "scale.json").read_text())
    assert set(scale["stores"]) == {"30", "100"} and scale["dim"] == 1280
    assert scale["real_vectors"]["images"] == 40 and scale["real_vectors"]["queries_held_out"] == 8
    assert scale["stores"]["30"]["vectors"] == "real" and scale["stores"]["100"]["real_rows"] == 32  # 40 - 8 queries
    for n in ("30", "100"):
        rows = scale["stores"][n]["indexes"]
        assert {r["index"] for r in rows} == {"FLAT", "IVF_FLAT", "HNSW"} and all(r["rows"] == int(n) for r in rows)
        assert next(r for r in rows if r["index"] == "FLAT")["recall_at_k"] == 1.0  # FLAT against numpy's top-k
        assert all(0 < r["recall_at_k"] <= 1 for r in rows)
        for kind, best in scale["stores"][n]["best"].items():  # the fastest setting that reaches the target recall
            mine = [r for r in rows if r["index"] == kind]
            ok = [r for r in mine if r["recall_at_k"] >= scale["target_recall"]]
            if ok:
                assert best["p50_ms"] == min(r["p50_ms"] for r in ok) and best["reaches_target"]
            assert best["yaml"].startswith(f"index: {{type: {kind}, params: ")
        assert scale["catalogue_bytes_per_image"][n] > 50  # the records really reached Redis
    rss = scale["ingest_peak_rss_mb"]
    assert set(rss) == {"20", "60"} and min(rss.values()) > 100  # a process with onnxruntime and the stores
    assert scale["ingest_rss_growth"] == pytest.approx(rss["60"] / rss["20"], rel=1e-2)
    assert _png(bench["out"] / "scale.png")


def test_store_rows_queries_and_the_recall_latency_frontier(bench):
    store = json.loads((bench["out"] / "store.json").read_text())
    assert store["rows"] == 36 - 6 and store["queries"] == 6 and store["dim"] == 1280  # 6 classes x 6 images
    rows = store["index"]
    assert {r["index"] for r in rows} == {"FLAT", "IVF_FLAT", "HNSW"}
    assert next(r for r in rows if r["index"] == "FLAT")["recall_at_k"] == 1.0
    assert all(0 < r["recall_at_k"] <= 1 for r in rows)
    for f in store["frontier"]:  # no measured setting is both faster and at least as good as a frontier point
        assert not any(r["p50_ms"] < f["p50_ms"] and r["recall_at_k"] >= f["recall_at_k"] for r in rows), f
    assert store["milvus_lite_upsert_rows_per_s"] > 0 and store["redis_catalogue_rows_per_s"] > 0


def test_run_peak_rss_is_measured_in_a_fresh_process(bench):
    rss = json.loads((bench["out"] / "run_rss.json").read_text())
    assert rss["models"] == {"1": ["mobilenetv2.onnx"]} and rss["peak_rss_mb"]["1"] > 100
