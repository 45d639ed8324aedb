"""A small run and a live explorer over it, for tests/test_serve.py and tests/test_serve_browser.py.

Two tiny ONNX models that disagree (per-channel means; 2x2 quadrant means), a generated labelled folder, a real
``onnx-search run`` into Redis + Milvus Lite, then ``onnx-search serve RUN_DIR --port 0`` in a child process.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import cli_command

REPO = Path(__file__).resolve().parents[1]
PER_CLASS, CLASSES = 5, ("circles", "stripes", "checkers", "gradient")


def quadrant_model(path: Path, like: str = "resnet50", size: int = 224) -> Path:
    """A second tiny model: the mean of each colour channel in each image quadrant (12-d)."""
    import onnx
    from onnx import TensorProto, helper

    from onnx_search.models.convert import annotate

    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", size, size, 3])
    out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", 12])
    half = size // 2
    nodes = [
        helper.make_node("Transpose", ["pixels"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[half, half], strides=[half, half]),
        helper.make_node("Flatten", ["pooled"], ["feat"], axis=1),
    ]
    graph = helper.make_graph(nodes, "quadrant_mean", [inp], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    annotate(path, like, weights="none (quadrant means)")
    return path


def make_run(base: Path, redis_url: str, name: str = "servecheck") -> Path:
    """Models, images and one complete run (with robustness copies) made in a child process, since a Milvus
    Lite folder stays locked until the process that opened it exits; returns the run folder."""
    code = "import sys\nfrom pathlib import Path\nfrom tests.serve_fixture import run_in_this_process as r\n"
    code += "print(r(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))"
    out = subprocess.run(
        [sys.executable, "-c", code, str(base), redis_url, name], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return Path(out.stdout.strip().splitlines()[-1])


def run_in_this_process(base: Path, redis_url: str, name: str = "servecheck") -> Path:
    from onnx_search.experiment.run import run_experiment
    from onnx_search.models.tiny import write_pixel_mean_model
    from onnx_search.synth import generate_labelled_set

    mdir = base / "models"
    mdir.mkdir(parents=True, exist_ok=True)
    mean = write_pixel_mean_model(mdir / "mean.onnx", like="resnet50")
    quad = quadrant_model(mdir / "quad.onnx")
    images = base / "images"
    generate_labelled_set(images, per_class=PER_CLASS, classes=CLASSES, size=64, seed=5)
    cfg = base / "serve.yaml"
    cfg.write_text(
        f"experiment: {name}\noutput: {base / 'runs'}\ndata_dir: {base / 'data'}\nmodels_dir: {mdir}\n"
        f"top_k: 4\ndataset: {{root: {images}}}\n"
        f"models:\n  - {{name: {mean}, providers: [cpu]}}\n  - {{name: {quad}, providers: [cpu]}}\n"
        f"store: {{redis_url: '{redis_url}', namespace: {name}}}\n"
        "queries: {sample: 6, augment: {sample: 5, transforms: [hflip, blur, rotate, crop, pad]}}\ncost: null\n"
    )
    return run_experiment(cfg, progress=False).run_dir


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    lines: list[str]
    token: str | None = None

    def get(self, path: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; 4xx/5xx are returned, not raised."""
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=auth | (headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str, data: bytes | None = None) -> tuple[int, dict]:
        status, body = self.get(path, data)
        return status, json.loads(body)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; the exit status."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def start_server(*args, timeout: float = 60) -> Server:
    """``onnx-search serve ARGS --port 0``; waits for the URL line it prints."""
    proc = subprocess.Popen(
        cli_command("serve", *args, "--port", "0", "--providers", "cpu"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if m := re.search(r"explorer: (http://\S+)", line):
                found.put(m.group(1))
        found.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        url = found.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        raise RuntimeError("serve printed no URL in time:\n" + "".join(lines)) from None
    if url is None:
        raise RuntimeError("serve exited without a URL:\n" + "".join(lines))
    token = args[list(args).index("--token") + 1] if "--token" in args else None
    return Server(url.split("?")[0], proc, lines, token)


TOKEN = "test-token-0123456789abcdef"
MAX_UPLOAD_MB = 0.25


@dataclass
class Served:
    run: Path
    base: Path
    server: Server
    max_upload: int = int(MAX_UPLOAD_MB * 2**20)


@pytest.fixture(scope="session")
def served(tmp_path_factory, redis_url_module):
    """One run and one explorer over it (loopback, with a token, a 256 kB upload limit) for every serve test."""
    base = tmp_path_factory.mktemp("serve")
    run = make_run(base, redis_url_module)
    server = start_server(run, "--token", TOKEN, "--max-upload-mb", str(MAX_UPLOAD_MB))
    yield Served(run, base, server)
    rc = server.stop()
    assert rc == 0 and "explorer stopped" in "".join(server.lines), "".join(server.lines)
