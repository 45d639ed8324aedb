"""docs/tutorials/own-folder.md, run as written: its three commands (init, run, serve) on a small generated folder
laid out like a phone's, through the real CLI, real Milvus Lite and a real redis-server. Every output line the page
shows must appear in the real output; only numbers may differ (they are masked on both sides)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.docs_blocks import REPO, mask_numbers, tutorial_steps
from tests.helpers import cli_command, stop_local_redis_servers

PAGE = REPO / "docs" / "tutorials" / "own-folder.md"


def make_phone_folder(root: Path) -> Path:
    """Sixteen small photos in two folders named like a phone's (so copies, not folders, are the ground truth)."""
    for i, sub in enumerate(["Camera", "WhatsApp Images"]):
        for j in range(8):
            p = root / sub / f"IMG_{j}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(10 * i + j)
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(p)
    return root


def missing_lines(shown: list[str], output: str) -> list[str]:
    """The lines the page shows that the real output does not hold (numbers and spacing masked)."""
    real = mask_numbers(output)
    return [line for line in shown if mask_numbers(line) not in real]


def test_missing_lines_masks_numbers_but_nothing_else():
    out = "wrote photos.yaml: 8 queries, which detect a difference of about 0.25\n"
    assert missing_lines(["wrote photos.yaml: 12 queries, which detect a difference of about 0.31"], out) == []
    assert missing_lines(["wrote photos.yml: 8 queries"], out) == ["wrote photos.yml: 8 queries"]
    assert missing_lines(["efficientnet-lite1 (0.5)"], "efficientnet-lite2 (0.6)") == ["efficientnet-lite1 (0.5)"]


def _serve_first_line(cmd: list[str], cwd: Path, env: dict, timeout: float = 60) -> str:
    """Start the explorer, read until it prints its address, then stop it with Ctrl-C (SIGINT)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "http://127.0.0.1:" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    return "".join(lines) + (rest or "")


def test_the_own_folder_tutorial_gives_the_outputs_it_shows(tmp_path, trained_dir):
    from tests.conftest import convert_cached

    convert_cached("efficientnet-lite2", weights="imagenet")  # the second model init picks; cached after once
    steps = tutorial_steps(PAGE)
    commands = [shlex.split(cmd) for cmd, _ in steps]
    assert [c[:2] for c in commands] == [["onnx-search", "init"], ["onnx-search", "run"], ["onnx-search", "serve"]]
    assert all(shown for _, shown in steps), "each step shows some output"

    make_phone_folder(tmp_path / "photos")
    env = {**os.environ, "ONNX_SEARCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "ONNX_SEARCH_CACHE": str(tmp_path / "c")}
    env.pop("ONNX_SEARCH_KEEP_REDIS", None)
    # The page's commands as written; `run` takes the converted models from the test cache (no conversion here),
    # `serve` a free port instead of 8765.
    extra = {"init": [], "run": ["--models-dir", str(trained_dir)], "serve": ["--port", "0"]}
    try:
        for (cmd, shown), argv in zip(steps, commands, strict=True):
            full = cli_command(*argv[1:], *extra[argv[1]])
            if argv[1] == "serve":
                output = _serve_first_line(full, tmp_path, env)
            else:
                r = subprocess.run(full, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
                assert r.returncode == 0, f"{cmd}: {r.stderr[-2000:]}"
                output = r.stdout + r.stderr
            assert missing_lines(shown, output) == [], f"`{cmd}` did not print these lines; it printed:\n{output}"
        assert (tmp_path / "photos.yaml").is_file() and (tmp_path / "runs" / "photos" / "report.html").is_file()
    finally:
        stop_local_redis_servers(tmp_path)
