import numpy as np
import pytest
from PIL import Image

from onnx_search.embed import decode as pp
from onnx_search.errors import DecodeError
from onnx_search.models import recipe
from tests.helpers import make_bad_folder, photo


@pytest.mark.parametrize("mode", ["caffe", "torch", "tf"])
def test_normalize_equals_keras_and_keeps_input(mode):
    from keras.applications import imagenet_utils

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 17, 13, 3), dtype=np.uint8)
    before = batch.copy()
    ours = recipe.normalize(batch, mode)
    theirs = imagenet_utils.preprocess_input(batch.astype(np.float32), mode=mode)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(batch, before)


def test_normalize_never_writes_into_a_float_input():
    x = np.full((1, 4, 4, 3), 100.0, dtype=np.float32)
    recipe.normalize(x, "tf")
    recipe.normalize(x, "caffe")
    assert (x == 100.0).all()


def test_normalize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        recipe.normalize(np.zeros((1, 2, 2, 3)), "bgr")


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


def test_sixteen_bit_maps_each_value_to_its_rounded_eight_bit_share(tmp_path):
    """Values only a correct 65535 -> 255 mapping gives: clipping gives 255, a plain >>8 gives 3 for 1000."""
    values = np.array([[0, 257, 1000, 30000, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    got = np.asarray(pp.decode((tmp_path / "g16.png").read_bytes()))[..., 0]
    expected = np.floor(values / 65535 * 255 + 0.5).astype(np.uint8)
    assert expected.tolist() == [[0, 1, 4, 117, 128, 255]]
    assert got.tolist() == expected.tolist()


def test_cmyk_and_palette_alpha_keep_their_colours(tmp_path):
    Image.new("CMYK", (4, 4), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg", quality=100)  # pure cyan ink
    r, g, b = np.asarray(pp.decode((tmp_path / "cyan.jpg").read_bytes()))[1, 1].astype(int)
    assert r < 20 and g > 235 and b > 235
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    pal.putpixel((0, 0), 0)  # index 0: transparent
    pal.putpixel((1, 0), 1)  # index 1: opaque red
    pal.save(tmp_path / "pal.png", transparency=0)
    arr = np.asarray(pp.decode((tmp_path / "pal.png").read_bytes()))
    assert arr[0, 0].tolist() == [255, 255, 255]  # transparent -> white background, not palette black
    assert arr[0, 1].tolist() == [200, 10, 20]


@pytest.mark.parametrize("name", ["good_rgb.jpg", "cmyk.jpg", "exif_rotated.jpg"])
def test_decode_resize_normalise_equals_keras_load_img_end_to_end(files, name):
    """Our decode -> squash resize -> caffe normalise equals Keras' load_img -> img_to_array -> preprocess_input."""
    from keras.applications import imagenet_utils
    from keras.utils import img_to_array, load_img

    from onnx_search.embed.decode import load_for_recipes

    _, (arr,) = load_for_recipes(files[name], [(224, "squash", "bilinear")])
    ours = recipe.normalize(arr[None], "caffe")[0]
    img = load_img(files[name], target_size=(224, 224), interpolation="bilinear")
    if name == "exif_rotated.jpg":  # Keras ignores EXIF orientation; we turn the photo upright first
        assert np.abs(ours - imagenet_utils.preprocess_input(img_to_array(img)[None], mode="caffe")[0]).max() > 10
        img = load_img(files[name], interpolation="bilinear").transpose(Image.Transpose.ROTATE_270)
        img = img.resize((224, 224), Image.BILINEAR)
    theirs = imagenet_utils.preprocess_input(img_to_array(img)[None], mode="caffe")[0]
    assert np.abs(ours - theirs).max() == 0.0


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
    with pytest.raises(DecodeError, match=reason):
        pp.decode(payload)


def test_truncated_jpeg_is_a_decode_error(files):
    data = files["good_rgb.jpg"].read_bytes()
    with pytest.raises(DecodeError, match="truncated|corrupt"):
        pp.decode(data[: len(data) // 3])


def test_pixel_limit_skips_instead_of_decoding():
    img = Image.new("RGB", (400, 300))
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    with pytest.raises(DecodeError, match="exceeds"):
        pp.decode(buf.getvalue(), max_pixels=100_000)


def test_resize_policies():
    img = photo(1, (320, 240))
    assert pp.resize(img, 224, "squash").shape == (224, 224, 3)
    crop = pp.resize(img, 224, "center_crop")
    assert crop.shape == (224, 224, 3)
    assert not np.array_equal(crop, pp.resize(img, 224, "squash"))


def test_read_bytes_explains_directories_and_missing(tmp_path):
    with pytest.raises(DecodeError, match="directory"):
        pp.read_bytes(tmp_path)
    with pytest.raises(DecodeError, match="not found"):
        pp.read_bytes(tmp_path / "nope.jpg")
