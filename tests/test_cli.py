"""Command-line flags as a user types them, against the real stores."""

import shutil

import numpy as np

from onnx_search.store.local_redis import LocalRedis, connect_redis
from tests.helpers import cuda_really_runs, foreign_model, photo, run_cli, stop_local_redis_servers


def test_store_flags_metric_prune_rebuild_and_check_repair(tmp_path, labelled_set, models_dir, redis_url):
    folder = tmp_path / "images"
    shutil.copytree(labelled_set, folder)
    ns = "cli:flags"
    stores = ["--data-dir", tmp_path / "data", "--redis-url", redis_url, "--namespace", ns]
    model = ["--model", "vgg16", "--models-dir", models_dir, "--providers", "cpu", "--quiet"]
    r = run_cli(
        "ingest", folder, *model, *stores, "--metric", "IP", "--index", "HNSW", "--index-params", '{"params": {"M": 8}}'
    )
    assert r.returncode == 0, r.stderr
    redis = connect_redis(redis_url, tmp_path)
    info = __import__("json").loads(redis.hget(f"{ns}:models", "vgg16"))
    assert info["metric"] == "IP" and info["index"]["index_type"] == "HNSW"
    s = run_cli("search", folder / "circles" / "circles_000.jpg", "--top-k", 2, *model, *stores, "--metric", "IP")
    assert s.returncode == 0 and "(IP)" in s.stdout and "cos +1.0000" in s.stdout  # the image itself, by IP

    (folder / "circles" / "circles_003.jpg").unlink()
    r = run_cli("ingest", folder, *model, *stores, "--metric", "IP", "--prune")
    assert r.returncode == 0 and "pruned 1" in r.stdout and "11 unchanged" in r.stdout, r.stdout + r.stderr
    r = run_cli("ingest", folder, *model, *stores, "--metric", "IP", "--rebuild")
    assert r.returncode == 0 and "embedded {'vgg16': 11}" in r.stdout, r.stdout + r.stderr

    victim = next(iter(redis.hkeys(f"{ns}:done:vgg16")))
    redis.hdel(f"{ns}:done:vgg16", victim)  # a vector whose done mark a crash lost
    c = run_cli("check", *stores)
    assert c.returncode == 1 and "DIFFERENCE vgg16: vector_without_mark: 1 ids" in c.stdout, c.stdout + c.stderr
    c = run_cli("check", *stores, "--repair")
    assert c.returncode == 0 and "-> repaired" in c.stdout
    c = run_cli("check", *stores)
    assert c.returncode == 0 and "Milvus and Redis agree" in c.stdout


def test_bad_index_params_on_the_command_line_are_one_line_errors(tmp_path, labelled_set, redis_url):
    r = run_cli("check", "--data-dir", tmp_path, "--redis-url", redis_url, "--index", "HNSW", "--index-params", "{nope")
    assert r.returncode == 2 and "--index-params is not a JSON object" in r.stderr and "Traceback" not in r.stderr


def test_strict_provider_flag(tmp_path, labelled_set, models_dir, redis_url):
    args = ["--model", "vgg16", "--models-dir", models_dir, "--providers", "cuda", "--strict", "--quiet"]
    r = run_cli("embed", labelled_set, "--output", tmp_path / "o", *args)
    if cuda_really_runs(models_dir / "vgg16.onnx"):
        assert r.returncode == 0 and "CUDAExecutionProvider" in r.stdout
    else:
        assert r.returncode == 2 and "strict" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "o" / "vgg16.npy").exists()


def test_annotate_without_like_uses_resnet50_and_says_so(tmp_path):
    path = foreign_model(tmp_path / "mine.onnx")
    r = run_cli("convert", "--annotate", path)
    assert r.returncode == 0 and "with the recipe of resnet50" in r.stdout and "None" not in r.stdout.split(":")[0]
    vecs_dir = tmp_path / "imgs"
    vecs_dir.mkdir()
    photo(3).save(vecs_dir / "a.jpg")
    e = run_cli("embed", vecs_dir, "--model", path, "--output", tmp_path / "o2", "--providers", "cpu", "--quiet")
    assert e.returncode == 0 and np.load(tmp_path / "o2" / "mine.npy").shape == (1, 3)


def test_servers_started_by_cli_runs_are_stopped_by_the_cleanup(tmp_path):
    r = run_cli("check", "--data-dir", tmp_path / "d", timeout=120)  # no --redis-url: starts the project's own
    assert r.returncode == 0, r.stderr
    assert not LocalRedis(tmp_path / "d").running()  # ... and stops it as it ends
    r = run_cli("check", "--data-dir", tmp_path / "d", "--keep-redis", timeout=120)
    assert r.returncode == 0, r.stderr
    assert LocalRedis(tmp_path / "d").running()  # kept, as asked: the cleanup stops it
    assert stop_local_redis_servers(tmp_path) == [tmp_path / "d" / "redis"]
    assert not LocalRedis(tmp_path / "d").running()
