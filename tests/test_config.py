import shutil
from pathlib import Path

import pytest

from onnx_search.config import ConfigError, load_experiment
from onnx_search.synth import generate_labelled_set

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
experiment: t
dataset:
  root: imgs
models:
  - name: vgg16
    weights: random
queries:
  sample: 3
"""


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(cwd, text):
    p = cwd / "exp.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_validates(config, tmp_path, monkeypatch):
    generate_labelled_set(tmp_path / "demo" / "images", per_class=2, size=32)
    shutil.copy(REPO / "configs" / config, tmp_path / config)
    monkeypatch.chdir(tmp_path)
    for var in ("PHOTOS", "MILVUS_URI", "MILVUS_TOKEN", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    exp = load_experiment(tmp_path / config)
    assert exp.models and exp.top_k >= 1


def test_good_config_and_defaults(cwd):
    exp = load_experiment(write(cwd, GOOD))
    assert exp.top_k == 10 and exp.store.metric == "COSINE" and exp.models[0].providers == ["auto"]
    assert exp.stores_dir == Path("data/t") and exp.run_dir == Path("runs/t")


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            GOOD.replace("  sample: 3", "  sample: 3\n  exclude_slef: true"),
            r"exp.yaml:9: queries.exclude_slef: unknown key",
        ),
        (GOOD + "top_k: lots\n", r"exp.yaml:9: top_k: Input should be a valid integer"),
        (GOOD + "top_k: 0\n", r"exp.yaml:9: top_k: Input should be greater than or equal to 1"),
        (GOOD.replace("vgg16", "vgg17"), r"exp.yaml:5: models.0.name: .*unknown model 'vgg17'"),
        (GOOD.replace("root: imgs", "root: nowhere"), r"dataset.root: folder nowhere does not exist"),
        (GOOD.replace("weights: random", "weights: mine.h5"), r"weights: mine.h5 is neither"),
        (GOOD.replace("  sample: 3", "  sample: 3\n  folder: imgs"), r"give exactly one of sample, folder, paths"),
        (GOOD + "store:\n  metric: EUCLID\n", r"exp.yaml:10: store.metric"),
        (GOOD + "store:\n  redis_url: ${NO_SUCH_VAR_X}\n", r"store.redis_url: environment variable NO_SUCH_VAR_X"),
    ],
)
def test_bad_configs_name_key_and_line(cwd, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_experiment(write(cwd, text))


def test_env_interpolation_with_default(cwd, monkeypatch):
    monkeypatch.setenv("MY_REDIS", "redis://:pw@127.0.0.1:6390/2")
    exp = load_experiment(write(cwd, GOOD + "store:\n  redis_url: ${MY_REDIS}\n  namespace: ${NS:-fallback}\n"))
    assert exp.store.redis_url == "redis://:pw@127.0.0.1:6390/2" and exp.store.namespace == "fallback"


def test_missing_file_and_bad_yaml(cwd):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(cwd / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(write(cwd, "experiment: [unclosed\n"))
