"""`onnx-search init`: the folder survey, the rule that says whether folders are classes (also `labels: auto`), the
commented experiment file it writes, and a run of that file that reaches a verdict offline."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats

from onnx_search.errors import ConfigError
from onnx_search.experiment.config import Experiment
from onnx_search.experiment.init import MAX_QUERIES, init_experiment, query_plan
from onnx_search.experiment.loader import load_experiment
from onnx_search.experiment.survey import MIN_PER_CLASS, folder_labels, resolve_labels, source_like, survey_folder
from tests.helpers import run_cli

CLASSES = ("apples", "bicycles", "clouds")
CAMERA = ("DCIM/100APPLE", "Camera", "WhatsApp Images", "Screenshots", "2023-07")


def _image(path: Path, seed: int, size=(48, 40)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _folder(root: Path, folders, per: int = 3, start: int = 0) -> Path:
    for i, sub in enumerate(folders):
        for j in range(per):
            _image(root / sub / f"img_{j}.jpg", start + 10 * i + j)
    return root


@pytest.fixture
def unlabelled(tmp_path) -> Path:
    """Loose photos: one exact duplicate, one EXIF-rotated 4:3 photo, a broken file, a camera raw file."""
    root = tmp_path / "Loose photos ☀"
    for i in range(6):
        _image(root / f"p{i}.jpg", i)
    shutil.copyfile(root / "p0.jpg", root / "p0 copy.jpg")
    img = Image.fromarray(np.zeros((30, 40, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: shown 30 wide, 40 high
    img.save(root / "rotated.jpg", exif=exif)
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "IMG_0001.DNG").write_bytes(b"raw")
    return root


def test_survey_counts_formats_sizes_duplicates_and_unreadable_files(unlabelled):
    s = survey_folder(unlabelled, progress=False)
    assert len(s.files) == 8 and s.formats == {"JPEG": 8}
    assert s.duplicates == [[unlabelled / "p0 copy.jpg", unlabelled / "p0.jpg"]] and s.unique == 7
    assert s.sizes[unlabelled / "rotated.jpg"] == (30, 40)  # as shown, EXIF orientation applied
    reasons = dict(s.skipped)
    assert "not an image" in reasons[str(unlabelled / "broken.jpg")]
    assert "camera raw" in reasons[str(unlabelled / "IMG_0001.DNG")]
    assert s.bytes == sum(p.stat().st_size for p in s.files)


def test_init_on_an_unlabelled_folder_writes_copies_as_ground_truth(unlabelled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = init_experiment(unlabelled, progress=False)
    assert out.path == Path("Loose-photos.yaml")  # the name made valid: no space, no emoji
    exp = load_experiment(out.path)
    assert exp.experiment == "Loose-photos" and exp.dataset.root == unlabelled.resolve()
    assert exp.dataset.labels is False and exp.queries.augment is not None
    assert exp.queries.augment.sample == out.queries == 7  # the distinct readable images, duplicates once
    assert [(m.name, m.weights) for m in exp.models] == [("efficientnet-lite0", "imagenet"),
                                                          ("efficientnet-lite2", "imagenet")]  # fmt: skip
    text = out.text
    assert "# folders are not used as labels: 0 sub-folders of images" in text
    assert "1 extra copy in 1 group," in text and "Skipped: 2 files" in text
    assert "With 7 queries a paired test at alpha 0.05 has too few images to detect any difference" in text
    assert "judgments/Loose-photos.qrels" in text
    with pytest.raises(ConfigError, match="exists: pass --force"):
        init_experiment(unlabelled, progress=False)
    assert init_experiment(unlabelled, force=True, progress=False).path.read_text() == text


def test_init_on_a_labelled_folder_uses_its_folders_as_labels(tmp_path):
    root = _folder(tmp_path / "objects", CLASSES, per=4)
    out = init_experiment(root, tmp_path / "cfg" / "objects.yaml", progress=False)
    exp = load_experiment(out.path)
    assert exp.dataset.labels is True and exp.queries.augment is None
    assert exp.queries.sample == out.queries == 12
    assert "# folders used as labels: 3 leaf folders" in out.text and "apples (4)" in out.text


def test_init_on_a_camera_style_folder_does_not_use_its_folders_as_labels(tmp_path):
    root = _folder(tmp_path / "phone", CAMERA)
    out = init_experiment(root, tmp_path / "phone.yaml", progress=False)
    exp = load_experiment(out.path)
    assert exp.dataset.labels is False and exp.queries.augment.sample == 15
    reason = out.survey.labels.reason
    assert "named like a camera, app or date" in reason
    for name in ("DCIM/100APPLE", "Camera", "WhatsApp Images", "Screenshots"):
        assert name in reason


def test_init_cli_prints_the_next_commands_and_refuses_a_missing_folder(tmp_path):
    root = _folder(tmp_path / "objects", CLASSES)
    r = run_cli("init", root, "--output", tmp_path / "o.yaml", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (
        f"onnx-search run {tmp_path / 'o.yaml'}" in r.stdout and f"onnx-search serve {tmp_path / 'o.yaml'}" in r.stdout
    )
    assert "folders used as labels" in r.stdout
    bad = run_cli("init", tmp_path / "nope")
    assert bad.returncode == 2 and "no such folder" in bad.stderr and "Traceback" not in bad.stderr


def test_query_plan_aims_at_the_target_difference_within_the_folder():
    n, d = query_plan(10_000)
    # the sign-flip test's power (evidence.detectable_difference): 0.05 needs more than 200 queries, capped at 200
    assert n == MAX_QUERIES == 200 and round(d, 3) == 0.052
    n, d = query_plan(12)
    t = stats.t.ppf(0.975, 11) + stats.t.ppf(0.8, 11)
    g = t**2 * 1.05 / 12
    assert n == 12 and d == pytest.approx(0.25 * (g / (1 - g)) ** 0.5)


def test_init_on_a_tiny_folder_says_it_is_too_small_to_detect_a_difference(tmp_path):
    root = _folder(tmp_path / "few", ["."], per=6)
    r = run_cli("init", root, "--output", tmp_path / "few.yaml", "--quiet")
    assert r.returncode == 0, r.stderr
    assert math.isinf(query_plan(6)[1]) and "about inf" not in r.stdout + (tmp_path / "few.yaml").read_text()
    assert "6 queries, too few images to detect any difference at 80% power; add images to the folder" in r.stdout
    big = init_experiment(_folder(tmp_path / "more", ["."], per=12), tmp_path / "more.yaml", progress=False)
    assert f"With 12 queries a paired test detects a difference of about {big.detectable:.2f}" in big.text


# The label rule: a good layout passes; changing any one part of it makes it fail, saying which part.
GOOD = {"apples": 3, "bicycles": 3, "clouds": 2}
BROKEN = {
    "one folder": ({"apples": 3}, "1 sub-folder of images"),
    "loose images": ({**GOOD, ".": 1}, "directly in the folder"),
    "nested": ({**GOOD, "apples/green": 2}, "hold further folders of images (apples)"),
    "small folder": ({**GOOD, "dogs": MIN_PER_CLASS - 1}, "fewer than 2 images (dogs)"),
    "camera name": ({**GOOD, "Camera": 3}, "named like a camera, app or date, not a class (Camera)"),
    "date name": ({**GOOD, "2023-07-14": 3}, "named like a camera, app or date, not a class (2023-07-14)"),
    "shared name": ({"a/apples": 3, "b/apples": 3}, "share a name, so their labels would merge (a/apples, b/apples)"),
}


def _files(root: Path, layout: dict) -> list[Path]:
    return [root / sub / f"{i}.jpg" for sub, n in layout.items() for i in range(n)]


def test_the_label_rule_takes_class_like_folders(tmp_path):
    d = folder_labels(tmp_path, _files(tmp_path, GOOD))
    assert d.use and d.classes == GOOD and "3 leaf folders" in d.reason


@pytest.mark.parametrize("case", BROKEN)
def test_the_label_rule_refuses_each_broken_part(case, tmp_path):
    layout, says = BROKEN[case]
    d = folder_labels(tmp_path, _files(tmp_path, layout))
    assert not d.use and says in d.reason, d.reason
    assert d.reason.count(";") == 0  # only the part that was broken


@pytest.mark.parametrize(
    "name", ["DCIM", "Camera", "Camera Roll", "WhatsApp Images", "Screenshots", "Downloads", "100APPLE", "101MSDCF",
             "Pictures", "2023", "2023-07", "2023_07_14", "20230714", "2023-07 Paris", "14.07.2023", "July 2023",
             "New Folder (2)", "Telegram Images"])  # fmt: skip
def test_source_like_names(name):
    assert source_like(name)


@pytest.mark.parametrize("name", ["apples", "cameras", "beach", "dogs", "circles", "mimetypes__application-x-trash"])
def test_class_like_names(name):
    assert not source_like(name)


def _exp(root: Path, labels, **kw) -> Experiment:
    return Experiment(
        experiment="x", dataset={"root": str(root), "labels": labels}, models=[{"name": "resnet50"}], **kw
    )


def test_labels_auto_is_the_default_and_is_settled_before_ingest(tmp_path):
    camera = _folder(tmp_path / "phone", CAMERA)
    files = sorted(camera.rglob("*.jpg"))
    exp = Experiment(experiment="x", dataset={"root": str(camera)}, models=[{"name": "resnet50"}])
    assert exp.dataset.labels == "auto"
    choice = resolve_labels(exp, files)
    assert exp.dataset.labels is False and choice["labels"] is False and choice["chosen_by"] == "auto"
    assert (
        choice["text"].startswith("Labels: none (auto: folders are not used as labels") and "Camera" in choice["text"]
    )
    exp = _exp(camera, True)  # an explicit choice is kept
    assert resolve_labels(exp, files)["text"] == "Labels: folder names (set in the config: dataset.labels: true)."
    assert exp.dataset.labels is True
    objects = _folder(tmp_path / "objects", CLASSES)
    exp = _exp(objects, "auto")
    assert resolve_labels(exp, sorted(objects.rglob("*.jpg")))["labels"] is True and exp.dataset.labels is True
    exp = _exp(camera, "auto", verdict={"metric": "p_at_k"})
    with pytest.raises(ConfigError, match="p_at_k needs folder labels, and folders are not used as labels"):
        resolve_labels(exp, files)


def test_run_on_the_written_file_reaches_a_verdict_offline(tmp_path, monkeypatch, trained_dir, models_dir, redis_url):
    """A camera-style folder (copies as ground truth), run offline. For speed the models are the cached trained
    Lite0 and a random-weights ResNet50 from the test cache instead of Lite0 + Lite2 converted here."""
    for var in ("ONNX_SEARCH_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("ONNX_SEARCH_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "phone", CAMERA[:3], per=4)
    (root / "Camera" / "IMG_0002.HEIC").write_bytes(b"not really")  # HEIC: decoded, or listed with its reason
    (root / "Camera" / "IMG_0003.CR2").write_bytes(b"raw")
    monkeypatch.chdir(tmp_path)
    out = init_experiment(root, progress=False)
    cfg = yaml.safe_load(out.path.read_text())
    cfg["models_dir"] = str(trained_dir)
    cfg["models"] = [{"name": "efficientnet-lite0", "weights": "imagenet"}, {"name": "resnet50", "weights": "random"}]
    cfg["store"] = {"redis_url": redis_url, "namespace": "init-test"}
    cfg["cost"] = {"images": 2, "repeats": 1}
    cfg["queries"]["augment"]["transforms"] = ["crop", "hflip", "grayscale"]
    out.path.write_text(yaml.safe_dump(cfg))
    from onnx_search.experiment.run import run_experiment

    run = run_experiment(out.path, progress=False)
    assert "## Verdict" in run.summary_md
    assert "Labels: none (set in the config: dataset.labels: false)." in run.summary_md
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["labels"]["labels"] is False and results["label_counts"] == {}
    skipped = {Path(s["path"]).name: s["reason"] for s in json.loads((run.run_dir / "skipped.json").read_text())}
    assert "camera raw" in skipped["IMG_0003.CR2"]
    assert skipped["IMG_0002.HEIC"]  # a decode failure (not a real HEIC), or no decoder: listed either way
    assert f"listed with reasons in {run.run_dir / 'skipped.json'}" in run.summary_md
