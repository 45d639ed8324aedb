"""The Ray Data engine against a real local Ray cluster (2 worker processes), inside a loopback-only namespace.

Run by `make test-ray` (and `make test` where `unshare -n` is permitted): tests/run_ray_tests.sh.
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from onnx_search.ids import image_id
from onnx_search.store.consistency import check
from onnx_search.synth import generate_labelled_set
from tests.helpers import BAD_REASONS, cli_command, make_bad_folder, run_cli

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    if any(": lo:" not in line for line in out.strip().splitlines()):
        pytest.fail("Ray tests must run in a loopback-only namespace: make test-ray")


def test_ray_engine_ingests_like_the_local_engine_and_survives_a_killed_driver(
    tmp_path, models_dir, redis_url, make_stores
):
    root = tmp_path / "photos"
    generate_labelled_set(root, per_class=12, classes=("circles", "stripes", "checkers"), size=64, seed=5)
    make_bad_folder(root / "bad", huge=False)
    # two geometries: Keras squash-to-224 (mobilenetv2) and torchvision shorter-side-256 + centre crop, NCHW (resnet50)
    model = ["--model", "mobilenetv2", "--model", "torchvision/resnet50", "--models-dir", models_dir]
    model += ["--providers", "cpu", "--batch-size", 4, "--quiet"]
    ray_data, local_data = tmp_path / "ray-data", tmp_path / "local-data"
    ray_stores = ["--data-dir", ray_data, "--redis-url", redis_url, "--namespace", "ray:test"]
    cmd = cli_command("ingest", root, *model, *ray_stores, "--engine", "ray", "--actors", 2)
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    log = (tmp_path / "killed.log").open("w")  # a file, never a pipe: Ray's progress lines would fill an unread one
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    from onnx_search.store.local_redis import connect_redis

    redis = connect_redis(redis_url, tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and redis.hlen("ray:test:done:mobilenetv2") < 8:
        time.sleep(0.05)
    assert proc.poll() is None, "the ray ingest ended early: " + (tmp_path / "killed.log").read_text()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the cluster it started
    proc.wait()
    log.close()
    # an image is unchanged on resume only when every model has its vector: the models' done sets intersected
    done = [set(redis.hkeys(f"ray:test:done:{m}")) for m in ("mobilenetv2", "torchvision/resnet50")]
    done_at_kill = len(done[0] & done[1])
    assert 0 < len(done[0]) < 36 + 9, (tmp_path / "killed.log").read_text()[-2000:]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{done_at_kill} unchanged" in r.stdout
    for name, reason in BAD_REASONS.items():
        assert f"{name}: " in r.stdout and reason in r.stdout.split(f"{name}: ", 1)[1].splitlines()[0]
    c = run_cli("check", *ray_stores)
    assert c.returncode == 0 and "Milvus and Redis agree" in c.stdout, c.stdout + c.stderr
    local = run_cli(
        "ingest", root, *model, "--data-dir", local_data, "--redis-url", redis_url, "--namespace", "ray:local"
    )
    assert local.returncode == 0, local.stderr
    a, b = make_stores(namespace="ray:test", data_dir=ray_data), make_stores(namespace="ray:local", data_dir=local_data)
    ids = sorted(a.catalog.ids())
    assert ids == sorted(b.catalog.ids()) and len(ids) == 36 + 9  # 36 generated + 9 readable odd files
    assert check(a).ok  # no duplicates
    report = json.loads((ray_data / "reports" / "ingest.json").read_text())
    for name in (
        "mobilenetv2",
        "torchvision/resnet50",
    ):  # each model's own rows of the Ray engine, against the local one
        assert a.count(name) == len(ids)
        diff = np.abs(a.fetch(name, ids) - b.fetch(name, ids)).max()
        assert diff <= 1e-6, (name, diff)
        assert report["providers"][name] == ["CPUExecutionProvider"]
    tv, keras = a.fetch("torchvision/resnet50", ids), a.fetch("mobilenetv2", ids)
    assert tv.shape == (len(ids), 2048) and keras.shape == (len(ids), 1280)
    assert image_id(sorted(root.rglob("circles_000.jpg"))[0].resolve()) in ids
