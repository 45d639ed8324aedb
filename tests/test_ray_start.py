"""Starting a local Ray cluster: a slow raylet (a bare ``Exception`` from ``ray.init``) is retried once with longer
start-up timeouts, then reported as one line. ``ray.init`` is replaced here, so no cluster starts (the real start
is in tests/test_ray.py, inside a loopback-only namespace)."""

from __future__ import annotations

import os

import pytest

from onnx_search.embed import ray_engine
from onnx_search.errors import ClusterUnavailableError

SLOW_RAYLET = "The current node timed out during startup. This could happen because some of the raylet failed"


def _fake_init(monkeypatch, failures: int) -> list[dict]:
    """ray.init that raises as a slow raylet does ``failures`` times; records the start-up env of each call."""
    import ray

    calls: list[dict] = []

    def init(**kwargs):
        calls.append(
            {k: os.environ.get(k) for k in ("RAY_raylet_start_wait_time_s", "RAY_gcs_server_port_wait_time_s")}
        )
        if len(calls) <= failures:
            raise Exception(SLOW_RAYLET)  # what ray/_private/node.py raises

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.delenv("RAY_raylet_start_wait_time_s", raising=False)
    return calls


def test_a_slow_raylet_is_retried_once_with_longer_timeouts(monkeypatch):
    calls = _fake_init(monkeypatch, failures=1)
    ray_engine._start_local(ray_engine.RaySettings(num_cpus=2))
    assert calls == [
        {"RAY_raylet_start_wait_time_s": None, "RAY_gcs_server_port_wait_time_s": None},
        {"RAY_raylet_start_wait_time_s": "120", "RAY_gcs_server_port_wait_time_s": "120"},
    ]
    assert "RAY_raylet_start_wait_time_s" not in os.environ  # the caller's environment is given back


def test_a_cluster_that_never_starts_is_one_line_saying_what_to_do(monkeypatch):
    calls = _fake_init(monkeypatch, failures=2)
    with pytest.raises(ClusterUnavailableError) as err:
        ray_engine._start_local(ray_engine.RaySettings(num_cpus=2))
    assert len(calls) == 2 and "\n" not in str(err.value)
    assert "timed out during startup" in str(err.value) and "--ray-address" in str(err.value)
