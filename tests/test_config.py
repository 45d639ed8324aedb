import shutil
from pathlib import Path

import pytest

from onnx_search.errors import ConfigError
from onnx_search.experiment.loader import load_experiment
from onnx_search.synth import generate_demo_set

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
    generate_demo_set(tmp_path / "demo" / "images", per_class=2, size=32)
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
        (GOOD.replace("  sample: 3", "  sample: 3\n  folder: imgs"), r"give only one of sample, folder, paths"),
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


def test_yaml_syntax_error_names_file_line_and_column(cwd):
    text = GOOD.replace("  sample: 3", "  sample: [3\n  folder: x")
    with pytest.raises(ConfigError) as err:
        load_experiment(write(cwd, text))
    msg = str(err.value)
    assert str(cwd / "exp.yaml") in msg and "<unicode string>" not in msg
    assert f"{cwd / 'exp.yaml'}:9:9: not valid YAML: expected ',' or ']'" in msg  # the ':' that breaks the list
    assert msg.count("\n") == 0


@pytest.mark.parametrize("payload", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "experiment: caf\xe9\n".encode("latin-1")])
def test_binary_or_non_utf8_file_is_a_one_line_error_naming_it(cwd, payload):
    p = cwd / "exp.yaml"
    p.write_bytes(payload)
    with pytest.raises(ConfigError) as err:
        load_experiment(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)
    from tests.helpers import run_cli

    r = run_cli("run", p, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(p) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_queries_section_may_be_left_out(cwd):
    exp = load_experiment(write(cwd, GOOD.replace("queries:\n  sample: 3\n", "")))
    assert exp.queries.sampled and exp.queries.sample is None and exp.queries.exclude_self


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_queries_enough_images_for_its_verdict(config, tmp_path, monkeypatch):
    generate_demo_set(tmp_path / "demo" / "images", size=32)  # the demo's own set (what ${PHOTOS:-...} falls back to)
    shutil.copy(REPO / "configs" / config, tmp_path / config)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PHOTOS", raising=False)
    exp = load_experiment(tmp_path / config)
    images = sum(1 for p in exp.dataset.root.rglob("*") if p.is_file())
    n = images if exp.queries.sample == "all" else exp.queries.sample
    assert n is not None and 48 <= n <= images, f"{config}: {n} queries of {images} images"


def test_queries_sample_all_queries_every_catalogued_image_and_only_all(cwd):
    from onnx_search.experiment.queries import select_queries

    files = [cwd / "imgs" / f"{n}.jpg" for n in (3, 1, 2)]
    exp = load_experiment(write(cwd, GOOD.replace("sample: 3", "sample: all")))
    assert select_queries(exp, files) == sorted(files)
    assert len(select_queries(load_experiment(write(cwd, GOOD.replace("sample: 3", "sample: 2"))), files)) == 2
    many = [cwd / "imgs" / f"{n}.jpg" for n in range(80)]  # no query source named: a seeded sample of 50
    assert len(select_queries(load_experiment(write(cwd, GOOD.replace("queries:\n  sample: 3\n", ""))), many)) == 50
    with pytest.raises(ConfigError, match="queries.sample"):
        load_experiment(write(cwd, GOOD.replace("sample: 3", "sample: every")))


def test_index_section_and_cli_flags_share_one_vocabulary(cwd):
    from onnx_search.cli import build_parser
    from onnx_search.cli.common import store_settings

    text = GOOD + "store:\n  metric: L2\n  index: {type: IVF_FLAT, params: {nlist: 8}, search: {nprobe: 4}}\n"
    exp = load_experiment(write(cwd, text))
    from_yaml = exp.store.settings(Path("data"), "t")
    args = build_parser().parse_args(
        [
            "check",
            "--metric",
            "L2",
            "--index",
            "IVF_FLAT",
            "--index-params",
            '{"params": {"nlist": 8}, "search": {"nprobe": 4}}',
        ]
    )
    from_cli = store_settings(args)
    assert from_cli.index == from_yaml.index and from_cli.metric == from_yaml.metric == "L2"
    with pytest.raises(ConfigError, match="nprobe"):
        load_experiment(write(cwd, GOOD + "store:\n  index: {type: HNSW, search: {nprobe: 4}}\n"))
    bad = build_parser().parse_args(["check", "--index", "HNSW", "--index-params", '{"search": {"nprobe": 4}}'])
    with pytest.raises(ConfigError, match="nprobe"):
        store_settings(bad)
