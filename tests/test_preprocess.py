import numpy as np
import pytest
from PIL import Image

from onnx_search import preprocess as pp
from tests.badfiles import make_bad_folder, photo


@pytest.mark.parametrize("mode", ["caffe", "torch", "tf"])
def test_normalize_equals_keras_and_keeps_input(mode):
    from keras.applications import imagenet_utils

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 17, 13, 3), dtype=np.uint8)
    before = batch.copy()
    ours = pp.normalize(batch, mode)
    theirs = imagenet_utils.preprocess_input(batch.astype(np.float32), mode=mode)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(batch, before)


def test_normalize_never_writes_into_a_float_input():
    x = np.full((1, 4, 4, 3), 100.0, dtype=np.float32)
    pp.normalize(x, "tf")
    pp.normalize(x, "caffe")
    assert (x == 100.0).all()


def test_normalize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        pp.normalize(np.zeros((1, 2, 2, 3)), "bgr")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_bad_folder(tmp_path_factory.mktemp("decode"), huge=False)


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "palette_alpha.png", "rgba.png", "animated.gif"])
def test_every_mode_decodes_to_rgb(files, name):
    img = pp.decode(files[name].read_bytes())
    assert img.mode == "RGB"
    assert min(img.size) > 0


def test_sixteen_bit_keeps_its_range(files):
    arr = np.asarray(pp.decode(files["gray16.png"].read_bytes()))
    assert arr.min() == 0 and arr.max() == 255  # scaled from 0..65535, not clipped to white


def test_alpha_is_composited_on_white_not_dropped(tmp_path):
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black
    img.save(tmp_path / "t.png")
    arr = np.asarray(pp.decode((tmp_path / "t.png").read_bytes()))
    assert (arr == 255).all()


def test_animation_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(pp.decode((tmp_path / "a.gif").read_bytes()))[0, 0]
    assert r > 200 and b < 50


def test_exif_orientation_is_applied(files):
    img = pp.decode(files["exif_rotated.jpg"].read_bytes())
    assert img.size == (200, 300)  # stored 300x200, orientation 6 turns it upright


def test_jpeg_draft_decodes_large_photos_at_reduced_scale(tmp_path):
    photo(1, (2400, 1600)).save(tmp_path / "big.jpg")
    full = pp.decode((tmp_path / "big.jpg").read_bytes())
    draft = pp.decode((tmp_path / "big.jpg").read_bytes(), draft_size=224)
    assert full.size == (2400, 1600)
    assert 224 <= min(draft.size) < 800


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "empty file"),
        (b"hello", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 10, "unreadable|corrupt|not an image"),
    ],
)
def test_bad_bytes_raise_decode_error_with_reason(payload, reason):
    with pytest.raises(pp.DecodeError, match=reason):
        pp.decode(payload)


def test_truncated_jpeg_is_a_decode_error(files):
    data = files["good_rgb.jpg"].read_bytes()
    with pytest.raises(pp.DecodeError, match="truncated|corrupt"):
        pp.decode(data[: len(data) // 3])


def test_pixel_limit_skips_instead_of_decoding():
    img = Image.new("RGB", (400, 300))
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    with pytest.raises(pp.DecodeError, match="exceeds"):
        pp.decode(buf.getvalue(), max_pixels=100_000)


def test_resize_policies():
    img = photo(1, (320, 240))
    assert pp.resize(img, 224, "squash").shape == (224, 224, 3)
    crop = pp.resize(img, 224, "center_crop")
    assert crop.shape == (224, 224, 3)
    assert not np.array_equal(crop, pp.resize(img, 224, "squash"))


def test_read_bytes_explains_directories_and_missing(tmp_path):
    with pytest.raises(pp.DecodeError, match="directory"):
        pp.read_bytes(tmp_path)
    with pytest.raises(pp.DecodeError, match="not found"):
        pp.read_bytes(tmp_path / "nope.jpg")
