"""HEIC and AVIF are read (pillow-heif, Pillow's libavif), or listed as skipped with the reason; formats nothing
reads (camera raw, ...) are listed too, never silently ignored."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, features

from onnx_search.embed import formats
from onnx_search.embed.decode import decode, read_bytes
from onnx_search.embed.scan import DEFAULT_EXTENSIONS, scan_folder


def _photo(path, fmt):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path, fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    pytest.importorskip("pillow_heif")
    if not features.check("avif"):
        pytest.skip("this Pillow has no libavif")
    formats.register_plugins()
    _photo(tmp_path / "a.jpg", "JPEG")
    _photo(tmp_path / "IMG_0001.HEIC", "HEIF")
    _photo(tmp_path / "b.heif", "HEIF")
    _photo(tmp_path / "c.avif", "AVIF")
    (tmp_path / "IMG_0002.DNG").write_bytes(b"raw")
    (tmp_path / "cover.psd").write_bytes(b"psd")
    (tmp_path / "notes.txt").write_text("not an image, not listed")
    return tmp_path


def test_heic_and_avif_are_scanned_and_decoded(folder):
    for ext in (".avif", ".heic", ".heif"):
        assert ext in DEFAULT_EXTENSIONS and ext in formats.supported_extensions()
    scan = scan_folder(folder)
    assert [p.name for p in scan.files] == ["IMG_0001.HEIC", "a.jpg", "b.heif", "c.avif"]
    for p in scan.files:
        img = decode(read_bytes(p))
        assert img.mode == "RGB" and img.size == (60, 40)


def test_formats_nothing_reads_are_listed_with_the_reason_whatever_the_extensions(folder):
    scan = scan_folder(folder, extensions=("jpg",))
    assert [p.name for p in scan.files] == ["a.jpg"]
    reasons = {p.rsplit("/", 1)[1]: r for p, r in scan.skipped}
    assert set(reasons) == {"IMG_0002.DNG", "cover.psd"}  # the HEIC/AVIF files were left out by choice
    assert reasons["IMG_0002.DNG"].startswith("camera raw (.dng): not an image format onnx-search reads")
    assert reasons["cover.psd"].startswith("Photoshop document (.psd)")


@pytest.mark.parametrize("decoder,files,says", [("heif", {"IMG_0001.HEIC": "HEIC", "b.heif": "HEIF"}, "pillow-heif"),
                                               ("avif", {"c.avif": "AVIF"}, "libavif")])  # fmt: skip
def test_without_their_decoder_heic_and_avif_are_skipped_with_the_reason(folder, monkeypatch, decoder, files, says):
    monkeypatch.setattr(formats, "_available", lambda d: d != decoder)
    scan = scan_folder(folder)
    reasons = {p.rsplit("/", 1)[1]: r for p, r in scan.skipped}
    for name, fmt in files.items():
        assert reasons[name].startswith(f"{fmt}: no decoder installed; install") and says in reasons[name]
    assert len(scan.files) == 4 - len(files)
    missing = {e for e, (_, d, _) in formats.PLUGIN_EXTENSIONS.items() if d == decoder}
    assert missing and not missing & set(formats.supported_extensions())
