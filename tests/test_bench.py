"""`make bench` code paths with tiny settings: the JSON has its keys and every figure is positive."""

import json

from onnx_search.bench.__main__ import main as bench_main


def _positive(d: dict, keys) -> None:
    for k in keys:
        assert d[k] > 0, (k, d[k])


def test_bench_embed_and_store_smoke_run(models_dir, tmp_path):
    out = tmp_path / "bench"
    args = ["--models-dir", str(models_dir), "--out", str(out), "--models", "vgg16", "--reps", "1"]
    args += ["--store-images", "60", "--store-queries", "10", "--photos", "8", "--variants", "fp32,int8"]
    args += ["--scale-sizes", "60,200", "--rss-sizes", "30,90"]
    assert bench_main(args) == 0
    embed = json.loads((out / "embed.json").read_text())
    v = embed["vgg16"]
    assert set(v["ratio_by_batch"]) == {"1", "8", "32"} and all(r > 0 for r in v["ratio_by_batch"].values())
    _positive(v, ["ort_over_keras", "end_to_end_img_per_s", "model_only_img_per_s", "end_to_end_fraction"])
    assert v["providers"][-1] == "CPUExecutionProvider" and embed["versions"]["onnxruntime"]
    matrix = json.loads((out / "matrix.json").read_text())
    cell = matrix["vgg16"]["int8"]
    assert cell["speedup_over_fp32"] > 0 and matrix["vgg16"]["fp32"]["speedup_over_fp32"] == 1.0
    assert set(cell["img_per_s"]["CPUExecutionProvider"]) == {"1", "8", "32"} and (out / "matrix.png").is_file()
    scale = json.loads((out / "scale.json").read_text())
    assert set(scale["stores"]) == {"60", "200"} and scale["stores"]["60"]["vectors"] == "real"
    for n in ("60", "200"):
        rows = {r["index"]: r for r in scale["stores"][n]["indexes"]}
        assert set(rows) == {"FLAT", "IVF_FLAT", "HNSW"} and rows["FLAT"]["recall_at_k"] == 1.0
        assert all(r["insert_rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in rows.values())
        assert scale["catalogue_bytes_per_image"][n] > 50
    assert set(scale["ingest_peak_rss_mb"]) == {"30", "90"} and scale["ingest_rss_growth"] > 0
    assert (out / "scale.png").is_file()
    store = json.loads((out / "store.json").read_text())
    _positive(store, ["embed_img_per_s", "milvus_lite_upsert_rows_per_s", "redis_catalogue_rows_per_s"])
    assert store["rows"] >= 60 and store["queries"] == 10 and store["dim"] == 2048
    assert {r["index"] for r in store["index"]} == {"FLAT", "IVF_FLAT", "HNSW"}
    assert all(0 < r["recall_at_k"] <= 1 and r["p50_ms"] > 0 for r in store["index"])
    assert store["frontier"] and store["frontier"][0]["p50_ms"] <= store["frontier"][-1]["p50_ms"]
