"""The whole `run` through the real stores, twice, plus compare, interrupted results and the notebook."""

import json
from pathlib import Path

import pytest

from onnx_search.errors import ConfigError
from onnx_search.experiment.results import load_results, recompare
from onnx_search.experiment.run import run_experiment
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]


def config_text(root, models_dir, out, data, extra=""):
    return f"""\
experiment: twomodels
output: {out}
data_dir: {data}
models_dir: {models_dir}
seed: 7
top_k: 4
dataset:
  root: {root}
models:
  - name: resnet50
    weights: random
    providers: [cpu]
    batch_size: 8
  - name: mobilenetv2
    weights: random
    providers: [cpu]
store:
  redis_url: ${{TEST_REDIS_URL}}
  namespace: exp-test
queries:
  sample: 5
cost: {{images: 4, repeats: 1}}
{extra}"""


@pytest.fixture(scope="module")
def run(labelled_set, models_dir, tmp_path_factory, redis_server):
    kw = redis_server.connection_pool.connection_kwargs
    url = f"redis://:{kw['password']}@127.0.0.1:{kw['port']}/0"
    base = tmp_path_factory.mktemp("exp")
    cfg = base / "exp.yaml"
    sweep = "sweep:\n  - {type: HNSW, params: {M: 8}, search: {ef: 16}}\n"
    cfg.write_text(config_text(labelled_set, models_dir, base / "runs", base / "data", sweep))
    mp = pytest.MonkeyPatch()
    mp.setenv("TEST_REDIS_URL", url)
    first = run_experiment(cfg, progress=False)
    snapshot = {n: _stable(first.run_dir / n) for n in STABLE_FILES}
    second = run_experiment(cfg, progress=False)
    fresh_cfg = base / "fresh.yaml"  # the same experiment ingested from scratch: new Milvus folder, new namespace
    text = config_text(labelled_set, models_dir, base / "runs-fresh", base / "data-fresh", sweep)
    fresh_cfg.write_text(text.replace("namespace: exp-test", "namespace: exp-fresh"))
    fresh = run_experiment(fresh_cfg, progress=False)
    yield {
        "cfg": cfg,
        "first": snapshot,
        "out": second,
        "fresh": fresh,
        "password": kw["password"],
        "base": base,
        "url": url,
    }
    mp.undo()


STABLE_FILES = ("results.json", "comparison.json", "per_query.csv", "pairs.csv", "summary.md")


def _stable(path: Path) -> str:
    """A result file as text, less what is measured rather than computed: the cost figures, the timing columns of
    the sweep and of the family table, the data folder named in the summary's line about skipped files, and the
    verdict's pick and text (the cheapest of the tied models is a speed measurement)."""
    text = path.read_text()
    if path.name == "comparison.json":
        data = {k: v for k, v in json.loads(text).items() if k != "cost"}
        for key in ("pick", "text"):
            data["evidence"]["verdict"].pop(key)
        return json.dumps(data, sort_keys=True)
    if path.name != "summary.md":
        return text
    text = text.split("## Verdict")[0] + "top_k =" + text.split("\ntop_k =", 1)[1]
    head, _, sweep = text.partition("## Index sweep")
    head = head.partition("## Cost")[0]
    head = "\n".join(line.split(" (listed with reasons in")[0] for line in head.splitlines())
    before, title, families = head.partition("## Models by family")
    table, rest = families.split("\n## ", 1) if "\n## " in families else (families, "")
    # the family table's last two columns (img/s, query p50) are timings
    table = "\n".join("|".join(line.split("|")[:7]) if line.startswith("|") else line for line in table.splitlines())
    head = before + title + table + ("\n## " + rest if rest else "")
    rows = ["|".join(line.split("|")[:6]) for line in sweep.splitlines()]  # model, index, params, search, recall
    return head + "\n".join(rows)


def test_run_writes_every_result_file(run):
    out = run["out"]
    names = {p.name for p in out.run_dir.iterdir()}
    assert {
        "results.json",
        "comparison.json",
        "per_query.csv",
        "pairs.csv",
        "summary.md",
        "result_grid.png",
        "manifest.json",
    } <= names
    r = json.loads((out.run_dir / "results.json").read_text())
    assert r["models"] == ["resnet50", "mobilenetv2"] and len(r["queries"]) == 5
    assert len(r["hits"]) == 5 * 2 * 4
    for h in r["hits"]:
        assert {"query", "model", "rank", "id", "path", "label", "distance", "cosine"} <= set(h)
        assert h["path"] != h["query"]  # each query is left out of its own results
    assert r["label_counts"] == {"circles": 4, "stripes": 4, "checkers": 4}
    assert r["random_weights"] == ["resnet50", "mobilenetv2"] and "RANDOM weights" in out.summary_md
    assert "| resnet50 |" in out.summary_md and "resnet50 vs mobilenetv2" in out.summary_md
    dup = json.loads((out.run_dir / "duplicates.json").read_text())  # random weights only: exact ones alone
    assert (dup["images"], dup["exact"], dup["near"], dup["model"]) == (12, [], [], None)
    assert dup == r["duplicates"] and (
        "Duplicates (duplicates.json): 0 exact groups (0 files), 0 near groups (0 files); rule: exact: same content "
        "hash; near: not sought (every model has random weights)." in out.summary_md
    )


def test_the_console_gets_the_verdict_the_notes_and_one_table_not_every_table(run):
    out = run["out"]
    c = json.loads((out.run_dir / "comparison.json").read_text())
    con = out.console.splitlines()
    assert f"**{c['evidence']['verdict']['text']}**" in con and "RANDOM weights" in out.console
    assert any(line.startswith("Duplicates (duplicates.json)") for line in con)
    table = [line for line in con if line.startswith("| ")]
    label = c["evidence"]["verdict"]["metric_label"]
    assert table[0].startswith(f"| model | {label} [95% CI] | img/s (model only) |")
    assert [t.split(" | ")[0] for t in table[1:]] == ["| resnet50", "| mobilenetv2"]
    p = c["evidence"]["quality"]["p_at_k"]["resnet50"]
    assert f"{p['mean']:.3f} [{p['low']:.3f}, {p['high']:.3f}]" in table[1]
    speed = c["cost"]["models"]["mobilenetv2"]["img_per_s_model_only"]
    assert table[2].endswith(f" | {speed:.1f} |")
    assert "## Paired differences" not in out.console and "## Paired differences" in out.summary_md
    assert len(con) < len(out.summary_md.splitlines()) / 2 and con[-1].endswith("summary.md (and report.html)")


def test_evidence_gives_every_figure_an_interval_and_records_its_method(run):
    d = run["out"].run_dir
    c = json.loads((d / "comparison.json").read_text())
    ev, s = c["evidence"], c["summary"]
    m = ev["method"]
    assert m["seed"] == 7 and m["resamples"] == 2000 and m["confidence"] == 0.95 and "bootstrap" in m["interval"]
    assert m["correction"] == "Holm" and m["test"].startswith("paired randomisation")
    for key in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k"):
        for model in ("resnet50", "mobilenetv2"):
            iv = ev["quality"][key][model]
            assert iv["n"] == 5 and iv["low"] <= iv["mean"] <= iv["high"]
            assert iv["mean"] == pytest.approx(s["models"][model][key])  # the same figure, now with its interval
        (pair,) = ev["pairs"][key]  # one pair: Holm leaves its p as it is
        assert (pair["a"], pair["b"]) == ("resnet50", "mobilenetv2") and pair["p_holm"] == pair["p"]
        a, b = ev["quality"][key]["resnet50"]["mean"], ev["quality"][key]["mobilenetv2"]["mean"]
        assert pair["diff"]["mean"] == pytest.approx(a - b) and 0 < pair["p"] <= 1
    agree = ev["agreement"]["resnet50|mobilenetv2"]
    assert agree["rbo"]["mean"] == pytest.approx(s["pairs"]["resnet50|mobilenetv2"]["rbo"]) and agree["rbo"]["n"] == 5
    v = ev["verdict"]
    assert v["metric"] == "p_at_k" and v["metric_label"] == "P@4" and v["best"] in ("resnet50", "mobilenetv2")
    # 5 queries: no pair can reach p < 0.05 (exact floor 2/32), so no pick and no detectability claim
    assert v["pick"] is None and v["detectable"] is None and v["text"].startswith("Too few queries to decide")
    md = (d / "summary.md").read_text()
    assert md.index("## Verdict") < md.index("## Models") and v["text"] in md
    iv = ev["quality"]["p_at_k"]["mobilenetv2"]
    assert f"| {iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}] |" in md.split("## Models")[1]
    assert "## Paired differences between models (same queries)" in md and "| resnet50 vs mobilenetv2 |" in md
    assert "Holm-adjusted across the pairs" in md


def test_manifest_records_versions_models_providers_and_index(run):
    m = json.loads((run["out"].run_dir / "manifest.json").read_text())
    assert m["status"] == "complete"
    assert {"onnx_search", "onnxruntime", "tf2onnx", "tensorflow"} <= set(m["versions"])
    for name in ("resnet50", "mobilenetv2"):
        info = m["models"][name]
        assert len(info["sha256"]) == 64 and info["providers_active"] == ["CPUExecutionProvider"]
        assert info["parity"]["max_abs_diff"] < 1e-4
        assert m["store"]["index"][name]["index_type"] == "FLAT"
    assert m["config"]["store"]["redis_url"] == "${TEST_REDIS_URL}"  # the reference, never the secret
    assert [(s["model"], s["index"]) for s in m["sweep"]] == [("resnet50", "HNSW"), ("mobilenetv2", "HNSW")]
    assert all(0 <= s["recall_at_k"] <= 1 for s in m["sweep"])
    assert m["timings"]["ingest_s"] >= 0 and m["ingest"]["unchanged"] == 12  # second run: nothing re-embedded


def test_no_secret_reaches_any_result_file(run):
    for p in run["out"].run_dir.iterdir():
        if p.suffix in (".json", ".csv", ".md"):
            assert run["password"] not in p.read_text(), p


def test_two_runs_give_identical_results(run):
    for name, data in run["first"].items():
        assert _stable(run["out"].run_dir / name) == data, name


def test_a_fresh_ingest_gives_the_same_results_and_csvs(run):
    for name, data in run["first"].items():
        assert _stable(run["fresh"].run_dir / name) == data, name
    assert "| HNSW |" in data  # the sweep rows (recall included) are part of what is compared


def test_compare_recomputes_from_saved_results(run):
    saved = json.loads((run["out"].run_dir / "comparison.json").read_text())
    saved.pop("cost")  # measured during the run, not recomputed from hits
    assert json.loads(json.dumps(recompare(run["out"].run_dir), sort_keys=True)) == saved
    r = run_cli("compare", run["out"].run_dir)
    assert r.returncode == 0 and "resnet50 vs mobilenetv2" in r.stdout


def test_label_metrics_are_consistent(run):
    c = json.loads((run["out"].run_dir / "comparison.json").read_text())
    for row in c["per_query"]:
        assert row["relevant"] == 3  # 4 per class, the query itself excluded
        assert 0 <= row["p_at_k"] <= 1 and 0 <= row["ap_at_k"] <= row["recall_at_k"] + 1e-12


def test_unreadable_query_is_reported_and_the_rest_run(run, labelled_set, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    good = sorted((labelled_set / "circles").glob("*.jpg"))[0]
    cfg = tmp_path / "q.yaml"
    text = run["cfg"].read_text().replace("  sample: 5\n", f"  paths: [{good}, {bad}]\n")
    cfg.write_text(text.replace(f"output: {run['base'] / 'runs'}", f"output: {tmp_path / 'runs'}"))
    out = run_experiment(cfg, progress=False)
    r = json.loads((out.run_dir / "results.json").read_text())
    assert [q["query"] for q in r["queries"]] == [str(good)]
    assert r["skipped_queries"][0]["path"] == str(bad) and "not an image" in r["skipped_queries"][0]["reason"]


def test_top_k_larger_than_the_dataset_fails_before_work(run, tmp_path):
    cfg = tmp_path / "k.yaml"
    text = run["cfg"].read_text().replace("top_k: 4", "top_k: 50")
    cfg.write_text(text.replace(f"data_dir: {run['base'] / 'data'}", f"data_dir: {tmp_path / 'data'}"))
    with pytest.raises(ConfigError, match="top_k = 50 but only 11 images"):
        run_experiment(cfg, progress=False)
    assert not (tmp_path / "data").exists()


def test_partial_results_are_never_taken_for_complete(run, tmp_path):
    partial = tmp_path / "runs" / "x"
    partial.mkdir(parents=True)
    (partial / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match="no complete run"):
        load_results(partial)
    assert not any(p.name.endswith(".partial") for p in run["out"].run_dir.parent.iterdir())


def test_notebook_runs_top_to_bottom_on_a_run(run, tmp_path):
    import nbclient
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / "compare_distances.ipynb", as_version=4)
    import os

    os.environ["ONNX_SEARCH_RESULTS"] = str(run["out"].run_dir)
    try:
        nbclient.NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
        ).execute()
    finally:
        del os.environ["ONNX_SEARCH_RESULTS"]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "twomodels: 5 queries" in text and "resnet50 vs mobilenetv2" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # histograms, overlap matrix, disagreement grid


def test_a_redis_that_is_down_fails_before_any_work(run, tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    cfg = tmp_path / "down.yaml"
    cfg.write_text(run["cfg"].read_text().replace("models_dir: ", f"models_dir: {tmp_path / 'nomodels'}  # ", 1))
    t0 = time.monotonic()
    from onnx_search.errors import StoreUnavailableError

    with pytest.raises(StoreUnavailableError, match="127.0.0.1:1"):
        run_experiment(cfg, progress=False)
    assert time.monotonic() - t0 < 15
    assert not (tmp_path / "nomodels").exists()  # nothing was converted


def _variant(run, tmp_path, name: str, replace: dict[str, str]) -> Path:
    """A copy of the run's config with its own output, data folder and namespace, plus the given edits."""
    text = run["cfg"].read_text()
    text = text.replace(f"output: {run['base'] / 'runs'}", f"output: {tmp_path / 'runs'}")
    text = text.replace(f"data_dir: {run['base'] / 'data'}", f"data_dir: {tmp_path / 'data'}")
    text = text.replace("namespace: exp-test", f"namespace: exp-{name}")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(text)
    return cfg


def test_summary_shows_the_sweep_table_and_the_run_a_recall_qps_plot(run):
    d = run["out"].run_dir
    md = (d / "summary.md").read_text()
    assert "## Index sweep" in md and "| resnet50 | HNSW | {'M': 8, 'efConstruction': 200} | {'ef': 16} |" in md
    assert "| mobilenetv2 | HNSW |" in md
    assert (d / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (d / "sweep.csv").is_file()


def test_most_disagreed_query_is_named_relative_to_the_dataset_root(run, labelled_set):
    comparison = json.loads((run["out"].run_dir / "comparison.json").read_text())
    worst = comparison["summary"]["pairs"]["resnet50|mobilenetv2"]["most_disagreed"][0]["query"]
    rel = str(Path(worst).relative_to(labelled_set.resolve()))
    assert "/" in rel and f"| {rel} (RBO" in (run["out"].run_dir / "summary.md").read_text()


def test_queries_from_the_collection_reuse_stored_vectors(run):
    m = json.loads((run["out"].run_dir / "manifest.json").read_text())
    assert m["queries"] == {"run": 5, "reused_stored_vectors": 5, "skipped": 0}


def test_unreadable_files_are_not_sampled_and_the_summary_counts_them(run, labelled_set, tmp_path):
    import shutil

    root = tmp_path / "mixed"
    shutil.copytree(labelled_set, root)
    (root / "circles" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (root / "stripes" / "empty.png").write_bytes(b"")
    (root / "checkers" / "notes.jpg").write_text("text")
    cfg = _variant(run, tmp_path, "mixed", {f"root: {labelled_set}": f"root: {root}", "sample: 5": "sample: 12"})
    out = run_experiment(cfg, progress=False)
    r = json.loads((out.run_dir / "results.json").read_text())
    assert len(r["queries"]) == 12 and not r["skipped_queries"]  # every readable image, none of the broken ones
    assert "Ingest skipped 3 files (listed with reasons in" in out.summary_md


def test_an_interrupted_run_leaves_the_last_complete_results(run, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    cfg = _variant(run, tmp_path, "killed", {})
    done = run_cli("run", cfg, "--quiet")  # its own process: Milvus Lite frees a folder only when its process ends
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "twomodels"
    before = (run_dir / "results.json").read_bytes()
    script = (
        "import sys, time\n"
        "import onnx_search.experiment.run as run_mod\n"
        "real = run_mod.write_report\n"
        "def slow(d, *a, **k):\n"
        "    files = real(d, *a, **k)\n"
        "    print('written', flush=True)\n"
        "    time.sleep(120)\n"
        "    return files\n"
        "run_mod.write_report = slow\n"
        "run_mod.run_experiment(sys.argv[1], progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(cfg)], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert proc.stdout.readline().strip() == "written"  # every file is written, not yet published
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = run_dir.with_name(f".{run_dir.name}.partial")
    assert (partial / "results.json").is_file()
    with pytest.raises(ConfigError, match="no complete run"):
        load_results(partial)  # an unpublished folder is refused even though every file is in it
    assert (run_dir / "results.json").read_bytes() == before
    assert load_results(run_dir)["experiment"] == "twomodels"


def test_query_folder_and_unlabelled_dataset(run, labelled_set, tmp_path):
    import shutil

    qdir = tmp_path / "queries"
    qdir.mkdir()
    for p in sorted((labelled_set / "stripes").glob("*.jpg"))[:2]:
        shutil.copy(p, qdir / p.name)
    cfg = _variant(
        run,
        tmp_path,
        "folder",
        {"  sample: 5\n": f"  folder: {qdir}\n", f"root: {labelled_set}": f"root: {labelled_set}\n  labels: false"},
    )
    out = run_experiment(cfg, progress=False)
    r = json.loads((out.run_dir / "results.json").read_text())
    assert [Path(q["query"]).name for q in r["queries"]] == ["stripes_000.jpg", "stripes_001.jpg"]
    assert all(q["label"] == "" and not q["in_dataset"] for q in r["queries"])
    assert all(h["label"] == "" for h in r["hits"]) and r["label_counts"] == {}
    c = json.loads((out.run_dir / "comparison.json").read_text())
    assert "p_at_k" not in c["summary"]["models"]["mobilenetv2"] and "P@k" not in out.summary_md


def test_cost_figures_are_present_positive_and_in_the_summary(run, models_dir):
    d = run["out"].run_dir
    cost = json.loads((d / "cost.json").read_text())
    assert cost == json.loads((d / "comparison.json").read_text())["cost"]
    assert cost["images"] == 4 and cost["peak_rss_mb"] > 100
    for name in ("resnet50", "mobilenetv2"):
        c = cost["models"][name]
        for key in ("file_mb", "startup_s", "img_per_s_end_to_end", "img_per_s_model_only"):
            assert c[key] > 0, (name, key)
        assert 0 < c["query_embed"]["p50_ms"] <= c["query_embed"]["p99_ms"]
        assert 0 < c["search"]["p50_ms"] <= c["search"]["p99_ms"]
        assert c["providers"][-1] == "CPUExecutionProvider"
        assert c["file_mb"] == round((models_dir / f"{name}.onnx").stat().st_size / 1e6, 2)
    md = (d / "summary.md").read_text()
    assert "## Cost (measured on 4 images" in md and "| resnet50 | " in md.split("## Cost")[1] and "✓" in md
    assert (d / "quality_speed.png").read_bytes()[:4] == b"\x89PNG"


def test_variants_are_models_of_their_own_compared_with_their_parent(run, tmp_path):
    cfg = _variant(
        run, tmp_path, "variants", {"  - name: mobilenetv2\n": "  - name: mobilenetv2\n    variants: [fp32, int8]\n"}
    )
    text = cfg.read_text().replace(f"models_dir: {run['base']}", "models_dir: ")
    out = run_experiment(cfg, progress=False)
    r = json.loads((out.run_dir / "results.json").read_text())
    assert r["models"] == ["resnet50", "mobilenetv2", "mobilenetv2.int8"] and text
    v = r["variants"]["mobilenetv2.int8"]
    assert (
        v["parent"] == "mobilenetv2" and v["variant"] == "int8" and v["mean_parent_cosine"] > 0.99 and v["images"] == 12
    )
    # the agreement is that of the two models' own hits, recomputed here from results.json
    ranked = {}
    for h in sorted(r["hits"], key=lambda h: h["rank"]):
        ranked.setdefault((h["query"], h["model"]), []).append(h["id"])
    overlaps = [
        len(set(ranked[q["query"], "mobilenetv2"]) & set(ranked[q["query"], "mobilenetv2.int8"])) / 4
        for q in r["queries"]
    ]
    assert v["overlap_at_k"] == pytest.approx(sum(overlaps) / len(overlaps))
    pair = json.loads((out.run_dir / "comparison.json").read_text())["summary"]["pairs"]["mobilenetv2|mobilenetv2.int8"]
    assert v["rbo"] == pair["rbo"] and v["min_parent_cosine"] <= v["mean_parent_cosine"] <= 1 + 1e-6
    md = out.summary_md
    assert "## Variants against their parents" in md and "| mobilenetv2.int8 | mobilenetv2 |" in md
    assert "| mobilenetv2.int8 |" in md.split("## Cost")[1]
    m = json.loads((out.run_dir / "manifest.json").read_text())
    assert m["models"]["mobilenetv2.int8"]["parent"]["name"] == "mobilenetv2"


def test_identity_copies_are_all_found_first_and_results_are_reproducible(run, tmp_path):
    aug = "queries:\n  augment: {sample: 6, seed: 1, transforms: [identity, hflip, blur]}\n  sample: 5\n"
    cfg = _variant(run, tmp_path, "augment", {"queries:\n  sample: 5\n": aug})
    out = run_experiment(cfg, progress=False)
    first = (out.run_dir / "results.json").read_bytes()
    r = json.loads(first)["robustness"]
    for m in ("resnet50", "mobilenetv2"):
        assert r["per_model"][m]["transforms"]["identity"]["recall_at_1"] == 1.0
        assert r["per_model"][m]["transforms"]["identity"]["n"] == 6
    assert len(r["copies"]) == 18 and r["copies"][1]["transform"] == "hflip"
    assert set(r["baselines"]) == {"resnet50", "mobilenetv2"} and r["margin_z"]["mobilenetv2"] > 0
    hits, calibration = json.loads(first)["hits"], json.loads(first)["calibration"]
    assert all(0 <= h["percentile"] <= 1 for h in hits)
    for h in hits:  # each hit's z is against its own model's baseline, not another model's
        base = calibration[h["model"]]
        assert h["z"] == pytest.approx((h["cosine"] - base["mean"]) / base["std"], abs=1e-5), h
    a, b = calibration["resnet50"], calibration["mobilenetv2"]
    assert (a["mean"], a["std"]) != (b["mean"], b["std"])  # two baselines, so a mix-up would show above
    md = out.summary_md
    assert (
        "## Robustness: recall@1 of the original (6 originals x 3 transforms, seed 1; intervals and tests resample "
        "originals, each with its copies)" in md
    )
    # recall@1 of 1 on all 6 originals: the exact one-sided bound, 0.025 ** (1/6), not a zero-width interval
    assert "| resnet50 | 1.00 [0.54, 1.00] |" in md and "## Distances in comparable units" in md
    ev = json.loads((out.run_dir / "comparison.json").read_text())["evidence"]
    cells = ev["robustness"]["resnet50"]  # every copy figure, overall and per transform, with its interval
    assert cells["identity"]["recall_at_1"] == {"mean": 1.0, "low": pytest.approx(0.025 ** (1 / 6)), "high": 1.0,
                                                "n": 6, "unit": "original", "units": 6}  # fmt: skip
    for t in ("all", "hflip", "blur"):
        got = r["per_model"]["resnet50"]["transforms"][t]["recall_at_1"] if t != "all" else None
        iv = cells[t]["recall_at_1"]
        assert iv["low"] <= iv["mean"] <= iv["high"] and (got is None or iv["mean"] == pytest.approx(got))
    assert ev["verdict"]["metric"] == "p_at_k" and {"recall_at_1", "mrr_at_k"} <= set(ev["pairs"])
    assert (out.run_dir / "robustness.png").is_file()
    again = run_experiment(cfg, progress=False)
    assert (again.run_dir / "results.json").read_bytes() == first
