"""report.html in a real headless Chromium: no console errors, one card per query, sorting works."""

import json
import shutil
from pathlib import Path

import pytest

from onnx_search import provenance as pv
from onnx_search.experiment.report.hardware import machine_line
from onnx_search.experiment.report.html import write_html_report
from onnx_search.experiment.report.html_parts import esc
from onnx_search.experiment.run import run_experiment
from tests.helpers import open_page, photo, run_cli


def render(html_path: Path, screenshot: Path) -> dict:
    """Open the page from disk; return console errors, card counts and the cards' titles before/after sorting."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, errors = open_page(p)
        requests = []
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(html_path.as_uri())
        out = {"cards": page.locator(".card").count(), "titles": page.locator(".card h3").all_inner_texts()}
        page.select_option(".sort", "rbo")
        out["titles_by_rbo"] = page.locator(".card h3").all_inner_texts()
        out["missing"] = page.locator(".th.missing").count()
        page.uncheck(".fmodel >> nth=1")
        out["rows_hidden"] = page.locator(".row.hidden").count()
        page.screenshot(path=str(screenshot), full_page=False)
        browser.close()
    return out | {"errors": errors, "requests": requests}


@pytest.fixture(scope="module")
def html_run(models_dir, labelled_set, tmp_path_factory, redis_url_module):
    base = tmp_path_factory.mktemp("html")
    images = base / "images"
    shutil.copytree(labelled_set, images)
    cfg = base / "r.yaml"
    cfg.write_text(
        f"experiment: htmlcheck\noutput: {base / 'runs'}\ndata_dir: {base / 'data'}\nmodels_dir: {models_dir}\n"
        f"top_k: 4\ndataset: {{root: {images}}}\nmodels:\n  - {{name: resnet50, weights: random, providers: [cpu]}}\n"
        f"  - {{name: mobilenetv2, weights: random, providers: [cpu]}}\n"
        f"store: {{redis_url: '{redis_url_module}', namespace: html}}\n"
        "queries: {sample: 8}\ncost: {images: 4, repeats: 1}\n"
    )
    return run_experiment(cfg, progress=False), images


def test_every_run_writes_a_self_contained_report_that_renders(html_run, tmp_path):
    out, _ = html_run
    page = out.run_dir / "report.html"
    text = page.read_text()
    assert "<script src" not in text and "<link" not in text and "http://" not in text and "https://" not in text
    assert "RANDOM WEIGHTS" in text and "<table" in text  # tables readable without JavaScript
    shot = out.run_dir.parent / "report.png"
    seen = render(page, shot)
    assert seen["errors"] == [] and seen["requests"] == []
    assert seen["cards"] == 8 == len(json.loads((out.run_dir / "results.json").read_text())["queries"])
    rbo = [float(t.rsplit("RBO ", 1)[1]) for t in seen["titles_by_rbo"]]  # sorted: most disagreeing first
    assert sorted(seen["titles_by_rbo"]) == sorted(seen["titles"]) and rbo == sorted(rbo), seen["titles_by_rbo"]
    assert seen["rows_hidden"] == 8  # one model unticked: its row hidden in every card
    assert shot.read_bytes()[:4] == b"\x89PNG"
    ev = render_evidence(page, tmp_path / "ev.png")  # a real run: the verdict on top, intervals everywhere
    assert ev["errors"] == [] and ev["bad"] == [] and ev["seen"] >= 6, ev
    comparison = json.loads((out.run_dir / "comparison.json").read_text())
    assert comparison["evidence"]["verdict"]["text"] in ev["verdict"] and ev["verdict_y"] < ev["models_y"]
    # the hardware record: in cost.json as in the manifest, with the provider that ran each model; in every header
    cost = json.loads((out.run_dir / "cost.json").read_text())
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert cost["machine"] == manifest["machine"] == pv.machine()
    for m, c in cost["models"].items():
        assert (
            c["provider"] == manifest["models"][m]["providers_active"][0] == c["providers"][0] == "CPUExecutionProvider"
        )
    line = machine_line(manifest["machine"], {"resnet50": "CPU"})
    assert f"{pv.machine()['cpu_model']}, " in line and pv.machine()["isa_summary"] in line and "ran on CPU" in line
    assert esc(line) in text and line in (out.run_dir / "summary.md").read_text() and line in out.console
    keep = Path(__file__).resolve().parents[1] / ".cache" / "report-screenshot.png"  # for a person to look at
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)
    shutil.copy(tmp_path / "ev.png", keep.with_name("report-evidence-real-run.png"))


def test_a_deleted_image_renders_as_a_placeholder(html_run, tmp_path):
    out, images = html_run
    results = json.loads((out.run_dir / "results.json").read_text())
    victim = Path(results["hits"][0]["path"])
    victim.unlink()
    r = run_cli("report", out.run_dir, "--output", tmp_path / "again.html")
    assert r.returncode == 0, r.stderr
    seen = render(tmp_path / "again.html", tmp_path / "again.png")
    assert seen["errors"] == [] and seen["missing"] >= 1 and seen["cards"] == 8


def test_several_runs_side_by_side_and_the_size_budget(tmp_path):
    """300 queries x 4 models x top-10 over 1,500 images stays under 10 MB (thumbnails shared, one per image)."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    paths = []
    for i in range(1500):
        paths.append(imgs / f"{i}.png")
        photo(i, (48, 40)).save(paths[-1])
    models = ["a", "b", "c", "d"]
    queries = [
        {"query": str(paths[i]), "id": i, "label": f"l{i % 5}", "in_dataset": True, "excluded": True}
        for i in range(300)
    ]
    hits = [{"query": q["query"], "model": m, "rank": k + 1, "id": (q["id"] * 7 + k * 13 + j) % 1500,
             "path": str(paths[(q["id"] * 7 + k * 13 + j) % 1500]), "label": "l0", "distance": 0.9, "cosine": 0.9}
            for q in queries for j, m in enumerate(models) for k in range(10)]  # fmt: skip
    from onnx_search.experiment.compare import compare

    for name in ("one", "two"):
        d = tmp_path / name
        d.mkdir()
        results = {"experiment": name, "top_k": 10, "metric": "COSINE", "models": models, "queries": queries,
                   "hits": hits, "random_weights": [], "dataset_root": str(imgs)}  # fmt: skip
        (d / "results.json").write_text(json.dumps(results))
        (d / "comparison.json").write_text(json.dumps(compare(hits, queries, models, 10)))
    out = write_html_report([tmp_path / "one", tmp_path / "two"], tmp_path / "both.html")
    assert out.stat().st_size < 10_000_000
    text = out.read_text()
    assert text.count("<section class='run'") == 2 and text.count(".i7{") == 1  # one thumbnail rule per image


# --- evidence: the verdict on top, every quality figure with its interval, the paired tests with their method ------

QUALITY_HEADER = r"P@k|R@k|mAP@k|nDCG@k|judged@k|overlap@k|RBO|all copies|MRR@k|difference|crop|blur"

# In the page: every table column headed by a quality figure holds, in each row, a mean with its [low, high]
# interval, or the reason it has none ("(all equal)", "(one query)"), or '–' where there is no figure; every
# off-diagonal heat-map cell too. The pairs table's Holm-consistent intervals may instead be open at 0 where only
# Holm's step-down separates the pair (format.pair_interval): "(0, 0.280]" above 0, "[-0.280, 0)" below; no other
# column may. The interval (or its reason) ends the cell. Returns the offending cells.
CHECK_INTERVALS = """(pattern) => {
  // an interval, or the stated reason there is none (evidence.interval's note: all values equal, one unit)
  const re = new RegExp(pattern), bad = [], seen = [];
  const closed = /\\[-?\\d+\\.\\d+, -?\\d+\\.\\d+\\]|\\((all equal|one [a-z]+)\\)/.source;
  const open = /\\(0, \\d+\\.\\d+\\]|\\[-\\d+\\.\\d+, 0\\)/.source;
  const ends = (alts) => new RegExp(/(^|\\s)/.source + '(' + alts + ')$');
  const iv = ends(closed), holm = ends(closed + '|' + open);
  document.querySelectorAll('section.run table').forEach((t) => {
    const rows = Array.from(t.querySelectorAll('tr'));
    if (t.classList.contains('heat')) {
      rows.slice(1).forEach((tr, i) => tr.querySelectorAll('td').forEach((td, j) => {
        if (i !== j) { seen.push('heat'); if (!iv.test(td.innerText.trim()) && td.innerText.trim() !== '–')
          bad.push(t.querySelector('caption').innerText + ': ' + td.innerText); }
      }));
      return;
    }
    const head = Array.from(rows[0].querySelectorAll('th')).map((th) => th.innerText);
    head.forEach((h, c) => {
      if (!re.test(h)) return;
      seen.push(h);
      const ok = h.includes('Holm-consistent CI') ? holm : iv;
      rows.slice(1).forEach((tr) => {
        const td = tr.children[c];
        if (td && !ok.test(td.innerText.trim()) && td.innerText.trim() !== '–') bad.push(h + ': ' + td.innerText);
      });
    });
  });
  return {bad: bad, seen: seen.length};
}"""


def render_evidence(html_path: Path, screenshot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, errors = open_page(p)
        page.goto(html_path.as_uri())
        out = page.evaluate(CHECK_INTERVALS, QUALITY_HEADER)
        out["verdict"] = page.locator(".verdict").first.inner_text()
        out["verdict_y"] = page.locator(".verdict").first.bounding_box()["y"]
        out["models_y"] = page.locator("h2", has_text="Models").first.bounding_box()["y"]
        out["provenance_y"] = page.locator("table", has_text="providers that ran").first.bounding_box()["y"]
        out["method"] = page.locator("table.pairs").first.evaluate("t => t.previousElementSibling.innerText")
        out["pair_rows"] = page.locator("table.pairs tr").count() - 1
        page.screenshot(path=str(screenshot), full_page=False)
        page.locator("table.pairs").first.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot.with_name(screenshot.stem + "-pairs.png")), full_page=False)
        browser.close()
    return out | {"errors": errors}


@pytest.mark.parametrize("judged", [False, True], ids=["labels", "judgments"])
def test_report_shows_the_verdict_and_an_interval_on_every_quality_figure(tmp_path, judged):
    from tests.evidence_runs import make_run

    run = make_run(tmp_path, "ev", judged=judged)
    comparison = json.loads((run / "comparison.json").read_text())
    page = write_html_report([run], tmp_path / "ev.html")
    shot = tmp_path / "ev.png"
    seen = render_evidence(page, shot)
    assert seen["errors"] == []
    assert seen["bad"] == [] and seen["seen"] >= 10, seen
    assert comparison["evidence"]["verdict"]["text"] in seen["verdict"]
    assert seen["verdict_y"] < seen["provenance_y"] < seen["models_y"]  # the verdict first, before provenance
    assert "paired randomisation (sign-flip)" in seen["method"] and "Holm" in seen["method"]
    assert "bootstrap" in seen["method"] and "seed 0" in seen["method"]
    assert seen["pair_rows"] == sum(len(v) for v in comparison["evidence"]["pairs"].values()) > 0
    if judged:
        assert "condensed lists" in page.read_text() and "judged@k" in page.read_text()
    keep = Path(__file__).resolve().parents[1] / ".cache"
    keep.mkdir(exist_ok=True)
    for png in tmp_path.glob("ev*.png"):
        shutil.copy(png, keep / f"report-evidence-{'judged' if judged else 'labels'}{png.stem[2:]}.png")


def test_quality_plots_carry_the_intervals_as_error_bars(tmp_path):
    from onnx_search.experiment.report.plots import quality_error, quality_speed_plot
    from onnx_search.experiment.report.robust import robustness_plot
    from tests.evidence_runs import MODELS, make_run

    run = make_run(tmp_path, "ev")
    comparison = json.loads((run / "comparison.json").read_text())
    results = json.loads((run / "results.json").read_text())
    ev = comparison["evidence"]
    metric = ev["verdict"]["metric"]
    for m in MODELS:
        iv = ev["quality"][metric][m]
        assert quality_error(comparison, m, iv["mean"]) == (iv["low"], iv["high"]) and iv["high"] > iv["low"]
        assert quality_error(comparison, m, iv["mean"] + 0.01) == (iv["mean"] + 0.01,) * 2  # not that figure
    assert quality_speed_plot(comparison, tmp_path / "qs.png", "q").read_bytes()[:4] == b"\x89PNG"
    out = robustness_plot(results["robustness"], tmp_path / "rob.png", "r", ev["robustness"])
    assert out.read_bytes()[:4] == b"\x89PNG"


# --- the machine in the header: warnings, an INT8 file made for another CPU, the CPU the verdict holds for ----------

AVX2_CPU = "model name : AMD EPYC 7B12 64-Core Processor\nflags : fpu avx avx2\n"
VNNI_CHOSEN = {"cpu_model": "AMD EPYC 9B14", "isa_summary": "AVX2, AVX-512, VNNI (AVX512_VNNI)",
               "slug": "amd-epyc-9b14-2c-avx512-vnni"}  # fmt: skip
LOW = "alpha.int8: mean cosine 0.881 to alpha on this run's images, below the target 0.97 (min 0.533)"


def _int8_run(tmp_path: Path, target_isa: str | None, int8: bool = True) -> Path:
    """A run on an AVX2 CPU without VNNI holding an INT8 variant whose recipe was made for ``target_isa``."""
    from tests.evidence_runs import MODELS, make_run

    run = make_run(tmp_path, f"hw-{target_isa}-{int8}")
    info = pv.parse_cpuinfo(AVX2_CPU)
    machine = info | pv.cpu_record(info) | {"cpus": 2, "cpus_usable": 2, "gpus": [], "onnxruntime": "1.31.1",
                                            "providers": ["CPUExecutionProvider"]}  # fmt: skip
    variant = {m: ("int8" if int8 and m.endswith(".int8") else "fp32") for m in MODELS}
    manifest = {"status": "complete", "finished_at": "now", "machine": machine,
                "models": {m: {"weights": "w", "variant": variant[m], "providers_active": ["CPUExecutionProvider"]}
                           for m in MODELS}}  # fmt: skip
    (run / "manifest.json").write_text(json.dumps(manifest))
    results = json.loads((run / "results.json").read_text())
    recipe = {"recipe": "u8s8", "target_isa": target_isa, "chosen_on": VNNI_CHOSEN, "reached": True, "reason": None,
              "agreement": {"mean_cosine": 0.975, "min_cosine": 0.93, "top5_overlap": 0.95, "target": 0.97,
                            "measured": True, "where": "calibration images"}}  # fmt: skip
    results["variants"]["alpha.int8"]["int8_recipe"] = recipe
    results["warnings"] = [LOW]
    (run / "results.json").write_text(json.dumps(results))
    return run


def _texts(run: Path) -> tuple[str, str, str]:
    """The report page, summary.md and the console summary of a run folder, as the product writes them."""
    from onnx_search.experiment.report.summary import console_summary, header_lines, summary_markdown

    results = json.loads((run / "results.json").read_text())
    comparison = json.loads((run / "comparison.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    header = header_lines(results["experiment"], [], manifest, results)
    comparison.pop("cost")  # the hand-made run's cost holds speeds only, not the whole cost table
    md = summary_markdown(comparison, header, None, None, None, results, manifest)
    console = console_summary(comparison, header, None, results, run, manifest)
    page = write_html_report([run], run / "report.html").read_text()
    return page, md, console


def test_the_header_shows_the_machine_the_warnings_and_an_int8_file_made_for_another_cpu(tmp_path):
    run = _int8_run(tmp_path, "vnni")
    page, md, console = _texts(run)
    machine = "Machine: AMD EPYC 7B12 64-Core Processor, 2 cores; AVX2, no VNNI; onnxruntime 1.31.1, ran on CPU"
    flag = "alpha.int8: INT8 file made for VNNI (chosen on AMD EPYC 9B14: AVX2, AVX-512, VNNI (AVX512_VNNI)), run on "
    flag += "AVX2, no VNNI"
    clause = "This holds on this CPU (AVX2, no VNNI)"
    for text, e in ((page, esc), (md, str), (console, str)):  # the page holds them HTML-escaped
        assert e(machine) in text and "GPU: none" in text
        assert e(LOW) in text and e(flag) in text and e(clause) in text
    assert esc(flag.split("INT8 file ", 1)[1]) in page.split("class='variants'")[1]  # in its table too
    assert "u8s8 for VNNI; mean cosine 0.975 to FP32 on calibration images (target 0.97, reached)" in md
    # the verdict's own text comes first, the CPU after it
    verdict = json.loads((run / "comparison.json").read_text())["evidence"]["verdict"]["text"]
    assert f"{verdict} {clause}" in md and esc(f"{verdict} {clause}") in page
    # a file made for this CPU (here, elsewhere: --target avx2) is not flagged; its warning line stays
    page2, md2, _ = _texts(_int8_run(tmp_path, "avx2"))
    assert "INT8 file made for" not in page2 + md2 and LOW in md2 and clause in md2
    # without a target, where it was chosen decides: a VNNI CPU's choice run here is flagged
    assert "made on AMD EPYC 9B14 (AVX2, AVX-512, VNNI (AVX512_VNNI)), run on AVX2, no VNNI" in _texts(
        _int8_run(tmp_path, None))[1]  # fmt: skip
    # no INT8 model in the run: the verdict names no CPU
    _, md3, console3 = _texts(_int8_run(tmp_path, "avx2", int8=False))
    assert "on this CPU" not in md3 + console3 and machine in md3
    shot = tmp_path / "hw.png"
    seen = render_evidence(run / "report.html", shot)
    assert seen["errors"] == [] and clause in seen["verdict"]
    keep = Path(__file__).resolve().parents[1] / ".cache" / "report-hardware.png"  # for a person to look at
    shutil.copy(shot, keep)


def test_compare_prints_the_runs_header_and_the_cpu_its_verdict_holds_for(tmp_path):
    """``compare RUN`` and ``compare RUN --qrels FILE`` print the machine, the warnings and the INT8 flag under their
    own title, as run's summary does, and the verdict with the CPU it holds for."""
    from onnx_search.experiment.report.hardware import cpu_clause
    from onnx_search.experiment.report.summary import header_lines
    from onnx_search.experiment.results import recompare

    run = _int8_run(tmp_path, "vnni")
    results = json.loads((run / "results.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    own = header_lines(results["experiment"], [], manifest, results)[1:]  # run's summary.md, less its title
    qrels = tmp_path / "mine.qrels"
    qrels.write_text("".join(f"{q['id']} 0 {h['id']} {int(h['label'] == q['label'])}\n" for q in results["queries"]
                             for h in results["hits"] if h["query"] == q["query"]))  # fmt: skip
    clause = cpu_clause(results, manifest)
    assert clause.startswith("This holds on this CPU (AVX2, no VNNI)")
    for extra, title, judged in (((), f"# {run.name} (recomputed from saved results)", False),
                                 (("--qrels", qrels), f"# {run.name} re-scored on mine.qrels (from saved results)",
                                  True)):  # fmt: skip
        r = run_cli("compare", run, *extra)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("\n".join([title, *own]) + "\n"), r.stdout[:800]
        assert "Machine: AMD EPYC 7B12 64-Core Processor, 2 cores; AVX2, no VNNI" in r.stdout and LOW in r.stdout
        assert "alpha.int8: INT8 file made for VNNI" in r.stdout
        if judged:
            from onnx_search.experiment.qrels import read_qrels_ids

            text = recompare(run, read_qrels_ids(qrels), qrels.resolve())["evidence"]["verdict"]["text"]
        else:
            text = recompare(run)["evidence"]["verdict"]["text"]
        assert f"**{text} {clause}**" in r.stdout
