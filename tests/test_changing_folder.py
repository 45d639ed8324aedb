"""A photo folder that changes between runs: the INT8 calibration sample holds, deleted files are pruned and
reported, new ones are the only ones embedded, and ``--rebuild`` after deletions works."""

import json
import shutil
from pathlib import Path

import pytest

from onnx_search.errors import ModelChangedError
from onnx_search.ids import content_hash, image_id
from onnx_search.models.variants import (
    CALIBRATION_IMAGES,
    _rank_key,
    calibration_digest,
    calibration_sample,
    sample_holds,
)
from onnx_search.synth import generate_labelled_set

CLASSES = ("circles", "stripes", "checkers", "gradient")


def _folder(root: Path, per_class: int, size: int = 48, seed: int = 5) -> list[Path]:
    return sorted(p.resolve() for p in generate_labelled_set(root, per_class, CLASSES, size=size, seed=seed))


def _rel(paths, root) -> dict[str, Path]:
    return {p.relative_to(root.resolve()).as_posix(): p for p in paths}


def test_the_sample_is_a_seeded_rank_of_relative_paths_that_passes_over_unreadable_files(tmp_path):
    root = tmp_path / "a"
    files = _folder(root, 6)  # 24 files
    sample = calibration_sample(files, 8, seed=0, root=root)
    ranked = sorted(files, key=lambda p: _rank_key(p, root.resolve(), 0))
    assert sorted(p for p, _ in sample) == sorted(ranked[:8])  # the first 8 by the seeded rank
    assert [h for _, h in sample] == sorted(h for _, h in sample)  # fed in content order
    assert all(h == content_hash(p.read_bytes()) for p, h in sample)
    # the rank is by the path relative to the root: the same folder elsewhere gives the same files
    moved = tmp_path / "b"
    shutil.copytree(root, moved)
    again = calibration_sample(_folder(moved, 6), 8, seed=0, root=moved)
    assert [(p.relative_to(moved.resolve()), h) for p, h in again] == [
        (p.relative_to(root.resolve()), h) for p, h in sample
    ]
    # another seed draws other files
    assert {p for p, _ in calibration_sample(files, 8, seed=1, root=root)} != {p for p, _ in sample}
    # a file whose header does not read is passed over for the next in rank
    ranked[0].write_bytes(b"\xff\xd8 not a jpeg")
    broken = calibration_sample(files, 8, seed=0, root=root)
    assert ranked[0] not in {p for p, _ in broken} and sorted(p for p, _ in broken) == sorted(ranked[1:9])


def test_adding_or_deleting_files_outside_the_sample_keeps_it(tmp_path):
    root = tmp_path / "photos"
    files = _folder(root, 6)
    sample = calibration_sample(files, 8, seed=0, root=root)
    sampled = {p for p, _ in sample}
    record = [{"path": p.relative_to(root.resolve()).as_posix(), "sha": h} for p, h in sample]
    digest = calibration_digest([h for _, h in sample], 0, 8)
    grown = _folder(root, 11)  # 20 files more
    kept = [p for p in grown if p in sampled or p not in set(files)]
    gone = [p for p in files if p not in sampled][:10]
    now = [p for p in grown if p not in gone]
    assert len(grown) - len(files) == 20 and len(now) == 34 and not set(gone) & sampled and kept
    held = sample_holds(record, _rel(now, root))
    assert held is not None and sorted(held) == sorted(sample)
    assert calibration_digest([h for _, h in held], 0, 8) == digest


def test_a_recorded_sample_holds_while_half_is_left_and_nothing_sampled_changed(tmp_path):
    """Each part of the rule: deleted sampled files (up to half) keep it, more than half void it, and so does one
    sampled file with other bytes."""
    root = tmp_path / "photos"
    files = _folder(root, 3)  # 12 files
    sample = calibration_sample(files, 8, seed=0, root=root)
    record = [{"path": p.relative_to(root.resolve()).as_posix(), "sha": h} for p, h in sample]
    current = _rel(files, root)
    sampled = [r["path"] for r in record]
    half = {k: v for k, v in current.items() if k not in sampled[:4]}  # 4 of 8 sampled deleted: holds
    held = sample_holds(record, half)
    assert held is not None and len(held) == 4
    more = {k: v for k, v in current.items() if k not in sampled[:5]}  # 5 of 8 deleted: drawn again
    assert sample_holds(record, more) is None
    assert sample_holds([], current) is None
    edited = current[sampled[0]]
    edited.write_bytes(edited.read_bytes() + b"\0")  # one sampled file with other bytes
    assert sample_holds(record, current) is None
    assert sample_holds(record, {k: v for k, v in current.items() if k != sampled[0]}) is not None  # it, gone


def test_the_digest_covers_the_sampled_contents_the_seed_and_the_size():
    hashes = ["a" * 32, "b" * 32, "c" * 32]
    d = calibration_digest(hashes, 0, 64)
    assert calibration_digest(list(reversed(hashes)), 0, 64) == d  # a set: the order fed is content order
    assert calibration_digest(hashes, 1, 64) != d
    assert calibration_digest(hashes, 0, 32) != d
    assert calibration_digest([*hashes[:2], "d" * 32], 0, 64) != d
    assert calibration_digest(hashes[:2], 0, 64) != d


def _config(base: Path, root: Path, models: Path, redis_url: str) -> Path:
    cfg = base / "changing.yaml"
    cfg.write_text(
        f"experiment: changing\noutput: {base / 'runs'}\ndata_dir: {base / 'data'}\nmodels_dir: {models}\n"
        f"top_k: 3\ndataset: {{root: {root}, labels: false}}\nseed: 0\ngrid_queries: 2\n"
        "models:\n  - {name: efficientnet-lite0, weights: imagenet, variants: [fp32, int8], providers: [cpu]}\n"
        f"store: {{redis_url: '{redis_url}', namespace: changing}}\nqueries: {{sample: 3}}\ncost: null\n"
    )
    return cfg


def _state(cfg: Path) -> dict:
    """The experiment's stores after a run: catalogued paths, each collection's ids, and `check`'s verdict."""
    from onnx_search.experiment.loader import load_experiment
    from onnx_search.store.consistency import check
    from onnx_search.store.stores import open_stores

    exp = load_experiment(cfg)
    stores = open_stores(exp.store.settings(exp.stores_dir, exp.experiment))
    try:
        records = stores.catalog.get_images(stores.catalog.ids())
        ids = {m: stores.vectors.ids(stores.collection(m)) for m in stores.catalog.models()}
        rep = check(stores)
        return {"paths": {r.path for r in records.values()}, "ids": ids, "check_ok": rep.ok, "pending": rep.pending}
    finally:
        stores.close()


def test_a_rerun_after_adding_20_and_deleting_10_requantises_nothing_and_embeds_only_the_new(
    trained_dir, tmp_path, redis_url
):
    from onnx_search.experiment.run import run_experiment
    from onnx_search.models.recipe import read_metadata_file

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained_dir / "efficientnet-lite0.onnx", models / "efficientnet-lite0.onnx")
    root = tmp_path / "photos"
    files = _folder(root, 20)  # 80 files: more than the calibration sample, so some photos are not in it
    cfg = _config(tmp_path, root, models, redis_url)

    first = run_experiment(cfg, progress=False)
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    int8 = Path(manifest["models"]["efficientnet-lite0.int8"]["path"])
    recorded = read_metadata_file(int8)["calibration_sample"]
    assert len(recorded["files"]) == CALIBRATION_IMAGES and recorded["root"] == str(root.resolve())
    sampled = {root.resolve() / r["path"] for r in recorded["files"]}

    # add 20 photos, delete 10: 6 outside the sample and 4 in it (a deleted sampled photo does not void it)
    grown = _folder(root, 25)
    added = sorted(set(grown) - set(files))
    deleted = [p for p in files if p not in sampled][:6] + sorted(sampled)[:4]
    for p in deleted:
        p.unlink()
    second = run_experiment(cfg, progress=False)
    m2 = json.loads((second.run_dir / "manifest.json").read_text())
    variant_children = [c for c in m2["children"] if c["task"] == "variant"]
    assert [(c["skipped"], c["child"], c["path"]) for c in variant_children] == [(True, False, str(int8))]
    assert sorted(models.glob("efficientnet-lite0.int8.*.onnx")) == [int8]  # 0 re-quantised, no stray file
    assert m2["ingest"]["embedded"] == {"efficientnet-lite0": 20, "efficientnet-lite0.int8": 20}  # only the new
    removed = json.loads((second.run_dir / "removed.json").read_text())
    assert removed == sorted(map(str, deleted)) and m2["dataset"]["removed_since_last_run"] == 10
    assert "Removed since the last run: 10 files" in second.summary_md and "removed.json" in second.summary_md
    state = _state(cfg)
    present = {str(p) for p in grown if p not in deleted}
    assert state["paths"] == present and len(present) == 90 and {str(p) for p in added} <= state["paths"]
    want = {image_id(p) for p in present}
    assert state["ids"] == {"efficientnet-lite0": want, "efficientnet-lite0.int8": want}
    assert state["check_ok"] and state["pending"] == {"efficientnet-lite0": 0, "efficientnet-lite0.int8": 0}
    hits = json.loads((second.run_dir / "results.json").read_text())["hits"]
    assert hits and {h["path"] for h in hits} <= present  # no hit points at a deleted photo

    # a sampled photo edited in place and 5 more deleted: a new INT8 (a changed model), refused without
    # --rebuild in one line that says what to do; --rebuild re-embeds it over the pruned catalogue
    edited = sorted(sampled - set(deleted))[0]
    edited.write_bytes(edited.read_bytes() + b"\0")
    more = [p for p in sorted(present) if Path(p) != edited][:5]
    for p in more:
        Path(p).unlink()
    with pytest.raises(ModelChangedError, match=r"changed since collection .*`--rebuild`"):
        run_experiment(cfg, progress=False)
    third = run_experiment(cfg, progress=False, rebuild=True)
    m3 = json.loads((third.run_dir / "manifest.json").read_text())
    assert Path(m3["models"]["efficientnet-lite0.int8"]["path"]) != int8
    assert m3["dataset"]["removed_since_last_run"] == 5  # the refused run stopped before its prune
    state = _state(cfg)
    left = present - set(more)
    assert state["paths"] == left and state["check_ok"]
    assert state["ids"] == {m: {image_id(p) for p in left} for m in ("efficientnet-lite0", "efficientnet-lite0.int8")}


def test_a_query_file_deleted_since_the_last_run_is_skipped_with_that_reason(tmp_path):
    from onnx_search.experiment.loader import load_experiment
    from onnx_search.experiment.queries import REMOVED, skipped_queries

    root = tmp_path / "photos"
    files = _folder(root, 2)
    cfg = _config(tmp_path, root, tmp_path / "models", "redis://127.0.0.1:1/0")
    exp = load_experiment(cfg)
    gone, missing = str(files[0]), str(root / "never.jpg")
    failed = [(gone, "file not found (broken symlink or removed during the run)"), (missing, "file not found")]
    rows = skipped_queries(exp, failed, [gone, str(files[1])])
    assert rows == [{"path": gone, "reason": REMOVED}, {"path": missing, "reason": "file not found"}]
    assert "removed since the last run" in REMOVED
