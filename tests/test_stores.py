"""Integration tests against the real Milvus Lite and a real Redis server."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from onnx_search.errors import CollectionMismatchError, ModelChangedError, StoreUnavailableError
from onnx_search.ids import image_id
from onnx_search.ingest import ingest
from onnx_search.search import search
from onnx_search.store.consistency import check
from onnx_search.store.local_redis import LocalRedis, connect_redis
from onnx_search.store.milvus import connect_milvus
from onnx_search.synth import generate_labelled_set
from tests.helpers import BAD_REASONS, cli_command, make_bad_folder, photo, run_cli


def counts(stores, models):
    return {m: stores.vectors.count(stores.collection(m)) for m in models} | {"catalogue": len(stores.catalog.ids())}


@pytest.fixture
def folder(tmp_path, labelled_set):
    dst = tmp_path / "images"
    shutil.copytree(labelled_set, dst)
    return dst


def test_ingest_twice_adds_nothing(folder, embedders, make_stores):
    stores = make_stores()
    r1 = ingest(folder, embedders, stores, batch_size=5, progress=False)
    assert r1.embedded == {"resnet50": 12, "mobilenetv2": 12}
    assert counts(stores, embedders) == {"resnet50": 12, "mobilenetv2": 12, "catalogue": 12}
    r2 = ingest(folder, embedders, stores, batch_size=5, progress=False)
    assert r2.unchanged == 12 and r2.embedded == {"resnet50": 0, "mobilenetv2": 0}
    assert counts(stores, embedders) == {"resnet50": 12, "mobilenetv2": 12, "catalogue": 12}
    assert check(stores).ok
    rec = stores.catalog.get_images([image_id(folder / "circles" / "circles_000.jpg")])
    (only,) = rec.values()
    assert only.label == "circles" and only.path.endswith("circles_000.jpg") and len(only.sha) == 32


def test_changed_file_is_reembedded_under_the_same_id(folder, embedders, make_stores):
    stores = make_stores()
    ingest(folder, embedders, stores, progress=False)
    target = folder / "stripes" / "stripes_001.jpg"
    i = image_id(target)
    before = stores.fetch("mobilenetv2", [i])[0]
    photo(77, (200, 150)).save(target)
    r = ingest(folder, embedders, stores, progress=False)
    assert r.embedded == {"resnet50": 1, "mobilenetv2": 1} and r.unchanged == 11
    after = stores.fetch("mobilenetv2", [i])[0]
    assert not np.allclose(before, after)
    assert counts(stores, embedders) == {"resnet50": 12, "mobilenetv2": 12, "catalogue": 12}
    assert check(stores).ok


def test_prune_removes_vanished_images_from_both_stores(folder, embedders, make_stores):
    stores = make_stores()
    ingest(folder, embedders, stores, progress=False)
    gone = folder / "checkers" / "checkers_002.jpg"
    gone.unlink()
    r = ingest(folder, embedders, stores, progress=False)  # without --prune it stays
    assert r.pruned == 0 and counts(stores, embedders)["catalogue"] == 12
    r = ingest(folder, embedders, stores, prune=True, progress=False)
    assert r.pruned == 1
    assert counts(stores, embedders) == {"resnet50": 11, "mobilenetv2": 11, "catalogue": 11}
    assert image_id(gone) not in stores.vectors.ids(stores.collection("resnet50"))
    assert check(stores).ok


def test_adding_a_model_embeds_only_that_model(folder, embedders, make_stores):
    stores = make_stores()
    ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, stores, progress=False)
    r = ingest(folder, embedders, stores, progress=False)
    assert r.embedded == {"resnet50": 12, "mobilenetv2": 0}
    assert counts(stores, embedders) == {"resnet50": 12, "mobilenetv2": 12, "catalogue": 12}


def test_bad_files_are_skipped_with_reasons_and_reported(tmp_path, embedders, make_stores):

    root = tmp_path / "bad"
    make_bad_folder(root, huge=False)
    stores = make_stores()
    r = ingest(root, embedders, stores, progress=False, report_dir=tmp_path / "reports")
    skipped = {os.path.basename(p): why for p, why in r.skipped}
    for name, reason in BAD_REASONS.items():
        assert reason in skipped[name]
    assert counts(stores, embedders) == {"resnet50": 9, "mobilenetv2": 9, "catalogue": 9}
    assert "truncated.jpg" in (tmp_path / "reports" / "skipped.json").read_text()
    assert check(stores).ok


def test_search_joins_ids_through_the_catalogue(folder, embedders, make_stores):
    stores = make_stores()
    ingest(folder, embedders, stores, progress=False)
    q = folder / "circles" / "circles_001.jpg"
    hits, failed = search([q, folder / "nope.jpg"], embedders, stores, top_k=4, exclude_self=True)
    assert len(failed) == 1 and "not found" in failed[0][1]
    assert {h.model for h in hits} == {"resnet50", "mobilenetv2"}
    for h in hits:
        assert h.id != image_id(q) and h.path and h.label in ("circles", "stripes", "checkers")
        assert h.cosine == pytest.approx(h.distance)  # COSINE returns the similarity itself
    assert [h.rank for h in hits if h.model == "mobilenetv2"] == [1, 2, 3, 4]


def test_l2_distances_convert_to_the_same_cosine(folder, embedders, make_stores):
    cos_stores, l2_stores = make_stores("COSINE"), make_stores("L2")
    one = {"mobilenetv2": embedders["mobilenetv2"]}
    ingest(folder, one, cos_stores, progress=False)
    ingest(folder, one, l2_stores, progress=False)
    q = [folder / "stripes" / "stripes_000.jpg"]
    a, _ = search(q, one, cos_stores, top_k=5)
    b, _ = search(q, one, l2_stores, top_k=5)
    assert [h.id for h in a] == [h.id for h in b]
    np.testing.assert_allclose([h.cosine for h in a], [h.cosine for h in b], atol=1e-4)
    assert all(h.distance == pytest.approx(2 - 2 * h.cosine, abs=1e-4) for h in b)


def test_check_reports_and_repairs_half_written_state(folder, embedders, make_stores):
    stores = make_stores()
    ingest(folder, embedders, stores, progress=False)
    coll = stores.collection("resnet50")
    victim = image_id(folder / "circles" / "circles_000.jpg")
    stores.vectors.delete(coll, [victim])  # a mark without its vector
    stores.vectors.upsert(coll, [12345], np.ones((1, 2048), np.float32) / np.sqrt(2048))  # a stray vector
    rep = check(stores)
    assert not rep.ok
    assert rep.problems["resnet50"]["mark_without_vector"] == [victim]
    assert rep.problems["resnet50"]["vector_without_mark"] == [12345]
    check(stores, repair=True)
    assert check(stores).ok
    r = ingest(folder, embedders, stores, progress=False)  # the next run refills what repair removed
    assert r.embedded == {"resnet50": 1, "mobilenetv2": 0}
    assert counts(stores, embedders) == {"resnet50": 12, "mobilenetv2": 12, "catalogue": 12}


def test_killed_ingest_resumes_without_duplicates_or_loss(tmp_path, models_dir, redis_url, make_stores):
    root = tmp_path / "many"
    generate_labelled_set(root, per_class=20, classes=("circles", "stripes", "checkers"), size=64, seed=11)
    data = tmp_path / "killdata"
    stores_args = ["--data-dir", data, "--redis-url", redis_url, "--namespace", "kill:test"]
    model_args = ["--model", "mobilenetv2", "--models-dir", models_dir, "--providers", "cpu"]
    cmd = cli_command("ingest", root, *model_args, *stores_args, "--batch-size", 4, "--quiet")
    log = (tmp_path / "killed.log").open("w")  # a file, never a pipe nobody reads
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    catalog_client = connect_redis(redis_url, data)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if 8 <= catalog_client.hlen("kill:test:done:mobilenetv2") < 40:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    done_at_kill = catalog_client.hlen("kill:test:done:mobilenetv2")
    assert 0 < done_at_kill < 60
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{done_at_kill} unchanged" in r.stdout  # only the unfinished part is embedded again
    assert f"embedded {{'mobilenetv2': {60 - done_at_kill}}}" in r.stdout
    c = run_cli("check", *stores_args)
    assert c.returncode == 0 and "Milvus and Redis agree" in c.stdout, c.stdout + c.stderr
    q = str(next(root.rglob("*.jpg")))
    s = run_cli("search", q, "--json", "--top-k", 3, "--exclude-self", *model_args, *stores_args)
    assert s.returncode == 0, s.stderr
    found = json.loads(s.stdout)
    assert [h["rank"] for h in found] == [1, 2, 3] and all(
        h["path"] != q and h["model"] == "mobilenetv2" for h in found
    )
    stores = make_stores(namespace="kill:test", data_dir=data)
    assert counts(stores, ["mobilenetv2"]) == {"mobilenetv2": 60, "catalogue": 60}
    assert check(stores).ok


def test_dimension_mismatch_and_changed_model_are_explained(folder, embedders, make_stores):
    stores = make_stores()
    stores.vectors.ensure(stores.collection("mobilenetv2"), 64, stores.index)
    with pytest.raises(CollectionMismatchError, match="64-d .* 1280-d.*--rebuild"):
        ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, stores, progress=False)
    stores = make_stores()
    ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, stores, progress=False)
    info = stores.catalog.models()["mobilenetv2"] | {"sha256": "0" * 64, "identity": "0" * 64}
    stores.catalog.set_model("mobilenetv2", info)
    with pytest.raises(ModelChangedError, match="changed since"):
        ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, stores, progress=False)
    r = ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, stores, rebuild=True, progress=False)
    assert r.embedded == {"mobilenetv2": 12} and check(stores).ok


def test_stores_that_are_down_fail_fast_naming_them(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="127.0.0.1:1"):
        connect_redis("redis://:secret@127.0.0.1:1/0", tmp_path)
    with pytest.raises(StoreUnavailableError, match="Milvus at 127.0.0.1:1"):
        connect_milvus("http://127.0.0.1:1", tmp_path)
    assert time.monotonic() - t0 < 10
    with pytest.raises(StoreUnavailableError) as e:
        connect_redis("redis://:secret@127.0.0.1:1/0", tmp_path)
    assert "secret" not in str(e.value)


def test_cli_with_a_down_store_exits_before_any_work(tmp_path, models_dir, labelled_set):
    r = run_cli(
        "ingest",
        labelled_set,
        "--model",
        "mobilenetv2",
        "--models-dir",
        models_dir,
        "--data-dir",
        tmp_path,
        "--redis-url",
        "redis://127.0.0.1:1/0",
        "--quiet",
        timeout=60,
    )
    assert r.returncode == 2 and "does not answer" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "milvus").exists()


def test_locked_milvus_lite_folder_is_explained(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from onnx_search.store.milvus import connect_milvus;"
            f"connect_milvus(None, {str(tmp_path)!r}); print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreUnavailableError, match="one process may open"):
            connect_milvus(None, tmp_path)
        r = run_cli("check", "--data-dir", tmp_path, timeout=60)
        assert r.returncode == 2 and "one process may open" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_local_redis_is_reused_and_persists(tmp_path):
    server = LocalRedis(tmp_path)
    a = server.start()
    a.set("k", "v")
    b = LocalRedis(tmp_path).start()
    assert b.connection_pool.connection_kwargs["port"] == a.connection_pool.connection_kwargs["port"]
    r = run_cli("redis-stop", "--data-dir", tmp_path, timeout=30)
    assert r.returncode == 0 and "stopped" in r.stdout
    assert not server.running()
    c = LocalRedis(tmp_path).start()  # a new process, same data directory: the append-only file restores it
    try:
        assert c.get("k") == b"v"
        assert (tmp_path / "redis" / "appendonlydir").is_dir()
        assert c.connection_pool.connection_kwargs["host"] == "127.0.0.1"
    finally:
        LocalRedis(tmp_path).stop()


def test_namespaces_do_not_collide(folder, embedders, make_stores):
    a, b = make_stores(namespace="user1:exp"), make_stores(namespace="user2:exp")
    ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, a, progress=False)
    assert b.catalog.ids() == set() and not b.has_model("mobilenetv2")
    assert len(a.catalog.ids()) == 12


def test_index_variants_measured_against_exact_search(make_stores):
    from onnx_search.experiment.sweep import evaluate_variants, exact_top_k
    from onnx_search.store.index import IndexSpec

    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[:20] + rng.normal(scale=0.05, size=(20, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = list(range(1, 401))
    stores = make_stores()
    variants = [
        IndexSpec(type="FLAT"),
        IndexSpec(type="HNSW", params={"M": 8}, search={"ef": 10}),
        IndexSpec(type="HNSW", params={"M": 8}, search={"ef": 200}),
        IndexSpec(type="IVF_FLAT", search={"nprobe": 1}),
    ]
    rows = evaluate_variants(stores.vectors, ids, base, queries, variants, 10, "sweeptest", repeats=1)
    assert [r["index"] for r in rows] == ["FLAT", "HNSW", "HNSW", "IVF_FLAT"]
    assert rows[0]["recall_at_k"] == pytest.approx(1.0)
    assert rows[2]["recall_at_k"] >= rows[1]["recall_at_k"] and rows[2]["recall_at_k"] > 0.95
    assert rows[3]["params"]["nlist"] == 80  # 4·√400
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    idx, cos = exact_top_k(base, queries, 10)
    assert idx.shape == (20, 10) and np.all(np.diff(cos, axis=1) <= 1e-7)
    assert not [c for c in stores.vectors.collections() if c.startswith("sweeptest")]


def test_searching_a_model_that_was_never_ingested_is_explained(folder, embedders, make_stores):
    stores = make_stores()
    with pytest.raises(CollectionMismatchError, match="ingest with that model first"):
        search([folder / "circles" / "circles_000.jpg"], {"mobilenetv2": embedders["mobilenetv2"]}, stores, top_k=3)


def test_search_honours_batch_size(tmp_path, folder, embedders, make_stores, monkeypatch):
    stores = make_stores()
    ingest(folder, {"mobilenetv2": embedders["mobilenetv2"]}, stores, progress=False)
    outside = tmp_path / "queries"
    outside.mkdir()
    for i in range(5):
        photo(40 + i).save(outside / f"q{i}.jpg")
    sizes = []
    real = embedders["mobilenetv2"].embed
    monkeypatch.setattr(embedders["mobilenetv2"], "embed", lambda x: sizes.append(len(x)) or real(x))
    hits, _ = search(
        sorted(outside.glob("*.jpg")), {"mobilenetv2": embedders["mobilenetv2"]}, stores, 3, batch_size=2, workers=1
    )
    assert sizes == [2, 2, 1] and len(hits) == 15


def test_queries_from_the_collection_reuse_their_stored_vectors(folder, embedders, make_stores, monkeypatch):
    from onnx_search.search import query_vectors

    stores = make_stores()
    ingest(folder, embedders, stores, progress=False)
    paths = sorted(folder.rglob("*.jpg"))[:4]
    fresh = query_vectors(paths, embedders)  # no stores: embedded
    changed = paths[0]
    photo(99).save(changed)  # changed since ingest: must be embedded again, not fetched
    calls = []
    for m in embedders.values():
        real = m.embed
        monkeypatch.setattr(m, "embed", lambda x, real=real: calls.append(len(x)) or real(x))
    got = query_vectors(paths, embedders, stores)
    assert got.paths == paths and got.fetched == 3 and calls == [1, 1]  # one changed image, once per model
    for name in embedders:
        np.testing.assert_allclose(got.vectors[name][1:], fresh.vectors[name][1:], atol=1e-5)
        assert np.abs(got.vectors[name][0] - fresh.vectors[name][0]).max() > 1e-3


def test_a_new_collection_gets_the_index_asked_for_without_a_half_second_poll(tmp_path):
    """pymilvus's synchronous create_index sleeps 0.5 s before its first look at the index state: a run with many
    models, or a sweep of index settings, paid that per collection. Made asynchronously, the index is still the one
    asked for, finished once loaded, and searched by its own settings."""
    from onnx_search.store.index import IndexSpec
    from onnx_search.store.milvus import VectorStore

    client = connect_milvus(None, tmp_path / "data")
    store = VectorStore(client)
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for spec in (IndexSpec(), IndexSpec(type="IVF_FLAT", params={"nlist": 7}), IndexSpec(type="HNSW", metric="L2")):
        name = f"c_{spec.type.lower()}"
        t0 = time.perf_counter()
        store.ensure(name, 8, spec, expected_rows=50)
        assert time.perf_counter() - t0 < 0.4
        store.upsert(name, list(range(1, 51)), vectors)
        store.flush(name)
        index = client.describe_index(name, "vector")
        assert (index["index_type"], index["metric_type"], index["state"]) == (spec.type, spec.metric, "Finished")
        assert store.search(name, vectors[:1], 1, spec)[0][0][0] == 1
    client.close()
