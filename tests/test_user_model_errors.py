"""The user's own model, issue 24 section 3: every bad input is one line (exit 2) naming the file and the fix,
with data_dir and models_dir byte-identical and no redis-server started; models are converted before any store
is opened; a refused rerun leaves the old .onnx; ``--rebuild`` re-embeds only the changed model; a factory's
own weights are labelled so and the files it reads are tracked; factory modules and paths follow the YAML.

The many bad inputs run in ONE child process (``HARNESS``) that calls the CLI's ``main`` per case, so the
CLI's imports are paid once; conversions still run in their own children, as for a user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_TORCH_NET, USER_RECIPE, cli_command, foreign_model

REPO = Path(__file__).resolve().parents[1]
RECIPE = USER_RECIPE
MYNETS = (
    "\nfrom pathlib import Path\n"
    + TINY_TORCH_NET
    + """

def make_raises():
    raise RuntimeError("the factory's own bug")


def make_fixed():  # takes 16x16 inputs only
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))


class Svd(torch.nn.Module):  # an operator torch.onnx cannot export
    def forward(self, x):
        f = x.mean(dim=(2, 3))
        return torch.linalg.svd(f.T @ f)[0]


def make_svd():
    return Svd()


def make_self():  # loads its own checkpoint, beside this module
    net = Net()
    net.load_state_dict(torch.load(Path(__file__).with_name("ckpt.pth"), weights_only=True))
    return net
"""
)

HARNESS = r"""
import contextlib, hashlib, io, json, logging, os, subprocess, sys, traceback
from pathlib import Path
from onnx_search.cli import main

def tree(p):
    p = Path(p)
    if not p.exists():
        return "absent"
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        h.update(str(f.relative_to(p)).encode() + b"\0")
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()

out = []
for case in json.loads(Path(sys.argv[1]).read_text()):
    before = [tree(case["data_dir"]), tree(case["models_dir"])]
    os.chdir(case["cwd"])
    logging.root.handlers.clear()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(case["argv"])
        except SystemExit as exc:
            rc = exc.code
        except BaseException:
            rc, _ = "raised", err.write(traceback.format_exc())
    redis = subprocess.run(["pgrep", "-f", case["data_dir"]], capture_output=True, text=True).stdout.strip()
    after = [tree(case["data_dir"]), tree(case["models_dir"])]
    out.append({"id": case["id"], "rc": rc, "stderr": err.getvalue(), "same": before == after, "redis": redis})
Path(sys.argv[2]).write_text(json.dumps(out))
"""


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The user's files: a factory module beside the experiment folder, state dicts good and bad, ONNX files good
    and bad (garbage, truncated, a fixed batch of 1), a corrupt .keras, and a few images."""
    import torch

    from onnx_search.synth import generate_labelled_set

    root = tmp_path_factory.mktemp("user-errors")
    exp = root / "exp"
    exp.mkdir()
    (exp / "mynets.py").write_text(MYNETS)
    sys.path.insert(0, str(exp))
    try:
        import mynets

        torch.manual_seed(5)
        net = mynets.make().eval()
    finally:
        sys.path.remove(str(exp))
        sys.modules.pop("mynets", None)
    state = net.state_dict()
    torch.save(state, exp / "net.pth")
    torch.save(state, exp / "ckpt.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, exp / "missing.pth")
    torch.save(state | {"extra.weight": torch.zeros(2)}, exp / "extra.pth")
    (exp / "garbage.pth").write_bytes(b"this is no checkpoint\n" * 20)
    foreign_model(exp / "bare.onnx", 32)
    (exp / "garbage.onnx").write_bytes(np.random.default_rng(0).bytes(3000))
    (exp / "truncated.onnx").write_bytes((exp / "bare.onnx").read_bytes()[:75])
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(exp / "fixed1.onnx"), dynamo=False)
    (exp / "corrupt.keras").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    images = root / "images"
    generate_labelled_set(images, per_class=2, classes=("circles", "stripes"), size=48, seed=3)
    models = root / "models"
    models.mkdir()
    foreign_model(models / "resnet50.onnx", 32)  # a registry model's file a user model must never overwrite
    return {"root": root, "exp": exp, "images": images, "models": models, "net": net}


def _yaml(kit, case: str, entry: str, extra: str = "") -> Path:
    """An experiment file in the experiment folder; its data_dir is the case's own (never made, if all is well)."""
    cfg = kit["exp"] / f"{case}.yaml"
    lines = [
        f"experiment: {case}",
        f"output: {kit['root'] / 'runs'}",
        f"data_dir: {kit['root'] / 'data' / case}",
        f"models_dir: {kit['models']}",
        "top_k: 2",
        f"dataset: {{root: {kit['images']}}}",
        "models:",
        f"  - {entry}",
        "queries: {sample: 2}",
        "cost: null",
    ]
    cfg.write_text("\n".join(lines) + "\n" + extra)
    return cfg


T = 'source: torch, factory: "mynets:{f}", recipe: {r}'
R = json.dumps(RECIPE)
# (case, model entry, what the one line must say)
RUN_CASES = [
    ("import-fails", T.format(f="nothere", r=R), "cannot be imported: AttributeError"),
    ("factory-raises", T.format(f="make_raises", r=R), "failed: RuntimeError: the factory's own bug; fix the factory"),
    ("missing-keys", T.format(f="make", r=R) + ", weights: missing.pth", "2 missing keys"),
    ("extra-keys", T.format(f="make", r=R) + ", weights: extra.pth", "1 unexpected ['extra.weight']"),
    ("garbage-pth", T.format(f="make", r=R) + ", weights: garbage.pth", "garbage.pth is not a state dict torch can"),
    ("wrong-size", T.format(f="make_fixed", r=R), "cannot take the recipe's 32x32 NCHW input"),
    ("4d-output", T.format(f="make", r=R) + ", layer: conv", "not one vector per image; pool it"),
    ("not-exportable", T.format(f="make_svd", r=R), "torch.onnx.export cannot export the factory's model"),
    ("corrupt-keras", f"source: keras, file: corrupt.keras, recipe: {R}", "corrupt.keras is not a Keras model file"),
    ("onnx-no-recipe", "source: onnx, file: bare.onnx", "bare.onnx has no onnx-search metadata, so give its recipe"),
    ("garbage-onnx", f"source: onnx, file: garbage.onnx, recipe: {R}", "garbage.onnx is not an ONNX model"),
    ("truncated-onnx", f"source: onnx, file: truncated.onnx, recipe: {R}", "truncated.onnx is not an ONNX model"),
    ("fixed-batch", f"source: onnx, file: fixed1.onnx, recipe: {R}", "fixed1.onnx has a fixed batch of 1"),
    ("mean-2", T.format(f="make", r=json.dumps(RECIPE | {"mean": [0.5, 0.5]})), "mean must be a list of 3"),
    ("mean-4", T.format(f="make", r=json.dumps(RECIPE | {"mean": [0.5] * 4})), "mean must be a list of 3"),
    ("mean-str", T.format(f="make", r=json.dumps(RECIPE | {"mean": "0.5"})), "mean must be a list of 3 numbers"),
    ("crop-neg", T.format(f="make", r=json.dumps(RECIPE | {"crop_pct": -1})), "crop_pct -1 is out of range"),
    ("crop-5", T.format(f="make", r=json.dumps(RECIPE | {"crop_pct": 5})), "crop_pct 5 is out of range"),
    ("size-float", T.format(f="make", r=json.dumps(RECIPE | {"input_size": 224.7})), "input_size must be a whole"),
    ("size-huge", T.format(f="make", r=json.dumps(RECIPE | {"input_size": 100000})), "input_size 100000 is out of"),
    ("std-0", T.format(f="make", r=json.dumps(RECIPE | {"std": [0, 1, 1]})), "std must be > 0"),
    ("ignored-mean", T.format(f="make", r=json.dumps(RECIPE | {"preprocess": "torch"})), "would be ignored by"),
    ("unknown-source", f"source: tensorflow, file: bare.onnx, recipe: {R}", "source: Input should be 'torch'"),
    ("registry-name", f"name: resnet50, source: onnx, file: bare.onnx, recipe: {R}", "is a registry model's name"),
    ("keras-weights", f"source: keras, file: corrupt.keras, weights: net.pth, recipe: {R}", "weights is for source"),
]
CONVERT_CASES = [
    ("garbage-onnx", ["--source", "onnx", "--file", "garbage.onnx", "--recipe", R], "garbage.onnx is not an ONNX"),
    ("truncated-onnx", ["--source", "onnx", "--file", "truncated.onnx", "--recipe", R], "truncated.onnx is not an"),
    (
        "garbage-pth",
        ["--source", "torch", "--factory", "mynets:make", "--weights", "garbage.pth", "--recipe", R],
        "garbage.pth is not a state dict torch can read",
    ),  # fmt: skip
    ("fixed-batch", ["--source", "onnx", "--file", "fixed1.onnx", "--recipe", R], "export it with a dynamic batch"),
    ("corrupt-keras", ["--source", "keras", "--file", "corrupt.keras", "--recipe", R], "is not a Keras model file"),
    (
        "missing-recipe",
        ["--source", "onnx", "--file", "bare.onnx", "--recipe", "missing.json"],
        "--recipe: file missing.json does not exist",
    ),  # fmt: skip
    (
        "mean-str",
        ["--source", "onnx", "--file", "bare.onnx", "--recipe", json.dumps(RECIPE | {"mean": "0.5"})],
        "mean must be a list of 3 numbers",
    ),  # fmt: skip
    (
        "keras-weights",
        ["--source", "keras", "--file", "corrupt.keras", "--weights", "net.pth", "--recipe", R],
        "--weights is the state dict of a --source torch model",
    ),  # fmt: skip
    ("registry-name", ["--source", "onnx", "--file", "bare.onnx", "--recipe", R], "is a registry model's name"),
]


def _clean_env() -> dict:
    """The environment of a user's shell: the user's folder is not on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env | {"PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def outcomes(kit, tmp_path_factory):
    """Every bad input through ``run`` and ``convert`` in one child process; its record per case."""
    cases, work = [], tmp_path_factory.mktemp("harness")
    elsewhere = work / "elsewhere"  # `run` from another folder: the factory module is found beside the YAML
    elsewhere.mkdir()
    for case, entry, _ in RUN_CASES:
        name = "" if "name:" in entry else "name: mine, "
        cfg = _yaml(kit, case, "{" + name + entry + "}")
        data = str(kit["root"] / "data" / case)
        cases.append({"id": f"run:{case}", "argv": ["run", str(cfg), "--quiet"], "cwd": str(elsewhere),
                      "data_dir": data, "models_dir": str(kit["models"])})  # fmt: skip
    for case, args, _ in CONVERT_CASES:
        model = "resnet50" if case == "registry-name" else "mine"
        argv = ["convert", "--model", model, "--models-dir", str(kit["models"]), *args]
        cases.append({"id": f"convert:{case}", "argv": argv, "cwd": str(kit["exp"]),
                      "data_dir": str(kit["root"] / "data" / "convert"), "models_dir": str(kit["models"])})  # fmt: skip
    (work / "cases.json").write_text(json.dumps(cases))
    (work / "harness.py").write_text(HARNESS)
    subprocess.run(
        [sys.executable, str(work / "harness.py"), str(work / "cases.json"), str(work / "out.json")],
        check=True, env=_clean_env(), timeout=600, cwd=str(elsewhere),
    )  # fmt: skip
    return {r["id"]: r for r in json.loads((work / "out.json").read_text())}


@pytest.mark.parametrize(
    ("case", "message"),
    [(f"run:{c}", m) for c, _, m in RUN_CASES] + [(f"convert:{c}", m) for c, _, m in CONVERT_CASES],
)
def test_bad_user_model_is_one_line_exit_2_and_writes_nothing(outcomes, case, message):
    r = outcomes[case]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2 and len(lines) == 1, r["stderr"]
    assert message in lines[0] and "Traceback" not in r["stderr"], lines[0]
    assert r["same"], f"{case}: data_dir or models_dir changed"
    assert not r["redis"], f"{case}: a redis-server was left running: {r['redis']}"


def test_recipe_is_validated_once_for_every_route(tmp_path):
    """The same schema for a YAML entry, --recipe and the recipe read back from an annotated .onnx file."""
    from onnx_search.errors import ConfigError
    from onnx_search.models.convert import convert_model
    from onnx_search.models.recipe import write_metadata
    from onnx_search.models.user import user_spec

    bad = foreign_model(tmp_path / "annotated.onnx", 32)
    write_metadata(bad, {"input_size": 32, "preprocess": "torch", "mean": [0.1, 0.2, 0.3], "layout": "NHWC"})
    with pytest.raises(ConfigError, match="mean would be ignored by preprocess torch"):
        user_spec("ann", "onnx", file=str(bad))
    spec = user_spec("ok", "onnx", RECIPE | {"crop_pct": 1, "input_size": 2048}, file=str(bad))
    assert spec.crop_pct == 1.0 and spec.input_size == 2048
    with pytest.raises(ConfigError, match=r"unknown field 'size'; recipe: \{input_size"):
        convert_model("x", tmp_path / "m", user={"source": "onnx", "file": str(bad), "recipe": {"size": 3}})
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def good_run(kit, redis_url_module, tmp_path_factory):
    """A successful run from ANOTHER folder: a self-loading factory beside the YAML (its checkpoint listed in
    ``reads``) and a bare .onnx, both given by paths relative to the YAML file."""
    entries = (
        '{name: selfish, source: torch, factory: "mynets:make_self", reads: [ckpt.pth], layer: pool, '
        f"recipe: {R}, providers: [cpu]}}\n"
        f"  - {{name: plain, source: onnx, file: bare.onnx, recipe: {R}, providers: [cpu]}}"
    )
    cfg = _yaml(kit, "good", entries, f'store: {{redis_url: "{redis_url_module}", namespace: h4-good}}\n')
    cfg.write_text(cfg.read_text().replace(str(kit["models"]), str(kit["root"] / "good-models")))
    elsewhere = tmp_path_factory.mktemp("cwd")
    r = subprocess.run(
        cli_command("run", cfg, "--quiet"), capture_output=True, text=True, cwd=elsewhere, env=_clean_env(), timeout=600
    )
    return {"cfg": cfg, "first": r, "models": kit["root"] / "good-models", "data": kit["root"] / "data" / "good"}


def test_run_imports_the_factory_beside_the_yaml_and_labels_its_own_weights(good_run):
    from onnx_search.models.recipe import read_metadata_file

    r = good_run["first"]
    assert r.returncode == 0, r.stderr
    meta = read_metadata_file(good_run["models"] / "selfish.onnx")
    assert meta["weights"] == "factory:0", meta["weights"]
    assert any(k.endswith("ckpt.pth") for k in meta["request"]["inputs"])  # the file it reads is tracked
    assert "RANDOM" not in r.stdout and "selfish" not in r.stderr


def test_cwd_is_searched_first_for_the_factory_by_the_console_script(kit, tmp_path):
    """``onnx-search run`` from the folder holding the module (YAML elsewhere) imports it in parent and child."""
    cfg = tmp_path / "x.yaml"
    cfg.write_text(_yaml(kit, "cwd-rule", '{name: m, source: torch, factory: "mynets:make_raises", recipe: ' + R + "}")
                   .read_text())  # fmt: skip
    script = Path(sys.executable).with_name("onnx-search")
    r = subprocess.run([script, "run", cfg], capture_output=True, text=True, cwd=kit["exp"], env=_clean_env())
    assert r.returncode == 2 and "failed: RuntimeError: the factory's own bug" in r.stderr, r.stderr


def test_a_refused_rerun_keeps_the_file_and_rebuild_re_embeds_only_the_changed_model(kit, good_run, capfd):
    import torch

    from onnx_search.errors import ModelChangedError
    from onnx_search.experiment.run import run_experiment

    assert good_run["first"].returncode == 0, good_run["first"].stderr
    selfish = good_run["models"] / "selfish.onnx"
    before = selfish.read_bytes()
    state = {k: v + 0.5 for k, v in kit["net"].state_dict().items()}
    torch.save(state, kit["exp"] / "ckpt.pth")  # the checkpoint the factory reads changes
    with pytest.raises(ModelChangedError, match="selfish.onnx was left as it was"):
        run_experiment(good_run["cfg"], progress=False)
    assert selfish.read_bytes() == before  # the refused run did not replace the file
    run_experiment(good_run["cfg"], progress=False, rebuild=True)
    assert selfish.read_bytes() != before
    ingest = json.loads((good_run["data"] / "reports" / "ingest.json").read_text())
    assert ingest["embedded"] == {"selfish": 4, "plain": 0}, ingest["embedded"]
    capfd.readouterr()
    run_experiment(good_run["cfg"], progress=True)  # nothing to convert or embed: no empty progress bar
    assert "embed" not in capfd.readouterr().err


def test_an_unexpected_error_converting_a_user_model_is_one_line_naming_it():
    """The safety net under the backends' own messages: a foreign exception from the child, for a user model."""
    from onnx_search.models.isolated import _rebuild_error

    err = {"ours": False, "module": "builtins", "qualname": "KeyError", "message": "'conv'\nmore", "traceback": "TB"}
    text = str(_rebuild_error(err, "mine"))
    assert text.startswith("mine: KeyError while converting your model: 'conv'; run with -v") and "\n" not in text
    assert "TB" in str(_rebuild_error(err))  # a registry model's failure is still reported as our bug
