"""Bounded decoding: an image's memory is bounded by the model's input size, never by the file's shape.

A 50000x1 PNG resized so its short side is 256 would be 12.8M x 256 pixels (~13 GB); the centre-crop geometry
resamples only the region that maps onto the crop (``decode.resize_crop_bounded``). Measured through ``embed``,
``ingest`` and an explorer upload, each in its own process under an address-space limit, so a regression fails
fast instead of taking the machine's memory.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnx_search.embed import decode as dec
from tests.helpers import cli_command

REPO = Path(__file__).resolve().parents[1]
EXTREMES = {"wide.png": (50000, 1), "tall.png": (1, 50000), "wide.jpg": (65500, 2)}
MAX_INCREASE_MB = 500
AS_LIMIT = 3 * 2**30  # a child without the bound asks for many GB and fails fast under this

# Runs a command under RLIMIT_AS and prints its exit status, its output's tail and its peak RSS (kB).
PEAK = """
import json, resource, subprocess, sys
lim = int(sys.argv[1])
r = subprocess.run(sys.argv[2:], capture_output=True, text=True,
                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (lim, lim)))
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": r.returncode, "out": r.stdout[-3000:] + r.stderr[-3000:], "peak_kb": peak}))
"""


def extreme_bytes(w: int, h: int, fmt: str) -> bytes:
    """A smooth gradient of that shape (small files, real pixels)."""
    ramp = np.linspace(0, 255, w * h).astype(np.uint8).reshape(h, w)
    arr = np.stack([ramp, ramp[::-1, ::-1], np.full_like(ramp, 90)], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def center_crop_mean_model(path: Path) -> Path:
    """A tiny NCHW model (per-channel means) carrying torchvision ResNet50's centre-crop recipe."""
    import onnx
    from onnx import TensorProto, helper

    from onnx_search.models.convert import annotate

    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 224, 224])
    out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    node = helper.make_node("ReduceMean", ["pixels", "axes"], ["feat"], keepdims=0)
    graph = helper.make_graph([node], "pixel_mean_nchw", [inp], [out], initializer=[axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    annotate(path, "torchvision/resnet50", weights="none (pixel means)")
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``plain``: ordinary photos; ``extreme``: the same photos plus the three extreme shapes; a model."""
    from onnx_search.synth import generate_labelled_set

    base = tmp_path_factory.mktemp("bounded")
    plain, extreme = base / "plain", base / "extreme"
    generate_labelled_set(plain, per_class=2, classes=("circles", "stripes"), size=96, seed=1)
    generate_labelled_set(extreme, per_class=2, classes=("circles", "stripes"), size=96, seed=1)
    for name, (w, h) in EXTREMES.items():
        (extreme / name).write_bytes(extreme_bytes(w, h, "JPEG" if name.endswith(".jpg") else "PNG"))
    return plain, extreme, center_crop_mean_model(base / "cc_mean.onnx")


def peak_run(*args) -> dict:
    """Run the CLI in a child under AS_LIMIT; its rc, output tail and peak RSS in MB."""
    cmd = [sys.executable, "-c", PEAK, str(AS_LIMIT), *cli_command(*args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got | {"peak_mb": got["peak_kb"] / 1024}


def accounted(skipped_json: Path, embedded: set[str]) -> dict[str, str]:
    """Each extreme file's fate: 'embedded' or its skip reason (a missing one fails)."""
    skipped = {Path(s["path"]).name: s["reason"] for s in json.loads(skipped_json.read_text())}
    fate = {}
    for name in EXTREMES:
        assert name in embedded or skipped.get(name), f"{name} neither embedded nor skipped with a reason"
        fate[name] = "embedded" if name in embedded else skipped[name]
    return fate


@pytest.mark.parametrize(
    ("w", "h", "interp", "crop_pct"),
    [(20, 1000, "bicubic", 0.875), (1000, 20, "bilinear", 0.0), (3, 700, "bilinear", 1.0), (5000, 3, "bicubic", 0.9)],
)
def test_bounded_path_matches_the_full_resize_within_two_levels(w, h, interp, crop_pct):
    """Where the full intermediate is still affordable, the bounded crop equals it within 2 grey levels."""
    rng = np.random.default_rng(w * h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    scale = dec.scale_side(224, "center_crop", crop_pct)
    nw, nh = (scale, int(scale * h / w)) if w <= h else (int(scale * w / h), scale)
    assert nw * nh > dec.MAX_RESIZE_AREA_RATIO * scale * scale  # resize() takes the bounded path here
    full = np.asarray(dec._center_crop(img.resize((nw, nh), dec._RESAMPLE[interp]), 224)).astype(int)
    got = dec.resize(img, 224, "center_crop", interp, crop_pct).astype(int)
    assert got.shape == (224, 224, 3)
    assert np.abs(full - got).max() <= 2 and (full != got).mean() < 0.02


def test_extreme_shapes_resize_in_a_child_under_300_mb():
    """resize() of each extreme shape, for every crop geometry, in a child capped at 300 MB of RSS growth."""
    code = (
        "import io,resource,sys\nfrom PIL import Image\nfrom onnx_search.embed import decode as d\n"
        "from tests.test_bounded_decode import EXTREMES, extreme_bytes\n"
        "imgs=[d.decode(extreme_bytes(w,h,'JPEG' if n.endswith('.jpg') else 'PNG'),draft_size=256)"
        " for n,(w,h) in EXTREMES.items()]\n"
        "before=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for img in imgs:\n"
        " for g in [(224,'center_crop','bicubic',0.875),(224,'center_crop','bilinear',0.0),"
        "(240,'center_crop','bicubic',1.2),(224,'squash','bicubic',0.9)]:\n"
        "  assert d.resize(img,*g).shape==(g[0],g[0],3)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-before)/1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(AS_LIMIT), sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0, got["out"]
    assert float(got["out"].split()[0]) < 300


def test_embed_extreme_shapes_within_500_mb_of_the_same_run_without_them(folders, tmp_path):
    plain, extreme, model = folders
    common = ("--model", model, "--providers", "cpu", "--quiet", "--workers", "2")
    base = peak_run("embed", plain, "--output", tmp_path / "plain", *common)
    assert base["rc"] == 0, base["out"]
    got = peak_run("embed", extreme, "--output", tmp_path / "extreme", *common)
    assert got["rc"] == 0, got["out"]
    index = json.loads((tmp_path / "extreme" / "index.json").read_text())
    fate = accounted(tmp_path / "extreme" / "skipped.json", {Path(i["path"]).name for i in index["images"]})
    assert set(fate.values()) == {"embedded"}  # the bound resamples them; nothing is refused
    assert got["peak_mb"] - base["peak_mb"] < MAX_INCREASE_MB, (base["peak_mb"], got["peak_mb"])


def test_ingest_extreme_shapes_within_500_mb_of_the_same_run_without_them(folders, tmp_path, redis_url):
    plain, extreme, model = folders
    runs = {}
    for name, folder in (("plain", plain), ("extreme", extreme)):
        runs[name] = peak_run(
            "ingest",
            folder,
            "--model",
            model,
            "--providers",
            "cpu",
            "--quiet",
            "--workers",
            "2",
            "--data-dir",
            tmp_path / name,
            "--redis-url",
            redis_url,
            "--namespace",
            f"bounded_{name}",
        )
        assert runs[name]["rc"] == 0, runs[name]["out"]
    reports = list((tmp_path / "extreme").rglob("skipped.json"))
    assert len(reports) == 1, reports
    skipped = {Path(s["path"]).name for s in json.loads(reports[0].read_text())}
    assert not skipped & set(EXTREMES), skipped
    n = len(list(plain.rglob("*.jpg"))) + len(EXTREMES)
    assert f"embedded {{'cc_mean': {n}}}" in runs["extreme"]["out"], runs["extreme"]
    assert runs["extreme"]["peak_mb"] - runs["plain"]["peak_mb"] < MAX_INCREASE_MB, runs


def vm_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_explorer_upload_of_extreme_shapes_within_500_mb(folders, tmp_path, redis_url):
    """A run over the plain folder, the explorer over it (capped at its size + 3 GB of address space), one
    ordinary upload, then the three extremes: each answers 200 with hits, the server's peak RSS grows < 500 MB."""
    from tests.serve_fixture import start_server

    plain, _, model = folders
    cfg = tmp_path / "bounded.yaml"
    cfg.write_text(
        f"experiment: bounded\noutput: {tmp_path / 'runs'}\ndata_dir: {tmp_path / 'data'}\n"
        f"models_dir: {tmp_path / 'models'}\ntop_k: 3\ndataset: {{root: {plain}}}\n"
        f"models:\n  - {{name: {model}, providers: [cpu]}}\n"
        f"store: {{redis_url: '{redis_url}', namespace: bounded_serve}}\nqueries: {{sample: 2}}\ncost: null\n"
    )
    made = subprocess.run(cli_command("run", cfg), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    run_dir = next((tmp_path / "runs").glob("*/manifest.json")).parent
    server = start_server(run_dir)
    try:
        pid = server.proc.pid
        cap = vm_kb(pid, "VmSize") * 1024 + AS_LIMIT
        resource.prlimit(pid, resource.RLIMIT_AS, (cap, cap))
        status, out = server.json("/api/query?k=2", next(plain.rglob("*.jpg")).read_bytes())
        assert status == 200, out
        before = vm_kb(pid, "VmHWM")
        for name, (w, h) in EXTREMES.items():
            status, body = server.get("/api/query?k=2", extreme_bytes(w, h, "JPEG" if name.endswith(".jpg") else "PNG"))
            assert status == 200, (name, status, body[:300])
            assert all(len(hits) == 2 for hits in json.loads(body)["models"].values()), body[:300]
        grew_mb = (vm_kb(pid, "VmHWM") - before) / 1024
        assert grew_mb < MAX_INCREASE_MB, grew_mb
    finally:
        server.stop()
