"""Shared fixtures: models converted once per session (real tf2onnx, random weights), image folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Converted test models are cached across runs (conversion is slow and needs ~7 GB); the converter's own
# up-to-date check decides whether a cached file can be reused, so a stale file is never used.
MODEL_CACHE = Path(os.environ.get("ONNX_SEARCH_TEST_MODELS", REPO / ".cache" / "test-models"))
TEST_SEED = 0


def cli_command(*args) -> list[str]:
    """``python -m onnx_search.cli ARGS`` as an argv list (arguments turned into strings)."""
    return [sys.executable, "-m", "onnx_search.cli", *map(str, args)]


def run_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, capturing its text output."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from onnx_search.convert import convert_model

    for name in ("resnet50", "vgg16"):
        convert_model(name, MODEL_CACHE, weights="random", seed=TEST_SEED)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def embedders(models_dir):
    from onnx_search.runner import OnnxEmbedder, RunnerOptions

    opts = RunnerOptions(providers=["cpu"])
    return {n: OnnxEmbedder(models_dir / f"{n}.onnx", opts) for n in ("resnet50", "vgg16")}


@pytest.fixture(scope="session")
def labelled_set(tmp_path_factory) -> Path:
    from onnx_search.synth import generate_labelled_set

    root = tmp_path_factory.mktemp("labelled")
    generate_labelled_set(root, per_class=4, classes=("circles", "stripes", "checkers"), size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server started for the test session, stopped at its end."""
    from onnx_search.redis_server import LocalRedis

    server = LocalRedis(tmp_path_factory.mktemp("redis-data"))
    client = server.start()
    yield client
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    kw = redis_server.connection_pool.connection_kwargs
    return f"redis://:{kw['password']}@127.0.0.1:{kw['port']}/0"


@pytest.fixture
def make_stores(redis_server, tmp_path):
    """Factory of Stores on the shared Redis (fresh namespace) and a fresh Milvus Lite folder."""
    import uuid

    from onnx_search.catalog import Catalog
    from onnx_search.ingest import Stores
    from onnx_search.stores import connect_milvus
    from onnx_search.vectors import IndexConfig, VectorStore

    made = {}

    def make(metric="COSINE", index="FLAT", namespace=None, data_dir=None):
        ns = namespace or f"test:{uuid.uuid4().hex[:8]}"
        d = data_dir or tmp_path / "data"
        key = str(d)
        if key not in made:
            made[key] = connect_milvus(None, d)
        return Stores(
            Catalog(redis_server, ns), VectorStore(made[key]), ns.replace(":", "_"), IndexConfig(metric, index)
        )

    yield make
    for c in made.values():
        c.close()
