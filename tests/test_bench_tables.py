"""docs/benchmarks.md from the committed bench results: values are the files' values, two machines are both shown
and labelled, and every committed result holds the hardware record of the machine its folder is named after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onnx_search import provenance as pv
from onnx_search.bench.results import RECORD_KEYS, RESULTS, write_result
from onnx_search.bench.tables import benchmark_markdown, cell, figures, load_results
from onnx_search.errors import OnnxSearchError

REPO = Path(__file__).resolve().parents[1]
AVX2 = "processor : 0\nmodel name : AMD EPYC 7B12 64-Core Processor\nflags : sse2 avx2\n"
VNNI = "processor : 0\nmodel name : Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nflags : avx2 avx512f avx512_vnni\n"


def _result(cpuinfo: str, figures_: dict) -> tuple[str, dict]:
    m = pv.parse_cpuinfo(cpuinfo) | {"cpus": 4, "cpus_usable": 4, "gpus": [], "memory_mb": 16000}
    m["isa_summary"] = pv.isa_summary(m["family"], m["isa"])
    m["slug"] = pv.slug(m)
    rec = {"machine": m, "versions": {"onnxruntime": "1.0"}, "commit": None, "command": "python -m x"}
    return m["slug"], {"what": "speed of a thing", **figures_, **rec}


def _table_rows(page: str, section: str) -> dict[str, list[str]]:
    body = page.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in body.splitlines() if line.startswith("| `")]
    return {r[0].strip(" `"): [c.strip() for c in r[1:]] for r in rows}


def test_two_machines_are_both_shown_labelled_and_their_values_are_the_files_values(tmp_path):
    a_slug, a = _result(AVX2, {"int8": {"img_s": 88.51, "speedup": 1.9}, "runs": [{"p": 0.1}], "ok": True})
    b_slug, b = _result(VNNI, {"int8": {"img_s": 371.1, "speedup": 2.94}, "runs": [{"p": 0.2}]})
    for slug, data in ((a_slug, a), (b_slug, b)):
        path = tmp_path / RESULTS / slug / "embed.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data))
    page = benchmark_markdown(tmp_path)
    assert page == benchmark_markdown(tmp_path)  # deterministic
    rows = _table_rows(page, "embed")
    header = next(line for line in page.split("## embed\n")[1].splitlines() if line.startswith("| figure"))
    assert header == f"| figure | `{a_slug}` | `{b_slug}` |"  # one column per machine, each named
    for key, value in figures({k: v for k, v in a.items() if k != "runs"}).items():
        assert rows[key][0] == cell(value), key
    for key, value in figures({k: v for k, v in b.items() if k != "runs"}).items():
        assert rows[key][1] == cell(value), key
    # a list of records is a table of its own per machine, a row per record
    for slug, p in ((a_slug, "0.1"), (b_slug, "0.2")):
        assert f"`runs` on `{slug}`:\n\n| p |\n|---|\n| {p} |\n" in page
    assert "runs.0.p" not in rows
    assert rows["int8.img_s"] == ["88.51", "371.1"] and rows["ok"] == ["true", "–"]  # missing on one machine: a dash
    assert "machine" not in "".join(rows) and "command" not in rows  # the record labels, it is not a figure
    # each machine labelled with CPU model, cores and ISA flags, and its file named
    label = f"- `{a_slug}`: AMD EPYC 7B12 64-Core Processor, 4 cores, AVX2, no VNNI;"
    assert f"{label} file `bench/results/{a_slug}/embed.json`" in page
    assert f"- `{b_slug}`: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz, 4 cores, AVX2, AVX-512, VNNI (AVX512_VNNI)" in page
    machines = _table_rows(page, "Machines")
    assert machines[a_slug] == ["AMD EPYC 7B12 64-Core Processor", "4", "AVX2, no VNNI", "16000", "none", "–"]
    assert machines[b_slug][:3] == [
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        "4",
        "AVX2, AVX-512, VNNI (AVX512_VNNI)",
    ]


def test_an_emulated_result_is_labelled_as_emulated_where_it_is_named_and_in_the_machines_table(tmp_path):
    """A result measured under an emulator says so beside its machine and in the machines table; a machine with a
    result of its own, not emulated, is shown as itself."""
    slug, data = _result(AVX2, {"x": 1, "emulated": "qemu-x86_64 -cpu Haswell"})
    other_slug, other = _result(VNNI, {"x": 2})
    for name, (s, d) in (("a", (slug, data)), ("a", (other_slug, other))):
        path = tmp_path / RESULTS / s / f"{name}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(d))
    page = benchmark_markdown(tmp_path)
    assert f"- `{slug}`: AMD EPYC 7B12 64-Core Processor, 4 cores, AVX2, no VNNI (emulated: `qemu-x86_64 -cpu " in page
    machines = _table_rows(page, "Machines")
    assert machines[slug][0] == "AMD EPYC 7B12 64-Core Processor (emulated: qemu-x86_64 -cpu Haswell)"
    assert (
        machines[other_slug][0] == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
        and "emulated" not in page.split(f"- `{other_slug}`")[1].split("\n")[0]
    )


def test_write_result_adds_the_record_and_refuses_a_path_as_name(tmp_path):
    path = write_result(tmp_path / "m", "x.json", {"figure": 1.5, "machine": {"stale": True}})
    data = json.loads(path.read_text())
    assert data["figure"] == 1.5 and data["machine"] == pv.machine() and set(RECORD_KEYS) <= set(data)
    assert "hardware_added_later" not in data and len(data["load_average_1_5_15_min"]) == 3
    later = json.loads(write_result(tmp_path, "y.json", {}, hardware_added_later=True).read_text())
    assert later["hardware_added_later"] is True
    with pytest.raises(OnnxSearchError, match="file name ending .json"):
        write_result(tmp_path, "sub/x.json", {})


def test_every_committed_bench_result_holds_the_hardware_record_of_its_folder():
    results = load_results(REPO)
    assert results, "no bench result under bench/results/: the docs' benchmark tables would be empty"
    for name, by_machine in results.items():
        for folder, data in by_machine.items():
            where = f"bench/results/{folder}/{name}.json"
            assert set(RECORD_KEYS) <= set(data), where
            m = data["machine"]
            for key in ("cpu_model", "cpus", "isa", "isa_summary", "memory_mb", "gpus", "onnxruntime", "slug"):
                assert key in m, f"{where}: machine.{key}"
            assert data["versions"].get("onnxruntime") and data["command"].startswith("python "), where
            assert pv.slug(m) == m["slug"] == folder, f"{where}: measured on {m['slug']}, filed under {folder}"


def test_the_committed_benchmarks_page_is_generated_from_the_committed_results():
    page = REPO / "docs" / "benchmarks.md"
    assert page.read_text(encoding="utf-8") == benchmark_markdown(REPO), "run: python -m onnx_search.cli.docsgen"


def test_the_test_run_record_reads_pytests_last_closing_line(tmp_path):
    from onnx_search.bench.test_run import main, pytest_closing

    log = "\n".join(
        [
            "====================== 1 passed, 646 deselected in 17.94s ======================",
            "tests/test_x.py ....",
            "========== 645 passed, 2 failed, 2 deselected, 25 warnings in 790.10s (0:13:10) ==========",
            "make test peak RSS: 5,296 MB",
        ]
    )
    assert pytest_closing(log) == {
        "counts": {"passed": 645, "failed": 2, "deselected": 2, "warnings": 25},
        "seconds": 790.1,
    }
    assert pytest_closing("no pytest here") == {}
    peak = tmp_path / "peak.json"
    peak.write_text(json.dumps({"seconds": 900, "peak_tree_rss_mb": 5296, "peak_process_mb": 4433,
                                "exit_status": 0, "sample_every_s": 0.5}))  # fmt: skip
    (tmp_path / "log").write_text(log)
    assert (
        main(["--peak", str(peak), "--log", str(tmp_path / "log"), "--ci-seconds", "1000", "--out", str(tmp_path)]) == 0
    )
    data = json.loads((tmp_path / "make_test.json").read_text())
    assert (data["make_test_seconds"], data["peak_tree_rss_mb"], data["ci_run_seconds_fresh_clone"]) == (
        900,
        5296,
        1000,
    )
    assert data["pytest"]["counts"]["passed"] == 645 and set(RECORD_KEYS) <= set(data)
