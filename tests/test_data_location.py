"""One place names the data: every command finds an experiment's stores from its file or run folder, lists the
namespaces when used bare, and the embedded Redis ends with the process that started it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from onnx_search.store.local_redis import LocalRedis
from tests.helpers import cli_command

REPO = Path(__file__).resolve().parents[1]


def redis_servers_under(root: Path) -> list[int]:
    """Pids of live (not zombie) redis-server processes whose working folder (their ``dir``) lies under ``root``:
    a /proc scan, blind to the servers other test sessions run."""
    root = root.resolve()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if b"redis-server" not in (d / "cmdline").read_bytes():
                continue
            stat = (d / "stat").read_text()
            cwd = Path(d / "cwd").resolve()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z" and (cwd == root or root in cwd.parents):
            out.append(int(d.name))
    return out


def cli(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd)


@dataclass
class Tiny:
    base: Path
    config: Path
    run_dir: Path
    data_dir: Path
    images: list[Path]
    run_port: int


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Tiny:
    """Two tiny models, six images and one complete `onnx-search run` on the embedded stores (no --redis-url)."""
    from onnx_search.models.tiny import write_pixel_mean_model
    from onnx_search.synth import generate_labelled_set
    from tests.serve_fixture import quadrant_model

    base = tmp_path_factory.mktemp("located")
    mdir = base / "models"
    mdir.mkdir()
    write_pixel_mean_model(mdir / "mean.onnx", like="resnet50")
    quadrant_model(mdir / "quad.onnx")
    images = generate_labelled_set(base / "images", per_class=3, classes=("circles", "stripes"), size=64, seed=5)
    data_dir = base / "data" / "tiny"  # where a relative default would put it, written absolute for `serve`
    cfg = base / "tiny.yaml"
    cfg.write_text(
        f"experiment: tiny\noutput: {base / 'runs'}\ndata_dir: {data_dir}\nmodels_dir: {mdir}\ntop_k: 3\n"
        f"dataset: {{root: {base / 'images'}}}\n"
        f"models:\n  - {{name: {mdir / 'mean.onnx'}, providers: [cpu]}}\n"
        f"  - {{name: {mdir / 'quad.onnx'}, providers: [cpu]}}\n"
        "queries: {sample: 4}\ncost: null\n"
    )
    r = cli("run", cfg, "--quiet", cwd=base, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    port = json.loads((data_dir / "redis" / "state.json").read_text())["port"]
    return Tiny(base, cfg, base / "runs" / "tiny", data_dir, images, port)


def _port(t: Tiny) -> int:
    return json.loads((t.data_dir / "redis" / "state.json").read_text())["port"]


def test_no_redis_server_started_by_run_ingest_embed_or_check_outlives_it(tiny):
    assert redis_servers_under(tiny.base) == []  # `run` (the fixture) stopped the server it started
    r = cli("ingest", "-e", tiny.config, "--quiet", "--providers", "cpu", cwd=tiny.base)
    assert r.returncode == 0 and "6 unchanged" in r.stdout, r.stdout + r.stderr  # the data survived the stop
    assert redis_servers_under(tiny.base) == [] and _port(tiny) != tiny.run_port  # a server of its own, gone
    r = cli("embed", tiny.base / "images", "--model", tiny.base / "models" / "mean.onnx", "--output",
            tiny.base / "vectors", "--providers", "cpu", "--quiet", cwd=tiny.base)  # fmt: skip
    assert r.returncode == 0 and (tiny.base / "vectors" / "mean.npy").is_file(), r.stderr
    assert redis_servers_under(tiny.base) == []
    r = cli("check", "-e", tiny.config, cwd=tiny.base)
    assert r.returncode == 0 and "mean: catalogue 6, done 6, vectors 6" in r.stdout, r.stdout + r.stderr
    assert redis_servers_under(tiny.base) == []

    # asked to keep it: it stays, and a command that merely reuses it leaves it too, until redis-stop
    r = cli("check", "-e", tiny.config, "--keep-redis", cwd=tiny.base)
    assert r.returncode == 0 and len(kept := redis_servers_under(tiny.base)) == 1, r.stderr
    r = cli("check", "-e", tiny.run_dir, cwd=tiny.base)
    assert r.returncode == 0 and redis_servers_under(tiny.base) == kept, r.stderr
    r = cli("redis-stop", "-e", tiny.config, cwd=tiny.base)
    assert r.returncode == 0 and "stopped" in r.stdout and redis_servers_under(tiny.base) == []


def test_check_search_and_serve_given_the_experiment_file_see_the_runs_data(tiny, tmp_path):
    from tests.serve_fixture import start_server

    other = tmp_path / "elsewhere"
    other.mkdir()
    for where, cwd in ((tiny.config, tiny.base), (tiny.run_dir, other)):  # the file, and the run folder elsewhere
        r = cli("check", "--experiment", where, cwd=cwd)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "mean: catalogue 6, done 6, vectors 6" in r.stdout and "quad: catalogue 6" in r.stdout
    query = tiny.images[0]
    r = cli("search", query, "-e", tiny.config, "--top-k", 2, "--json", "--providers", "cpu", cwd=other)
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert {h["model"] for h in hits} == {"mean", "quad"} and len(hits) == 4
    assert all(h["path"] == str(query.resolve()) for h in hits if h["rank"] == 1)
    r = cli("check", "-e", tiny.config, "--data-dir", tiny.data_dir, cwd=tiny.base)
    assert r.returncode == 2 and "drop --data-dir" in r.stderr

    # bare: the experiments' stores below ./data, then the namespaces in the data folder, each with its run
    r = cli("check", cwd=tiny.base)
    assert r.returncode == 2 and "Milvus and Redis agree" not in r.stdout, r.stdout
    assert "experiments' stores lie below it" in r.stderr and "data/tiny" in r.stderr
    assert f"experiment tiny: {tiny.base / 'runs' / 'tiny'}" in r.stderr or "runs/tiny" in r.stderr, r.stderr
    r = cli("search", query, "--data-dir", tiny.data_dir, "--providers", "cpu", cwd=tiny.base)
    assert r.returncode == 2 and "holds nothing" in r.stderr and ":tiny" in r.stderr, r.stderr
    assert str(tiny.config) in r.stderr and redis_servers_under(tiny.base) == []

    server = start_server(tiny.config)  # the experiment file as serve's positional
    try:
        health = server.json("/api/health")[1]
        assert sorted(health["models"]) == ["mean", "quad"] and health["runs"] == 1, health
        assert server.json("/api/gallery?limit=10")[1]["total"] == 6
        owned = redis_servers_under(tiny.base)
        assert len(owned) == 1  # serve's own server, kept while it serves
        r = cli("check", "-e", tiny.config, cwd=tiny.base)  # reuses serve's Redis (Milvus Lite is serve's)
        assert r.returncode == 2 and "one process may open" in r.stderr, r.stdout + r.stderr
        assert redis_servers_under(tiny.base) == owned and server.json("/api/health")[0] == 200
    finally:
        rc = server.stop()
    assert rc == 0 and redis_servers_under(tiny.base) == []  # it ends with serve


def test_judgments_take_the_experiment_file_or_run_folder(tiny, capsys):
    from onnx_search.cli import main
    from onnx_search.experiment.qrels import judgments_path, write_qrels

    a, b = (str(p) for p in ("1", "2"))
    write_qrels(judgments_path(tiny.data_dir, "tiny"), {a: {b: 1}})
    out = tiny.base / "exported.qrels"
    assert main(["judgments", "export", str(out), "-e", str(tiny.run_dir)]) == 0
    assert out.read_text().split() == ["1", "0", "2", "1"]
    assert main(["judgments", "export", str(out), "-e", str(tiny.config), "--data-dir", "x"]) == 2
    assert main(["judgments", "export", str(out), "-e", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "drop --data-dir" in err and "give its --data-dir too" in err


def test_embed_refuses_two_models_with_one_name(tmp_path, capsys):
    from onnx_search.cli import main
    from onnx_search.models.tiny import write_pixel_mean_model
    from onnx_search.synth import generate_labelled_set

    one, two = tmp_path / "a" / "mean.onnx", tmp_path / "b" / "mean.onnx"
    for p in (one, two):
        p.parent.mkdir()
        write_pixel_mean_model(p, like="resnet50")
    generate_labelled_set(tmp_path / "img", per_class=1, classes=("circles",), size=32)
    args = ["embed", str(tmp_path / "img"), "--output", str(tmp_path / "o"), "--providers", "cpu", "--quiet"]
    assert main([*args, "--model", str(one), "--model", str(two)]) == 2
    err = capsys.readouterr().err
    assert str(one) in err and str(two) in err and "both model mean" in err
    assert not (tmp_path / "o" / "mean.npy").exists()
    assert main([*args, "--model", str(one), "--model", str(one)]) == 0  # the same file twice is one model
    assert (tmp_path / "o" / "mean.npy").is_file()


def test_search_takes_the_file_the_catalogue_recorded_among_several_int8_files(tmp_path, redis_url, labelled_set):
    import onnx

    from onnx_search.models.recipe import METADATA_KEY, write_metadata
    from onnx_search.models.tiny import write_pixel_mean_model

    models = tmp_path / "models"
    models.mkdir()
    first = write_pixel_mean_model(models / "resnet50.int8.aaaa.onnx", like="resnet50")
    meta = json.loads({p.key: p.value for p in onnx.load(str(first)).metadata_props}[METADATA_KEY])
    write_metadata(first, meta | {"name": "resnet50.int8"})  # as a variant named by its calibration inputs
    stores = ["--data-dir", tmp_path / "data", "--redis-url", redis_url, "--namespace", "loc:int8"]
    r = cli("ingest", labelled_set, "--model", first, "--providers", "cpu", "--quiet", *stores, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    second = models / "resnet50.int8.bbbb.onnx"  # a newer calibration's file beside it
    second.write_bytes(first.read_bytes())
    query = next(labelled_set.rglob("*.jpg"))
    r = cli("search", query, "--models-dir", models, "--providers", "cpu", "--json", "--top-k", 1, *stores,
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [(h["model"], h["path"]) for h in json.loads(r.stdout)] == [("resnet50.int8", str(query.resolve()))]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_who_stops_the_embedded_redis(tmp_path):
    """The starter stops it; a reuser of a live starter's server leaves it; a starter leaving while another
    client is connected hands it on, and the last to leave stops it; an orphan's reuser stops it; kept stays."""
    owner = LocalRedis(tmp_path, keep=False)
    owner.start().set("k", "v")
    state = lambda: json.loads((tmp_path / "redis" / "state.json").read_text())  # noqa: E731
    assert state()["owner_pid"] > 0 and owner.started
    reuser = LocalRedis(tmp_path, keep=False)
    held = reuser.start()
    held.ping()  # a connection of another user
    assert not reuser.started and not reuser.release() and owner.running()  # the owner lives: left running
    assert not owner.release() and owner.running() and state()["owner_pid"] is None  # handed on
    held.close()
    assert reuser.release() and not owner.running()  # the last one out stops it
    assert LocalRedis(tmp_path).start().get("k") == b"v"  # the append-only file was written on the way out

    # an orphan (its starter gone without stopping it) is stopped by the next user to leave
    LocalRedis(tmp_path).stop()
    starter = LocalRedis(tmp_path, keep=False)
    starter.start()
    (tmp_path / "redis" / "state.json").write_text(json.dumps(state() | {"owner_pid": _dead_pid()}))
    late = LocalRedis(tmp_path, keep=False)
    late.start().ping()
    assert late.release() and not starter.running()

    # the stores close it when the process that opened them started it, before the process ends
    from onnx_search.store.stores import StoreSettings, open_stores

    stores = open_stores(StoreSettings(data_dir=tmp_path / "stores", keep_redis=False))
    assert len(redis_servers_under(tmp_path / "stores")) == 1
    stores.close()
    assert redis_servers_under(tmp_path / "stores") == []

    # the starter with nobody else connected stops it; with keep it stays, for anybody
    solo = LocalRedis(tmp_path, keep=False)
    solo.start().ping()
    assert solo.started and solo.release() and not solo.running()
    kept = LocalRedis(tmp_path, keep=True)
    kept.start()
    try:
        assert state()["keep"] is True and not kept.release() and not LocalRedis(tmp_path).release()
        assert kept.running()
    finally:
        kept.stop()
