"""Helpers every test may use: the CLI as a user runs it, folders of bad files, small foreign ONNX models."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# Debian's Chromium, driven by Playwright over a pipe (never a browser download); flags that keep it off the network
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip

# converted once per test session (random weights, seed 0) by the models_dir fixture
FIXTURE_MODELS = ("resnet50", "mobilenetv2", "vgg16", "torchvision/resnet50", "torchvision/vgg16")


def cli_command(*args) -> list[str]:
    """``python -m onnx_search.cli ARGS`` as an argv list (arguments turned into strings)."""
    return [sys.executable, "-m", "onnx_search.cli", *map(str, args)]


def run_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, capturing its text output."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout)


def cuda_really_runs(model_path: Path) -> bool:
    """Whether onnxruntime itself keeps CUDA for a session on this host (GPU-dependent tests follow this)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    sess = ort.InferenceSession(str(model_path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    return "CUDAExecutionProvider" in sess.get_providers()


def stop_local_redis_servers(root: Path) -> list[Path]:
    """Stop every project Redis server whose data lies under ``root``; returns the folders of those it stopped."""
    from onnx_search.store.local_redis import LocalRedis

    stopped = []
    for state in Path(root).rglob("redis/state.json"):
        server = LocalRedis(state.parent.parent)
        if server.running():
            server.stop()
            stopped.append(state.parent)
    return stopped


def foreign_model(path: Path, size: int = 224) -> Path:
    """A tiny ONNX model that no converter of ours made: the per-channel mean of an NHWC image (3-d output)."""
    from onnx_search.models.tiny import write_pixel_mean_model

    return write_pixel_mean_model(path, size)


GOOD = (
    "good_rgb.jpg",
    "cmyk.jpg",
    "gray16.png",
    "palette_alpha.png",
    "rgba.png",
    "animated.gif",
    "exif_rotated.jpg",
    "huge_144mp.png",
)
BAD_REASONS = {
    "corrupt.jpg": "not an image",
    "truncated.jpg": "truncated",
    "empty.jpg": "empty file",
    "notes.png": "not an image",
    "folder.jpg": "directory",
    "broken_link.jpg": "broken symlink",
}


def photo(seed: int, size=(320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    return Image.fromarray(np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8))


def make_bad_folder(root: Path, huge: bool = True) -> dict[str, Path]:
    """Write the folder; returns name -> path for the interesting entries."""
    root.mkdir(parents=True, exist_ok=True)
    p = {}
    photo(1).save(p.setdefault("good_rgb.jpg", root / "good_rgb.jpg"), quality=92)
    photo(2).convert("CMYK").save(p.setdefault("cmyk.jpg", root / "cmyk.jpg"))
    arr16 = (np.linspace(0, 65535, 200 * 150).reshape(150, 200)).astype(np.uint16)
    Image.fromarray(arr16).save(p.setdefault("gray16.png", root / "gray16.png"))
    pal = photo(3).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(p.setdefault("palette_alpha.png", root / "palette_alpha.png"), transparency=0)
    rgba = photo(4).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(p.setdefault("rgba.png", root / "rgba.png"))
    frames = [photo(5 + i).convert("P") for i in range(3)]
    frames[0].save(p.setdefault("animated.gif", root / "animated.gif"), save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    photo(8, (300, 200)).save(p.setdefault("exif_rotated.jpg", root / "exif_rotated.jpg"), exif=exif)
    if huge:
        Image.new("RGB", (12000, 12000), (90, 120, 150)).save(
            p.setdefault("huge_144mp.png", root / "huge_144mp.png"), compress_level=1
        )
    # bad ones
    (root / "corrupt.jpg").write_bytes(os.urandom(2048))
    data = (root / "good_rgb.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("this is not a picture\n")
    (root / "folder.jpg").mkdir(exist_ok=True)
    if not (root / "broken_link.jpg").is_symlink():
        os.symlink(root / "does_not_exist.jpg", root / "broken_link.jpg")
    loop = root / "loop"
    loop.mkdir(exist_ok=True)
    if not (loop / "back").is_symlink():
        os.symlink(root, loop / "back")  # a symlink loop: loop/back -> root
    # awkward paths that hold good images
    uni = root / "фото_照片_é"
    uni.mkdir(exist_ok=True)
    photo(9).save(p.setdefault("unicode", uni / "café_ñ_日本.jpg"))
    deep = root
    for i in range(4):
        deep = deep / (f"very_long_folder_name_{i}_" + "x" * 60)
    deep.mkdir(parents=True, exist_ok=True)
    long_file = deep / ("long_name_" + "y" * 100 + ".jpg")
    photo(10).save(long_file)
    p["long"] = long_file
    return p


def open_page(playwright, width: int = 1400, height: int = 1000):
    """Debian's Chromium with one page whose console errors and uncaught exceptions are collected in ``errors``.

    Returns ``(browser, page, errors)``; the caller closes the browser.
    """
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


# A tiny torch factory module for the user-model tests (each test adds its own factories below it)
USER_RECIPE = {"input_size": 32, "preprocess": "meanstd", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
TINY_TORCH_NET = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def make():
    return Net()
"""
