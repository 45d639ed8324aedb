"""Memory settings that the README's figures depend on: onnxruntime's CPU arena off by default, a conversion child
killed for memory reported in one line with its peak, and each child's peak RSS recorded in a run's cost.json."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from onnx_search.models.session import ModelSession, SessionConfig
from onnx_search.models.tiny import write_pixel_mean_model
from tests.helpers import cli_command
from tests.peak_rss import tree


def test_onnxruntime_cpu_memory_arena_is_off_unless_asked_for(tmp_path):
    """The arena keeps each session's largest activations for good (README: 2,283 -> 1,472 MB for 5 models)."""
    import argparse

    from onnx_search.cli.common import add_session_args, session_config

    path = write_pixel_mean_model(tmp_path / "m.onnx", size=224, like="resnet50")
    parser = argparse.ArgumentParser()
    add_session_args(parser)
    args = parser.parse_args([])  # the CLI's defaults
    for config in (None, SessionConfig(), SessionConfig(["cpu"]), session_config(args)):
        options = ModelSession(path, config).session.get_session_options()
        assert options.enable_cpu_mem_arena is False, config
    asked = ModelSession(path, SessionConfig(["cpu"], memory_arena=True)).session.get_session_options()
    assert asked.enable_cpu_mem_arena is True  # the setting reaches onnxruntime, so the check above can fail


def _conversion_child(parent: int, timeout: float = 120) -> int:
    """The pid of the conversion child under ``parent`` once it holds more than 300 MB (TensorFlow loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in tree(parent)[1:]:
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
                status = open(f"/proc/{pid}/status").read()
            except OSError:
                continue
            hwm = re.search(r"VmHWM:\s+(\d+)", status)
            if b"onnx_search.models.isolated" in cmd and hwm and int(hwm.group(1)) > 300 * 1024:
                return pid
        time.sleep(0.2)
    raise AssertionError("no conversion child above 300 MB appeared")


def test_a_killed_conversion_child_is_one_line_naming_the_model_and_its_peak(tmp_path):
    """SIGKILL (what the OOM killer sends) to the child: the CLI says which model, how, and the peak, in one line."""
    proc = subprocess.Popen(
        cli_command("convert", "--model", "mobilenetv2", "--models-dir", tmp_path, "--weights", "random"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        child = _conversion_child(proc.pid)
        time.sleep(0.5)  # the parent reads the child's peak every 0.1 s: let it see this one
        os.kill(child, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "convert of mobilenetv2 in a child process was killed by signal 9" in err and "out of memory" in err, err
    peak = int(re.search(r"at a peak of at least ([\d,]+) MB", err).group(1).replace(",", ""))
    assert peak >= 300, err
    assert not (tmp_path / "mobilenetv2.onnx").exists()


@pytest.fixture
def run_config(tmp_path, labelled_set, redis_url):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"""\
experiment: childpeak
output: {tmp_path / "runs"}
data_dir: {tmp_path / "data"}
models_dir: {tmp_path / "models"}
top_k: 3
dataset: {{root: {labelled_set}}}
models:
  - name: timm/test_efficientnet
    weights: random
    providers: [cpu]
store: {{redis_url: "{redis_url}", namespace: childpeak}}
queries: {{sample: 3}}
grid_queries: 0
cost: {{images: 4, repeats: 1}}
""")
    return cfg


def test_cost_json_records_each_conversion_childs_own_peak_rss(run_config, tmp_path):
    """A real run converts in a child: cost.json holds that child's peak, measured in the child (torch's memory)."""
    r = subprocess.run(cli_command("run", run_config, "--quiet"), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (run_dir,) = [p for p in (tmp_path / "runs").glob("childpeak*") if (p / "cost.json").is_file()]
    cost = json.loads((run_dir / "cost.json").read_text())
    (child,) = cost["children"]
    assert child["task"] == "convert" and child["model"] == "timm/test_efficientnet" and not child["skipped"], child
    assert child["peak_rss_mb"] > 300, child  # torch and timm were imported there, not in the run's process
    assert 0 < child["seconds"] < 600, child
    assert 100 < cost["peak_rss_mb"], cost["peak_rss_mb"]
    assert json.loads((run_dir / "manifest.json").read_text())["children"] == cost["children"]


def test_make_tests_peak_line_counts_a_grandchilds_memory(tmp_path):
    """tests/peak_rss.py (make test runs under it) sums the whole tree: a grandchild's 400 MB is in the figure."""
    import sys

    grandchild = "import numpy as np, time; a = np.ones(50_000_000); time.sleep(1.5)"  # 400 MB resident
    child = f"import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-c', {grandchild!r}]).returncode)"
    out = tmp_path / "peak.json"
    r = subprocess.run([sys.executable, "tests/peak_rss.py", "--json", str(out), "demo", sys.executable, "-c", child],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    peak = json.loads(out.read_text())
    assert r.stdout.startswith(f"demo peak RSS: {peak['peak_tree_rss_mb']:,} MB"), r.stdout
    assert peak["peak_tree_rss_mb"] >= 400 and peak["peak_process_mb"] >= 380 and peak["max_processes"] >= 2, peak


def test_the_per_test_memory_plugin_sees_a_tests_children_and_what_the_process_keeps(tmp_path):
    """ONNX_SEARCH_TEST_MEMORY's plugin: one line per test, with a child's 400 MB in that test's tree peak and 200 MB
    the test process keeps in its own memory after the test."""
    import sys

    (tmp_path / "test_two.py").write_text(
        "import subprocess, sys\nimport numpy as np\nKEPT = []\n\n"
        "def test_child():\n"
        "    code = 'import numpy as np, time; a = np.ones(50_000_000); time.sleep(1.5)'\n"
        "    assert subprocess.run([sys.executable, '-c', code]).returncode == 0\n\n"
        "def test_kept():\n    KEPT.append(np.ones(25_000_000))\n"
    )
    out = tmp_path / "memory.jsonl"
    code = ("import sys, pytest; sys.path.insert(0, sys.argv[1]); from tests.peak_rss import per_test_memory; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--rootdir', sys.argv[2], sys.argv[2]], "
            "plugins=[per_test_memory(sys.argv[3])]))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, os.getcwd(), str(tmp_path), str(out)], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {row["test"].split("::")[-1]: row for row in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"test_child", "test_kept"}
    child, kept = rows["test_child"], rows["test_kept"]
    assert child["peak_tree_mb"] - child["rss_before_mb"] >= 350, child  # the child's memory is in its test's peak
    assert kept["rss_after_mb"] - kept["rss_before_mb"] >= 180, kept  # what the process keeps shows
    assert all(row["seconds"] >= 0 and row["peak_tree_mb"] >= row["rss_before_mb"] for row in rows.values())


def test_conversion_memory_bench_reports_each_childs_peak(tmp_path):
    from onnx_search.bench.convert_memory import bench_convert_memory

    saved = []
    result = bench_convert_memory(["timm/test_efficientnet"], tmp_path, baseline=["timm/test_efficientnet"],
                                  log=lambda _: None, save=saved.append)  # fmt: skip
    row = result["models"]["timm/test_efficientnet"]
    assert row["source"] == "timm" and 300 < row["peak_rss_mb"] < result["limit_mb"], row
    assert row["parity_max_abs_diff"] < 1e-3 and row["file_mb"] > 0
    # the families view (make bench-families, the README's table): dim, family and img/s from the converted file
    assert row["dim"] > 0 and row["family"] == "CNN" and row["img_s"] > 0 and row["speed_batch"] == 8, row
    assert result["families"] == [{"model": "timm/test_efficientnet"} | {k: row[k] for k in
                                  ("family", "dim", "file_mb", "seconds", "parity_max_abs_diff", "img_s")}]  # fmt: skip
    assert result["with_upb_protobuf"]["timm/test_efficientnet"]["protobuf"] == "upb"
    assert saved[-1]["models"] == result["models"] and result["over_limit"] == {}
    assert list(tmp_path.iterdir()) == []  # the converted files went with their temporary folders
