"""Several runs on one page: the cross-run table (through the CLI, in Chromium), and hit captions that fit their
cards however long the labels (bounding boxes from the browser)."""

import json
import shutil
from pathlib import Path

import pytest

from onnx_search.errors import ConfigError
from onnx_search.experiment.report.format import fmt
from onnx_search.experiment.report.multi import COLUMNS, compare_runs
from onnx_search.experiment.run import run_experiment
from onnx_search.synth import generate_labelled_set
from tests.helpers import open_page, run_cli

LONG = {"circles": "mimetypes__application-x-trash", "stripes": "actions__bookmark-new",
        "checkers": "mimetypes__application-x-executable"}  # fmt: skip
SHOT = Path(__file__).resolve().parents[1] / ".cache" / "report-multi-screenshot.png"  # for a person to look at


def _run(base: Path, name: str, images: Path, models: list[str], models_dir: Path, redis_url: str) -> Path:
    entries = "".join(f"  - {{name: {m}, weights: random, providers: [cpu]}}\n" for m in models)
    cfg = base / f"{name}.yaml"
    cfg.write_text(
        f"experiment: {name}\noutput: {base / 'runs'}\ndata_dir: {base / ('data_' + name)}\n"
        f"models_dir: {models_dir}\ntop_k: 3\ndataset: {{root: {images}}}\nmodels:\n{entries}"
        f"store: {{redis_url: '{redis_url}', namespace: multi_{name}}}\n"
        "queries: {sample: 4, augment: {sample: 2, transforms: [jpeg]}}\ncost: {images: 2, repeats: 1}\n"
    )
    return run_experiment(cfg, progress=False).run_dir


@pytest.fixture(scope="module")
def two_runs(models_dir, labelled_set, tmp_path_factory, redis_url_module) -> tuple[Path, Path]:
    """Two genuinely different runs: icons with long folder labels (resnet50, torchvision/resnet50) and the shared
    labelled set (resnet50, mobilenetv2); only resnet50 is in both."""
    base = tmp_path_factory.mktemp("multi")
    icons = base / "icons"
    generate_labelled_set(icons, per_class=2, classes=tuple(LONG), size=64, seed=3)
    for short, long in LONG.items():
        (icons / short).rename(icons / long)
    photos = base / "photos"
    shutil.copytree(labelled_set, photos)
    a = _run(base, "icons", icons, ["resnet50", "torchvision/resnet50"], models_dir, redis_url_module)
    b = _run(base, "photos", photos, ["resnet50", "mobilenetv2"], models_dir, redis_url_module)
    return a, b


READ_TABLE = """() => ({
  rows: Array.from(document.querySelectorAll('table.xrun tbody tr')).map(tr => ({
    model: tr.dataset.model, head: tr.querySelector('th').innerText,
    cells: Array.from(tr.querySelectorAll('td')).map(td => ({run: td.dataset.run, col: td.dataset.col,
      cls: td.className, text: td.innerText.trim(), title: td.title}))})),
  notices: Array.from(document.querySelectorAll('.notice')).map(n => n.innerText),
  details: Array.from(document.querySelectorAll('details.runbox')).map(d => d.open)})"""

# Where each caption's text is painted: its text's line boxes, clipped by every box up to the hit that hides
# overflow (a clamped label lays out lines it does not show).
CAPTION_BOXES = """() => Array.from(document.querySelectorAll('.card')).map(card =>
  Array.from(card.querySelectorAll('.hit .cap')).map(cap => {
    const hit = cap.closest('.hit'), range = document.createRange();
    let box = null;
    const walker = document.createTreeWalker(cap, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      range.selectNodeContents(walker.currentNode);
      for (const r of range.getClientRects()) {
        let [l, t, rr, b] = [r.left, r.top, r.right, r.bottom];
        for (let el = walker.currentNode.parentElement; el; el = el.parentElement) {
          if (getComputedStyle(el).overflow !== 'visible') {
            const c = el.getBoundingClientRect();
            l = Math.max(l, c.left); t = Math.max(t, c.top); rr = Math.min(rr, c.right); b = Math.min(b, c.bottom);
          }
          if (el === hit) break;
        }
        if (rr > l && b > t) box = box ? [Math.min(box[0], l), Math.min(box[1], t), Math.max(box[2], rr),
                                          Math.max(box[3], b)] : [l, t, rr, b];
      }
    }
    const h = hit.getBoundingClientRect(), c = cap.querySelector('.cos').getBoundingClientRect();
    return {title: cap.title, box: box, hit: [h.left, h.top, h.right, h.bottom],
            cos: [c.left, c.top, c.right, c.bottom]};
  }))"""


def _browse(page_path: Path, script: str, screenshot: Path | None = None, open_all: bool = False):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, errors = open_page(p)
        requests = []
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(page_path.as_uri())
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=False)
        if open_all:
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        seen = page.evaluate(script)
        page.click("a[href='#run1']")  # a link to a run opens its collapsed section
        opened = page.evaluate("document.querySelector('details#run1').open")
        browser.close()
    return seen, opened, errors, requests


def _figures(run_dir: Path, model: str) -> dict:
    comp = json.loads((run_dir / "comparison.json").read_text())
    res = json.loads((run_dir / "results.json").read_text())
    man = json.loads((run_dir / "manifest.json").read_text())
    return {
        "p_at_k": comp["summary"]["models"][model]["p_at_k"],
        "recall_at_1": res["robustness"]["per_model"][model]["mean"]["recall_at_1"],
        "img_s": comp["cost"]["models"][model]["img_per_s_model_only"],
        "weights": man["models"][model]["weights"],
    }


def test_two_runs_compared_in_one_table_through_the_cli(two_runs, tmp_path):
    a, b = two_runs
    out = tmp_path / "both.html"
    r = run_cli("report", a, b, "--output", out, "--reference", "resnet50")
    assert r.returncode == 0, r.stderr
    shot = tmp_path / "both.png"
    seen, opened, errors, requests = _browse(out, READ_TABLE, shot)
    assert errors == [] and requests == []
    models = [row["model"] for row in seen["rows"]]
    assert sorted(models) == ["mobilenetv2", "resnet50", "torchvision/resnet50"]  # each model once, from both runs
    rows = {row["model"]: row for row in seen["rows"]}

    def cell(model, run, col, delta=False):
        (c,) = [
            c for c in rows[model]["cells"] if c["run"] == run and c["col"] == col and ("delta" in c["cls"]) == delta
        ]
        return c

    fa, fb = _figures(a, "resnet50"), _figures(b, "resnet50")
    for run, f in (("A", fa), ("B", fb)):  # both runs' figures, as the runs saved them
        assert cell("resnet50", run, "p_at_k")["text"].split("\n")[0] == fmt(f["p_at_k"], 3)
        assert cell("resnet50", run, "recall_at_1")["text"].split("\n")[0] == fmt(f["recall_at_1"], 3)
        assert "[" in cell("resnet50", run, "p_at_k")["text"]  # with its 95% interval
        assert cell("resnet50", run, "img_s")["text"] == fmt(f["img_s"], 1)
    assert fa["weights"] in rows["resnet50"]["head"]
    # the difference column: speed subtracts (same machine), data-dependent figures do not (datasets differ)
    d = cell("resnet50", "B", "img_s", delta=True)["text"].split()[0].replace("−", "-")
    assert float(d) == pytest.approx(fb["img_s"] - fa["img_s"], abs=0.051)
    pk = cell("resnet50", "B", "p_at_k", delta=True)
    assert pk["text"] == "n/c" and "datasets differ" in pk["title"]
    # a model in one run only: the other run's cells say so, and nothing is subtracted
    assert cell("mobilenetv2", "A", "p_at_k")["text"] == "–" and cell("mobilenetv2", "B", "p_at_k")["text"] != "–"
    assert cell("mobilenetv2", "B", "img_s", delta=True)["text"] == ""
    assert cell("torchvision/resnet50", "B", "img_s")["text"] == "–"
    assert any("datasets differ" in n for n in seen["notices"])
    assert seen["details"] == [False, False] and opened  # per-run sections collapsed below, opened by their link
    SHOT.parent.mkdir(exist_ok=True)
    shutil.copy(shot, SHOT)


def test_hit_captions_in_a_card_never_overlap(two_runs, tmp_path):
    """Long labels (mimetypes__application-x-trash) wrap or are cut inside their own hit; the title keeps it all."""
    out = tmp_path / "both.html"
    assert run_cli("report", *two_runs, "--output", out).returncode == 0
    cards, _, errors, _ = _browse(out, CAPTION_BOXES, open_all=True)
    assert errors == [] and len(cards) == 8  # 4 queries in each run
    titles = [c["title"] for card in cards for c in card]
    assert any(t.startswith("mimetypes__application-x-trash ") for t in titles)  # the long labels are shown
    for card in cards:
        for c in card:
            box, hit = c["box"], c["hit"]
            assert box is not None, f"caption {c['title']!r} shows nothing"
            assert hit[0] - 0.5 <= box[0] and box[2] <= hit[2] + 0.5, f"caption {c['title']!r} leaves its hit"
            cos = c["cos"]  # the cosine is never what gets cut
            assert hit[0] - 0.5 <= cos[0] and cos[2] <= hit[2] + 0.5 and cos[3] <= hit[3] + 0.5 and cos[3] > cos[1]
        for i, p in enumerate(card):
            for q in card[i + 1 :]:
                (l1, t1, r1, b1), (l2, t2, r2, b2) = p["box"], q["box"]
                overlap = min(r1, r2) - max(l1, l2) > 0.5 and min(b1, b2) - max(t1, t2) > 0.5
                assert not overlap, f"captions {p['title']!r} and {q['title']!r} overlap"


def test_an_unknown_reference_model_is_one_line_exit_2(two_runs, tmp_path):
    r = run_cli("report", *two_runs, "--output", tmp_path / "x.html", "--reference", "nosuch")
    assert r.returncode == 2 and "--reference nosuch" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.html").exists()


def _fake(name: str, root: str, top_k: int = 3, machine: str = "m1", p_at_k: float = 0.5, img_s: float = 10.0):
    """A loaded run with just the figures the cross-run table reads."""
    summary = {"models": {"m": {"p_at_k": p_at_k, "top1_z": 2.0}}, "pairs": {}}
    return {
        "dir": Path(name),
        "results": {
            "experiment": name,
            "models": ["m"],
            "top_k": top_k,
            "dataset_root": root,
            "queries": [{"query": f"{root}/q.jpg"}],
            "label_counts": {"x": 1},
        },  # fmt: skip
        "comparison": {"summary": summary, "cost": {"models": {"m": {"img_per_s_model_only": img_s}}}},
        "manifest": {
            "machine": {"platform": machine},
            "dataset": {"catalogued": 1},
            "models": {"m": {"weights": "w", "variant": "fp32"}},
        },  # fmt: skip
    }


def test_differences_are_subtracted_only_like_for_like():
    col = {c.key: c for c in COLUMNS}
    same = compare_runs([_fake("a", "/d", p_at_k=0.5), _fake("b", "/d", p_at_k=0.75, img_s=12.5)])
    b = same.runs[1]
    assert same.delta(b, col["p_at_k"], 0.5, 0.75) == (0.25, "")
    assert same.delta(b, col["img_s"], 10.0, 12.5) == (2.5, "")
    other = compare_runs([_fake("a", "/d"), _fake("b", "/d", top_k=5, machine="m2")])
    d, why = other.delta(other.runs[1], col["p_at_k"], 0.5, 0.6)
    assert d is None and "top_k differs" in why
    d, why = other.delta(other.runs[1], col["img_s"], 10.0, 11.0)
    assert d is None and "different machines" in why
    d, _ = other.delta(other.runs[1], col["top1_z"], 2.0, 2.5)  # z needs the same data and queries only
    assert d == pytest.approx(0.5)
    assert other.column_title(col["p_at_k"]) == "P@k" and same.column_title(col["p_at_k"]) == "P@3"
    with pytest.raises(ConfigError, match="--reference nosuch"):
        compare_runs([_fake("a", "/d"), _fake("b", "/d")], "nosuch")


# --- paired differences between runs, and each notice that keeps figures apart -------------------------------------


def _per_unit(run_dir: Path, model: str, key: str) -> dict:
    comp = json.loads((run_dir / "comparison.json").read_text())
    return {r["query"]: r[key] for r in comp["per_query"] if r["model"] == model and key in r}


def test_differences_between_runs_are_paired_on_the_same_queries_or_not_shown(tmp_path):
    import numpy as np

    from onnx_search.experiment.evidence import paired
    from onnx_search.experiment.report.format import fmt_p
    from onnx_search.experiment.report.html_evidence import num
    from tests.evidence_runs import make_run

    other = tmp_path / "elsewhere"
    runs = [
        make_run(tmp_path, "A", seed=0),
        make_run(tmp_path, "B", seed=1, reverse=True),  # the same queries in another order: paired
        make_run(tmp_path, "C", seed=2, dataset=str(other)),  # datasets differ
        make_run(tmp_path, "D", seed=3, queries_from=7),  # query sets differ
        make_run(tmp_path, "E", seed=4, copies_seed=1),  # copies differ (queries the same)
        make_run(tmp_path, "F", seed=5, judged=True),  # ground truth differs (queries the same)
    ]
    out = tmp_path / "all.html"
    r = run_cli("report", *runs, "--output", out)
    assert r.returncode == 0, r.stderr
    seen, _, errors, _ = _browse(out, READ_TABLE, tmp_path / "all.png")
    assert errors == []
    rows = {row["model"]: row for row in seen["rows"]}

    def delta(model, run, col):
        (c,) = [c for c in rows[model]["cells"] if c["run"] == run and c["col"] == col and "delta" in c["cls"]]
        return c

    # B: the same queries listed in reverse: the difference is paired query by query, with interval and p
    a, b = _per_unit(runs[0], "beta", "p_at_k"), _per_unit(runs[1], "beta", "p_at_k")
    keys = sorted(a)
    ref = paired(np.array([b[k] for k in keys]), np.array([a[k] for k in keys]), seed=0)
    cell = delta("beta", "B", "p_at_k")
    lines = cell["text"].replace("−", "-").split("\n")
    assert float(lines[0]) == pytest.approx(ref["diff"]["mean"], abs=5e-4)
    assert lines[1] == f"[{num(ref['diff']['low'])}, {num(ref['diff']['high'])}]"
    assert lines[2] == f"p {fmt_p(ref['p'])}"
    assert cell["title"] == "B − A on the same 20 queries, paired"
    for col in ("ap_at_k", "ndcg_at_k", "overlap", "recall_at_1", "mrr_at_k"):
        assert "[" in delta("alpha.int8", "B", col)["text"], col
    # every run cell of a quality figure shows its interval
    for row in seen["rows"]:
        for c in row["cells"]:
            if c["col"] in ("p_at_k", "ap_at_k", "recall_at_1") and "delta" not in c["cls"] and c["text"] != "–":
                assert "[" in c["text"], (row["model"], c)
    # each notice, and n/c with the reason where the units do not pair
    notices = {n.split(" and A ")[0]: n for n in seen["notices"]}
    assert "datasets differ" in notices["C"]
    assert "query sets differ" in notices["D"] and "datasets differ" not in notices["D"]
    assert "augmented copies differ" in notices["E"] and "query sets differ" not in notices["E"]
    assert "ground truth differs" in notices["F"]
    assert "B" not in notices  # like for like
    expected = [("C", "p_at_k", "datasets differ"), ("D", "p_at_k", "query sets differ"),
                ("D", "overlap", "query sets differ"), ("E", "recall_at_1", "augmented copies differ"),
                ("E", "mrr_at_k", "augmented copies differ"), ("F", "ndcg_at_k", "ground truth differs")]  # fmt: skip
    for run, col, reason in expected:
        c = delta("alpha", run, col)
        assert c["text"] == "n/c" and reason in c["title"], (run, col, c)
    assert "[" in delta("alpha", "E", "p_at_k")["text"]  # other copies, same queries: P@k still pairs
    assert "[" in delta("alpha", "F", "recall_at_1")["text"]  # judgments instead of labels: copies still pair
    shutil.copy(tmp_path / "all.png", SHOT.with_name("report-multi-paired.png"))


# --- the hardware record: runs measured on different CPUs (or providers) are marked cell by cell -------------------

AVX512_VNNI_CPU = "model name : AMD EPYC 9B14\nflags : fpu avx avx2 avx512f avx512_vnni\n"
AVX2_CPU = "model name : AMD EPYC 7B12 64-Core Processor\nflags : fpu avx avx2\n"
AVX2_INTEL = "model name : Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz\nflags : fpu avx avx2\n"


def _hardware(cpuinfo: str) -> dict:
    """A hardware record as provenance.machine() writes it, for a stubbed CPU."""
    from onnx_search import provenance as pv

    info = pv.parse_cpuinfo(cpuinfo)
    rest = {"cpus": 2, "cpus_usable": 2, "gpus": [], "onnxruntime": "1.31.1", "providers": ["CPUExecutionProvider"],
            "memory_mb": 16000, "platform": "Linux"}  # fmt: skip
    m = info | pv.cpu_record(info) | rest
    return m | {"slug": pv.slug(m)}


def _with_hardware(run_dir: Path, machine: dict, int8_provider: str = "CPUExecutionProvider") -> Path:
    """The run's manifest given a hardware record and the provider that ran each model."""
    from tests.evidence_runs import MODELS

    man = json.loads((run_dir / "manifest.json").read_text())
    man["machine"] = machine
    man["models"] = {m: {"weights": "w", "variant": "int8" if m.endswith(".int8") else "fp32",
                         "providers_active": [int8_provider if m.endswith(".int8") else "CPUExecutionProvider"]}
                     for m in MODELS}  # fmt: skip
    (run_dir / "manifest.json").write_text(json.dumps(man))
    return run_dir


class _Cells:
    """Every cell of the cross-run table (model, run, column, delta?) -> (class, title), and the runs table."""

    def __init__(self, page: str):
        from html.parser import HTMLParser

        self.cells: dict[tuple, tuple[str, str]] = {}
        self.machine_differs: dict[str, bool] = {}
        cells, machine_differs = self.cells, self.machine_differs

        class P(HTMLParser):
            model = run_row = None

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "tr":
                    self.model, self.run_row = a.get("data-model"), a.get("data-run")
                elif tag == "td" and self.model and "data-col" in a:
                    cls = a.get("class", "")
                    cells[(self.model, a["data-run"], a["data-col"], "delta" in cls)] = (cls, a.get("title", ""))
                elif tag == "span" and "data-hw" in a and self.run_row:
                    machine_differs[self.run_row] = "differs" in a.get("class", "")

        P().feed(page)

    def marked(self) -> set[tuple]:
        return {k for k, (cls, _) in self.cells.items() if "hwdiff" in cls}


def _page(tmp_path: Path, name: str, a: dict, b: dict, b_int8_provider: str = "CPUExecutionProvider") -> str:
    from onnx_search.experiment.report.html import build_report
    from tests.evidence_runs import make_run

    base = tmp_path / name  # the same seed: two runs that differ only in their hardware records
    ra = _with_hardware(make_run(base, "A", seed=0), a)
    rb = _with_hardware(make_run(base, "B", seed=0), b, b_int8_provider)
    return build_report([ra, rb], base / "both.html")


def test_runs_on_different_cpus_are_marked_beside_each_affected_cell_and_same_hardware_is_not(tmp_path):
    vnni, avx2 = _hardware(AVX512_VNNI_CPU), _hardware(AVX2_CPU)
    quality = ("p_at_k", "ap_at_k", "recall_at_1", "mrr_at_k", "overlap", "top1_z")
    for name, a, b in (("vnni-then-avx2", vnni, avx2), ("avx2-then-vnni", avx2, vnni)):
        page = _page(tmp_path, name, a, b)
        seen = _Cells(page)
        marked = seen.marked()
        # speed: every model's B cell; quality: only the INT8 variant's (an FP32 model's vectors do not move)
        assert {("alpha", "B", "img_s", False), ("beta", "B", "img_s", False),
                ("alpha.int8", "B", "img_s", False)} <= marked, name  # fmt: skip
        for col in quality:
            if ("alpha.int8", "B", col, False) in seen.cells:
                assert ("alpha.int8", "B", col, False) in marked, (name, col)
                assert ("alpha.int8", "B", col, True) in marked, (name, col)  # and its paired difference
        assert not {k for k in marked if k[0] in ("alpha", "beta") and k[2] != "img_s"}, name
        assert not {k for k in marked if k[1] == "A"}, name  # differences are against run A: A is not marked
        cls, title = seen.cells[("alpha.int8", "B", "p_at_k", False)]
        assert f"measured on a different CPU: B: {b['isa_summary']} vs A: {a['isa_summary']}" in title
        assert "AVX2, no VNNI" in title and "VNNI (AVX512_VNNI)" in title
        assert "≠CPU" in page and "hwlegend" in page  # the mark and its legend
        assert seen.machine_differs == {"A": False, "B": True}
        assert seen.cells[("alpha", "B", "img_s", True)][0].endswith("nc")  # speed is not subtracted across CPUs
        assert f"not like for like:</b> measured on a different CPU: B: {b['isa_summary']}" in page  # the notice
    # the same hardware: nothing marked, no legend, speeds subtract
    same = _Cells(_page(tmp_path, "same", avx2, dict(avx2)))
    assert same.marked() == set() and same.machine_differs == {"A": False, "B": False}
    assert "nc" not in same.cells[("alpha", "B", "img_s", True)][0]
    assert "hwlegend" not in _page(tmp_path, "same2", vnni, dict(vnni))
    # another CPU with the same instruction sets: speed marked, the INT8 variant's quality not
    other_cpu = _Cells(_page(tmp_path, "same-isa", avx2, _hardware(AVX2_INTEL)))
    assert ("alpha", "B", "img_s", False) in other_cpu.marked()
    assert "different machine: B: Intel(R) Xeon(R)" in other_cpu.cells[("alpha", "B", "img_s", False)][1]
    assert not {k for k in other_cpu.marked() if k[2] != "img_s"}
    # the same machine, the INT8 variant run by another provider: its speed and quality marked (≠EP), FP32 not
    ep = _Cells(_page(tmp_path, "provider", avx2, dict(avx2), "CUDAExecutionProvider"))
    assert ep.marked() and {k[0] for k in ep.marked()} == {"alpha.int8"}
    assert ("alpha.int8", "B", "p_at_k", False) in ep.marked() and ("alpha.int8", "B", "img_s", False) in ep.marked()
    assert "different execution provider: B: CUDA vs A: CPU" in ep.cells[("alpha.int8", "B", "img_s", False)][1]
