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
    model = ["--model", "mobilenetv2", "--models-dir", models_dir, "--providers", "cpu", "--quiet"]
    r = run_cli(
        "ingest", folder, *model, *stores, "--metric", "IP", "--index", "HNSW", "--index-params", '{"params": {"M": 8}}'
    )
    assert r.returncode == 0, r.stderr
    redis = connect_redis(redis_url, tmp_path)
    info = __import__("json").loads(redis.hget(f"{ns}:models", "mobilenetv2"))
    assert info["metric"] == "IP" and info["index"]["index_type"] == "HNSW"
    s = run_cli("search", folder / "circles" / "circles_000.jpg", "--top-k", 2, *model, *stores, "--metric", "IP")
    assert s.returncode == 0 and "(IP)" in s.stdout and "cos +1.0000" in s.stdout  # the image itself, by IP

    (folder / "circles" / "circles_003.jpg").unlink()
    r = run_cli("ingest", folder, *model, *stores, "--metric", "IP", "--prune")
    assert r.returncode == 0 and "pruned 1" in r.stdout and "11 unchanged" in r.stdout, r.stdout + r.stderr
    r = run_cli("ingest", folder, *model, *stores, "--metric", "IP", "--rebuild")
    assert r.returncode == 0 and "embedded {'mobilenetv2': 11}" in r.stdout, r.stdout + r.stderr

    victim = next(iter(redis.hkeys(f"{ns}:done:mobilenetv2")))
    redis.hdel(f"{ns}:done:mobilenetv2", victim)  # a vector whose done mark a crash lost
    c = run_cli("check", *stores)
    assert c.returncode == 1 and "DIFFERENCE mobilenetv2: vector_without_mark: 1 ids" in c.stdout, c.stdout + c.stderr
    c = run_cli("check", *stores, "--repair")
    assert c.returncode == 0 and "-> repaired" in c.stdout
    c = run_cli("check", *stores)
    assert c.returncode == 0 and "Milvus and Redis agree" in c.stdout


def test_bad_index_params_on_the_command_line_are_one_line_errors(tmp_path, labelled_set, redis_url):
    r = run_cli("check", "--data-dir", tmp_path, "--redis-url", redis_url, "--index", "HNSW", "--index-params", "{nope")
    assert r.returncode == 2 and "--index-params is not a JSON object" in r.stderr and "Traceback" not in r.stderr


def test_strict_provider_flag(tmp_path, labelled_set, models_dir, redis_url):
    args = ["--model", "mobilenetv2", "--models-dir", models_dir, "--providers", "cuda", "--strict", "--quiet"]
    r = run_cli("embed", labelled_set, "--output", tmp_path / "o", *args)
    if cuda_really_runs(models_dir / "mobilenetv2.onnx"):
        assert r.returncode == 0 and "CUDAExecutionProvider" in r.stdout
    else:
        assert r.returncode == 2 and "strict" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "o" / "mobilenetv2.npy").exists()


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


def test_a_reader_closing_stdout_early_ends_any_command_quietly(tmp_path):
    """``onnx-search judgments agreement | head -1`` (and ``--help | head -1``): no BrokenPipe traceback, no
    "Exception ignored" at exit; status 1, as the Python docs advise. Read in full, the same command works."""
    import os
    import subprocess

    from onnx_search.experiment.qrels import JudgmentStore, judgments_path
    from tests.evidence_runs import make_run
    from tests.helpers import cli_command

    store = JudgmentStore(judgments_path(tmp_path / "data", "x"))
    store.add_many([(str(q), str(1000 + q), q % 2) for q in range(1, 300)], "alice")
    store.add_many([(str(q), str(1000 + q), 1 - q % 2) for q in range(1, 300)], "bob")
    agreement = ["judgments", "agreement", "-e", "x", "--data-dir", tmp_path / "data", "--show", 300]
    full = run_cli(*agreement)
    assert full.returncode == 0 and "alice vs bob: kappa" in full.stdout and len(full.stdout) > 10_000, full.stderr
    JudgmentStore(judgments_path(tmp_path / "small", "x")).judge("1", "2", 1, judge="alice")
    short = ["judgments", "agreement", "-e", "x", "--data-dir", tmp_path / "small"]  # a few lines: fails at the flush
    run = make_run(tmp_path, "r")  # a saved run: `compare RUN` prints its summary
    cases = ((agreement, {1}), (short, {1}), (["compare", run], {1}), (["--help"], {0, 1}))  # argparse drops --help's
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell runs it
    unbuffered = buffered | {"PYTHONUNBUFFERED": "1"}  # each print fails at once, inside the command
    for (argv, status), env in [*((c, buffered) for c in cases), *((c, unbuffered) for c in cases[1:3])]:
        p = subprocess.Popen(cli_command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        p.stdout.close()  # the reader goes away before the command writes a byte (it is still importing)
        err = p.stderr.read()
        assert p.wait(timeout=120) in status and err == "", (argv, env.get("PYTHONUNBUFFERED"), err)


def test_report_output_into_a_folder_not_made_yet(tmp_path):
    from tests.evidence_runs import make_run

    run = make_run(tmp_path, "r")
    out = tmp_path / "new" / "deeper" / "x.html"
    r = run_cli("report", run, "--output", out)
    assert r.returncode == 0 and f"wrote {out}" in r.stdout, r.stderr
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
