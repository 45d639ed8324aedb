"""Shared fixtures: models converted once per session (real tf2onnx, random weights), image folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Converted test models are cached across runs (conversion is slow and needs ~7 GB); the converter's own
# up-to-date check decides whether a cached file can be reused, so a stale file is never used.
MODEL_CACHE = Path(os.environ.get("ONNX_SEARCH_TEST_MODELS", REPO / ".cache" / "test-models"))
TEST_SEED = 0


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
