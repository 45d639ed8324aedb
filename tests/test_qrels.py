"""Qrels: the TREC file format, atomic writes, the explorer's thread-safe JudgmentStore."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from onnx_search.errors import ConfigError
from onnx_search.experiment import qrels as qrels_mod
from onnx_search.experiment.qrels import (
    JudgmentStore,
    judges_path,
    judgments_path,
    merge_qrels,
    parse_qrels,
    read_qrels,
    write_qrels,
)


def test_parse_good_file_skips_blank_and_comment_lines():
    text = "# pooled top-10\n1 0 11 2\n\n1 0 12 0\n2\t0\t/a/b.jpg\t1\n1 0 11 2\n"
    assert parse_qrels(text, "q.qrels") == {"1": {"11": 2, "12": 0}, "2": {"/a/b.jpg": 1}}


def test_empty_file_is_no_judgments(tmp_path):
    p = tmp_path / "e.qrels"
    p.write_text("")
    assert read_qrels(p) == {}


@pytest.mark.parametrize(
    "line,expected",
    [
        ("1 0 11", r"q.qrels:2: 3 columns, expected 4"),
        ("1 0 11 1 extra", r"q.qrels:2: 5 columns, expected 4"),
        ("1 0 11 high", r"q.qrels:2: relevance 'high' is not an integer"),
        ("1 0 11 0.5", r"q.qrels:2: relevance '0.5' is not an integer"),
        ("1 0 11 -1", r"q.qrels:2: relevance -1 is negative"),
        ("1 0 10 0", r"q.qrels:2: 1 10 judged 0 here but 1 on line 1"),
    ],
)
def test_malformed_line_names_file_and_line(line, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        parse_qrels(f"1 0 10 1\n{line}\n", "q.qrels")
    assert "\n" not in str(info.value)


def test_read_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_qrels(tmp_path / "none.qrels")
    (tmp_path / "b.qrels").write_bytes(b"\xff\xfe1 0 1 1")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        read_qrels(tmp_path / "b.qrels")


def test_write_then_read_round_trip_sorted(tmp_path):
    q = {"20": {"3": 1, "100": 0}, "3": {"/x/y.png": 2}}
    p = tmp_path / "sub" / "r.qrels"
    write_qrels(p, q)
    assert read_qrels(p) == q
    assert p.read_text().splitlines() == ["3 0 /x/y.png 2", "20 0 3 1", "20 0 100 0"]
    assert p.stat().st_mode & 0o777 == 0o644  # a file to share, not the temporary file's 0600
    p.chmod(0o640)
    write_qrels(p, q)
    assert p.stat().st_mode & 0o777 == 0o640  # a rewrite keeps the file's mode


def test_write_refuses_ids_with_spaces_and_bad_grades(tmp_path):
    with pytest.raises(ConfigError, match="holds whitespace"):
        write_qrels(tmp_path / "r.qrels", {"1": {"my photo.jpg": 1}})
    with pytest.raises(ConfigError, match="not an integer >= 0"):
        write_qrels(tmp_path / "r.qrels", {"1": {"2": -1}})
    assert not (tmp_path / "r.qrels").exists()


def test_atomic_write_leaves_old_file_and_no_temp_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "r.qrels"
    write_qrels(p, {"1": {"2": 1}})
    before = p.read_bytes()

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(qrels_mod.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_qrels(p, {"1": {"2": 0, "3": 1}})
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["r.qrels"]  # no temp file left behind


def test_judgments_path():
    assert judgments_path(Path("data/x"), "demo") == Path("data/x/judgments/demo.qrels")


def test_merge_new_wins():
    assert merge_qrels({"1": {"a": 0, "b": 1}}, {"1": {"a": 2}, "2": {"c": 1}}) == {
        "1": {"a": 2, "b": 1},
        "2": {"c": 1},
    }


def test_store_round_trip_persists_before_returning(tmp_path):
    p = judgments_path(tmp_path, "exp")
    store = JudgmentStore(p)
    assert store.count() == 0 and not p.exists()
    store.judge("5", "7", 2)
    assert read_qrels(p) == {"5": {"7": 2}}  # on disk already
    store.judge("5", "7", 0)
    store.judge("5", "8", 1)
    assert read_qrels(p) == {"5": {"7": 0, "8": 1}}
    store.unjudge("5", "7")
    assert JudgmentStore(p).qrels() == {"5": {"8": 1}}
    assert store.for_query("5") == {"8": 1} and store.count() == 1
    with pytest.raises(ConfigError, match="grade -1 is outside"):
        store.judge("5", "9", -1)
    with pytest.raises(ConfigError, match="whitespace"):
        store.judge("5", "a b", 1)


def test_store_sees_another_writer(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    store.judge("1", "11", 1)
    other = JudgmentStore(p)
    other.judge("2", "22", 1)
    store.judge("3", "33", 0)  # must not drop the other writer's judgment
    assert read_qrels(p) == {"1": {"11": 1}, "2": {"22": 1}, "3": {"33": 0}}


def test_concurrent_judges_from_threads_lose_nothing(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(25):
                store.judge(str(t), str(100 + i), (t + i) % 3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    expected = {str(t): {str(100 + i): (t + i) % 3 for i in range(25)} for t in range(8)}
    assert store.qrels() == expected and read_qrels(p) == expected
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


# --- judged metrics: condensed lists, checked against pytrec_eval (trec_eval -J) --------------------------------

K = 5
RUNS = {  # query -> ranked doc ids (the model's top-k)
    "1": ["a", "b", "c", "d", "e"],
    "2": ["f", "x", "g", "y", "h"],  # x, y unjudged: condensed lists move g, h up
    "3": ["u", "v", "w", "z", "t"],  # nothing judged among the hits
    "4": ["r1", "r2", "r3", "n1", "n2"],
}
JUDGED = {
    "1": {"a": 2, "c": 1, "d": 0, "e": 0, "b": 0, "q": 3},  # q relevant but never retrieved
    "2": {"f": 0, "g": 2, "h": 1, "k": 1},
    "3": {"o": 1},
    "4": {"r1": 1, "r2": 3, "r3": 2, "n1": 0, "n2": 0},
}


def _trec(qrels, runs, k, measures):
    import pytrec_eval

    run = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in runs.items()}
    ev = pytrec_eval.RelevanceEvaluator(qrels, measures, judged_docs_only_flag=True)
    return ev.evaluate(run)


def test_judged_metrics_equal_pytrec_eval_condensed():
    ref = _trec(JUDGED, RUNS, K, {f"P_{K}", f"ndcg_cut_{K}", f"recall_{K}", f"map_cut_{K}"})
    for q, docs in RUNS.items():
        ours = qrels_mod.judged_metrics(docs, JUDGED[q], K)
        assert ours["p_at_k"] == pytest.approx(ref[q][f"P_{K}"], abs=1e-12), q
        assert ours["ndcg_at_k"] == pytest.approx(ref[q][f"ndcg_cut_{K}"], abs=1e-12), q
        assert ours["recall_at_k"] == pytest.approx(ref[q][f"recall_{K}"], abs=1e-12), q
        assert ours["ap_at_k"] == pytest.approx(ref[q][f"map_cut_{K}"], abs=1e-12), q
    # judged@k as pytrec_eval sees it: P@k when every judged image counts as relevant, on the full list
    everything = {q: {d: 1 for d in docs} for q, docs in JUDGED.items()}
    import pytrec_eval

    run = {q: {d: float(K - i) for i, d in enumerate(docs)} for q, docs in RUNS.items()}
    judged_ref = pytrec_eval.RelevanceEvaluator(everything, {f"P_{K}"}).evaluate(run)
    for q, docs in RUNS.items():
        assert qrels_mod.judged_metrics(docs, JUDGED[q], K)["judged_at_k"] == pytest.approx(judged_ref[q][f"P_{K}"])
    # the condensing matters: query 2's nDCG is higher than with unjudged hits counted as non-relevant
    plain = pytrec_eval.RelevanceEvaluator(JUDGED, {f"ndcg_cut_{K}"}).evaluate(run)
    assert qrels_mod.judged_metrics(RUNS["2"], JUDGED["2"], K)["ndcg_at_k"] > plain["2"][f"ndcg_cut_{K}"] + 0.05


def test_query_judgments_drops_the_excluded_query_itself():
    q = {"7": {"7": 3, "8": 1}}
    assert qrels_mod.query_judgments(q, "7", excluded=True) == {"8": 1}
    assert qrels_mod.query_judgments(q, "7", excluded=False) == {"7": 3, "8": 1}
    assert qrels_mod.query_judgments(q, "9", excluded=True) is None


def test_compare_scores_judged_queries_only():
    from onnx_search.experiment.compare import compare

    queries = [
        {"query": f"/q{q}.jpg", "id": 100 + int(q), "label": "", "in_dataset": False, "excluded": False}
        for q in ("1", "2", "3")
    ]
    qrels = {"101": {"11": 1, "12": 2}, "102": {"11": 0}}  # query 3 (id 103) is not judged
    hits = [
        {"query": f"/q{q}.jpg", "model": m, "rank": r, "id": 10 + r, "path": "", "label": "", "cosine": 0.5}
        for q in ("1", "2", "3")
        for m in ("A", "B")
        for r in (1, 2)
    ]
    c = compare(hits, queries, ["A", "B"], 2, None, qrels)
    rows = {(r["query"], r["model"]): r for r in c["per_query"]}
    assert rows["/q1.jpg", "A"]["judged_at_k"] == 1.0 and rows["/q2.jpg", "A"]["judged_at_k"] == 0.5
    assert "p_at_k" not in rows["/q3.jpg", "A"]
    assert c["summary"]["models"]["A"]["p_at_k"] == pytest.approx((1.0 + 0.0) / 2)
    assert c["summary"]["ground_truth"] == {
        "kind": "qrels",
        "judged_queries": 2,
        "unjudged_rule": "condensed",
        "judged_depth": 2,
    }


# --- the YAML section ---------------------------------------------------------------------------------------------

CONFIG = """\
experiment: t
dataset:
  root: {root}
models:
  - name: mobilenetv2
    weights: random
ground_truth:
  qrels: {qrels}
"""


def test_config_qrels_relative_to_the_yaml_folder(tmp_path, monkeypatch):
    from onnx_search.experiment.loader import load_experiment

    (tmp_path / "cfg").mkdir()
    (tmp_path / "imgs").mkdir()
    (tmp_path / "cfg" / "j.qrels").write_text("1 0 2 1\n")
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "cfg" / "exp.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path / "imgs", qrels="j.qrels"))
    exp = load_experiment(cfg)
    assert exp.ground_truth.qrels == tmp_path / "cfg" / "j.qrels"


def test_config_with_a_malformed_qrels_line_fails_with_file_and_line(tmp_path):
    from onnx_search.experiment.loader import load_experiment

    (tmp_path / "imgs").mkdir()
    (tmp_path / "j.qrels").write_text("1 0 2 1\n1 0 3 yes\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path / "imgs", qrels="j.qrels"))
    with pytest.raises(ConfigError, match=r"ground_truth.qrels: .*j.qrels:2: relevance 'yes' is not an integer"):
        load_experiment(cfg)
    cfg.write_text(CONFIG.format(root=tmp_path / "imgs", qrels="none.qrels"))
    with pytest.raises(ConfigError, match=r"none.qrels does not exist"):
        load_experiment(cfg)


def test_paths_in_qrels_map_to_image_ids(tmp_path):
    from onnx_search.ids import image_id

    (tmp_path / "a").mkdir()
    for n in ("q.jpg", "x.jpg"):
        (tmp_path / "a" / n).write_bytes(b"")
    (tmp_path / "j.qrels").write_text(f"a/q.jpg 0 {tmp_path / 'a' / 'x.jpg'} 2\na/q.jpg 0 77 0\n")
    q, x = str(image_id((tmp_path / "a" / "q.jpg").resolve())), str(image_id((tmp_path / "a" / "x.jpg").resolve()))
    assert qrels_mod.read_qrels_ids(tmp_path / "j.qrels") == {q: {x: 2, "77": 0}}
    (tmp_path / "j.qrels").write_text("a/nope.jpg 0 1 1\n")
    with pytest.raises(ConfigError, match=r"a/nope.jpg is neither a catalogued image id nor the path"):
        qrels_mod.read_qrels_ids(tmp_path / "j.qrels")


# --- a real run with a qrels file: the figures in its results equal pytrec_eval on the same hits and qrels ----------


def _judge_pool(root: Path) -> tuple[list[Path], str]:
    """Queries (one per class) and qrels text: same class graded 2/1, the next class 0, the third unjudged;
    half the lines give paths, half give ids."""
    from onnx_search.ids import image_id

    classes = ("circles", "stripes", "checkers")
    files = {c: sorted((root / c).glob("*.jpg")) for c in classes}
    queries, lines = [], []
    for i, c in enumerate(classes):
        q = files[c][0].resolve()
        queries.append(q)
        judged = [(p, 2 if j < 2 else 1) for j, p in enumerate(files[c][1:])]
        judged += [(p, 0) for p in files[classes[(i + 1) % 3]]]
        for j, (p, grade) in enumerate(judged):
            doc = str(p.resolve()) if j % 2 else str(image_id(p.resolve()))
            lines.append(f"{q if i % 2 else image_id(q)} 0 {doc} {grade}")
    return queries, "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def judged_run(labelled_set, models_dir, tmp_path_factory, redis_url_module):
    import json

    from onnx_search.experiment.run import run_experiment

    base = tmp_path_factory.mktemp("judged")
    queries, text = _judge_pool(labelled_set)
    (base / "pool.qrels").write_text(text)
    # two judges behind it: alice gave the file's grades, bob one higher on every third pair; the file holds the
    # lower (the consensus), so the figures stand on the same grades; the run reports their agreement
    alice, bob, marks = [], [], []
    for i, (q, _, d, g) in enumerate(line.split() for line in text.splitlines()):
        b = min(int(g) + 1, 2) if i % 3 == 0 else int(g)
        alice.append(int(g))
        bob.append(b)
        marks += [
            {"query": q, "doc": d, "judge": j, "grade": x, "time": None} for j, x in (("alice", int(g)), ("bob", b))
        ]
    qrels_mod.judges_path(base / "pool.qrels").write_text("".join(json.dumps(m) + "\n" for m in marks))
    paths = "".join(f"\n    - {q}" for q in queries)
    (base / "exp.yaml").write_text(f"""\
experiment: judged
output: {base / "runs"}
data_dir: {base / "data"}
models_dir: {models_dir}
seed: 3
top_k: 5
dataset:
  root: {labelled_set}
models:
  - name: resnet50
    weights: random
    providers: [cpu]
  - name: mobilenetv2
    weights: random
    providers: [cpu]
store:
  redis_url: {redis_url_module}
  namespace: judged-test
queries:
  paths:{paths}
ground_truth:
  qrels: pool.qrels
cost: null
grid_queries: 0
""")
    out = run_experiment(base / "exp.yaml", progress=False)
    return {
        "results": json.loads((out.run_dir / "results.json").read_text()),
        "comparison": json.loads((out.run_dir / "comparison.json").read_text()),
        "qrels": qrels_mod.read_qrels_ids(base / "pool.qrels"),
        "run_dir": out.run_dir,
        "judges": (alice, bob),
    }


def test_run_with_qrels_equals_pytrec_eval(judged_run):
    import pytrec_eval

    res, comp, qrels = judged_run["results"], judged_run["comparison"], judged_run["qrels"]
    k = res["top_k"]
    assert res["qrels"] == qrels and comp["summary"]["ground_truth"]["judged_queries"] == 3
    ids = {q["query"]: str(q["id"]) for q in res["queries"]}
    unjudged_hits = 0
    for model in res["models"]:
        run: dict[str, dict[str, float]] = {}
        for h in res["hits"]:
            if h["model"] == model:
                run.setdefault(ids[h["query"]], {})[str(h["id"])] = float(k - h["rank"])
                unjudged_hits += str(h["id"]) not in qrels[ids[h["query"]]]
        deep = {ids[q]: {str(i): cos for i, cos in lists[model]} for q, lists in res["deep_hits"]["lists"].items()}
        assert all(len(v) > k for v in deep.values())  # the judged metrics stand on lists deeper than k
        measures = {f"P_{k}", f"ndcg_cut_{k}"}
        ref = pytrec_eval.RelevanceEvaluator(qrels, measures, judged_docs_only_flag=True).evaluate(deep)
        everything = {q: {d: 1 for d in docs} for q, docs in qrels.items()}
        judged_ref = pytrec_eval.RelevanceEvaluator(everything, {f"P_{k}"}).evaluate(run)
        rows = [r for r in comp["per_query"] if r["model"] == model]
        assert len(rows) == 3
        for r in rows:
            q = ids[r["query"]]
            assert r["p_at_k"] == pytest.approx(ref[q][f"P_{k}"], abs=1e-12)
            assert r["ndcg_at_k"] == pytest.approx(ref[q][f"ndcg_cut_{k}"], abs=1e-12)
            assert r["judged_at_k"] == pytest.approx(judged_ref[q][f"P_{k}"], abs=1e-12)
        summary = comp["summary"]["models"][model]
        assert summary["judged_at_k"] == pytest.approx(sum(r["judged_at_k"] for r in rows) / 3)
    assert unjudged_hits > 0  # the third class is unjudged, so the condensed-list rule was exercised
    ev = comp["evidence"]  # judged@k and the judged metrics carry intervals; the verdict is on nDCG@k
    assert set(ev["quality"]["judged_at_k"]) == set(res["models"]) and ev["verdict"]["metric"] == "ndcg_at_k"
    assert all(ev["quality"]["ndcg_at_k"][m]["n"] == 3 for m in res["models"])


def test_recompare_of_a_judged_run_gives_the_same_figures(judged_run):
    from onnx_search.experiment.results import recompare

    again = recompare(judged_run["run_dir"])
    assert again["per_query"] == judged_run["comparison"]["per_query"]


def test_a_run_on_qrels_with_two_judges_reports_their_kappa_in_results_and_summary(judged_run):
    from sklearn.metrics import cohen_kappa_score

    alice, bob = judged_run["judges"]
    want, n, open_ = cohen_kappa_score(alice, bob), len(alice), sum(a != b for a, b in zip(alice, bob, strict=True))
    assert 0 < want < 1 and open_ > 0
    rec = judged_run["results"]["judges"]
    assert rec["judges"] == ["alice", "bob"] and rec["sidecar"] == "pool.qrels.judges.jsonl"
    assert rec["pairs"][0]["shared"] == n and rec["pairs"][0]["kappa"] == pytest.approx(want, abs=1e-12)
    assert rec["overall"]["kappa"] == pytest.approx(want, abs=1e-12) and rec["conflicts"] == open_
    lines = [x for x in (judged_run["run_dir"] / "summary.md").read_text().splitlines() if x.startswith("Judges ")]
    assert lines == [
        f"Judges alice, bob (pool.qrels.judges.jsonl): Cohen's kappa {want:.3f} on {n} shared pairs; per pair of "
        f"judges (kappa on shared pairs): alice vs bob {want:.3f} on {n}; {open_} open conflicts (pairs whose "
        "judges disagree; the qrels hold the lower median)."
    ]


def test_compare_with_qrels_rescores_a_run_made_without_judgments(judged_run, tmp_path):
    """The same experiment run without ground_truth, then `compare RUN --qrels pool.qrels` (no store opened):
    the figures and the verdict equal those of the run made with the judgments."""
    import json

    from onnx_search.experiment.run import run_experiment
    from tests.helpers import run_cli

    base = judged_run["run_dir"].parent.parent
    text = (base / "exp.yaml").read_text().replace("experiment: judged", "experiment: unjudged")
    (base / "unjudged.yaml").write_text(text.replace("ground_truth:\n  qrels: pool.qrels\n", ""))
    out = run_experiment(base / "unjudged.yaml", progress=False)
    res = json.loads((out.run_dir / "results.json").read_text())
    assert "qrels" not in res and res["deep_hits"]["depth"] == 100
    r = run_cli("compare", str(out.run_dir), "--qrels", str(base / "pool.qrels"))
    assert r.returncode == 0, r.stderr
    written = out.run_dir / "comparison.pool.json"
    assert f"wrote {written}" in r.stdout
    again, fresh = json.loads(written.read_text()), judged_run["comparison"]
    assert again["per_query"] == fresh["per_query"]
    assert again["evidence"]["verdict"]["text"] == fresh["evidence"]["verdict"]["text"]
    assert again["evidence"]["verdict"]["text"] in r.stdout
    assert again["evidence"]["quality"] == fresh["evidence"]["quality"]
    assert "Judges " not in (out.run_dir / "summary.md").read_text()  # the run itself had no judgments
    kappa = again["summary"]["ground_truth"]["judges"]["overall"]["kappa"]  # those of the judges behind pool.qrels
    assert kappa == pytest.approx(judged_run["results"]["judges"]["overall"]["kappa"], abs=1e-12)
    assert f"Judges alice, bob (pool.qrels.judges.jsonl): Cohen's kappa {kappa:.3f} on " in r.stdout
    (tmp_path / "other.qrels").write_text("12345 0 1 1\n")
    r = run_cli("compare", str(out.run_dir), "--qrels", str(tmp_path / "other.qrels"))
    assert r.returncode == 2 and "judge none of the run's 3 queries" in r.stderr


# --- the judgments CLI ----------------------------------------------------------------------------------------------


def test_cli_export_ids_and_paths_relative_to_the_root(tmp_path):
    from onnx_search.ids import image_id
    from tests.helpers import run_cli

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    for n in ("q.jpg", "x.jpg"):
        (tmp_path / "imgs" / "a" / n).write_bytes(b"")
    q, x = (tmp_path / "imgs" / "a" / "q.jpg").resolve(), (tmp_path / "imgs" / "a" / "x.jpg").resolve()
    store = JudgmentStore(judgments_path(tmp_path / "data", "exp"))
    store.judge(str(image_id(q)), str(image_id(x)), 2, judge="alice")
    store.judge(str(image_id(q)), str(image_id(x)), 1, judge="bob")
    store.judge(str(image_id(q)), "99", 0)  # not under the folder: stays an id
    out = tmp_path / "out.qrels"
    r = run_cli("judgments", "export", "--data-dir", str(tmp_path / "data"), "--experiment", "exp", str(out))
    assert r.returncode == 0, r.stderr
    assert read_qrels(out) == store.qrels() == {str(image_id(q)): {str(image_id(x)): 1, "99": 0}}  # consensus
    r = run_cli("judgments", "export", "--data-dir", str(tmp_path / "data"), "--experiment", "exp", str(out),
                "--paths-under", str(tmp_path / "imgs"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert read_qrels(out) == {"a/q.jpg": {"a/x.jpg": 1, "99": 0}} and "1 ids not found" in r.stdout
    r = run_cli("judgments", "export", "--data-dir", str(tmp_path / "data"), "-e", "exp", str(out), "--judge", "alice")
    assert r.returncode == 0, r.stderr
    assert read_qrels(out) == {str(image_id(q)): {str(image_id(x)): 2}}
    r = run_cli("judgments", "export", "--data-dir", str(tmp_path / "data"), "--experiment", "nope", str(out))
    assert r.returncode == 2 and "no judgments for experiment nope" in r.stderr


@pytest.fixture
def catalogued_exp(tmp_path, redis_url):
    """An experiment file (graded 0..3) over four image files, catalogued in a real Redis (no vectors needed)."""
    from onnx_search.ids import image_id
    from onnx_search.store.catalog import Catalog, ImageRecord
    from onnx_search.store.local_redis import connect_redis

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    files = []
    for n in range(4):
        f = root / "a" / f"{n}.jpg"
        f.write_bytes(b"")
        files.append(f.resolve())
    (tmp_path / "outside.jpg").write_bytes(b"")
    ns = f"judgments-cli-{tmp_path.name}"
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"""\
experiment: jcli
data_dir: {tmp_path / "data"}
output: {tmp_path / "runs"}
dataset:
  root: {root}
models:
  - name: mobilenetv2
    weights: random
store:
  redis_url: {redis_url}
  namespace: {ns}
judging:
  max_grade: 3
""")
    ids = [str(image_id(f)) for f in files]
    recs = [ImageRecord(int(i), str(f), "", 0, 0, "a", str(root.resolve())) for i, f in zip(ids, files, strict=True)]
    Catalog(connect_redis(redis_url, tmp_path / "data"), ns).put_images(recs)
    return {"cfg": cfg, "ids": ids, "root": root, "dest": judgments_path(tmp_path / "data", "jcli")}


def test_cli_import_checks_every_line_as_the_endpoint_and_writes_nothing_on_any_error(catalogued_exp, tmp_path):
    from tests.helpers import run_cli

    ids, cfg, dest = catalogued_exp["ids"], catalogued_exp["cfg"], catalogued_exp["dest"]
    JudgmentStore(dest).judge(ids[0], ids[1], 1, judge="alice")
    before = dest.read_bytes(), judges_path(dest).read_bytes()
    bad = tmp_path / "bad.qrels"
    bad.write_text(
        f"{ids[0]} 0 {ids[2]} 1\n"  # good
        f"{ids[0]} 0 {ids[3]} 9\n"  # grade above judging.max_grade
        f"{ids[0]} 0 12345 1\n"  # not in the catalogue
        f"{ids[0]} 0 ../outside.jpg 0\n"  # a path outside the dataset root
        f"a/1.jpg 0 {ids[1]} 1\n"  # the query judged against itself (a path and an id of one image)
    )
    r = run_cli("judgments", "import", str(bad), "-e", str(cfg))
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 5 and lines[-1] == f"error: 4 bad lines in {bad}: nothing was imported"
    assert lines[0].startswith(f"error: {bad}:2: grade 9 is outside this experiment's scale: 0 (not relevant) to 3")
    assert lines[1] == f"error: {bad}:3: image id 12345 is not in the catalogue"
    assert lines[2].startswith(f"error: {bad}:4: ../outside.jpg is outside the dataset root")
    assert lines[3].startswith(f"error: {bad}:5: query {ids[1]} is judged against itself")
    assert (dest.read_bytes(), judges_path(dest).read_bytes()) == before  # nothing written
    good = tmp_path / "good.qrels"
    good.write_text(f"{ids[0]} 0 {ids[1]} 0\n{ids[0]} 0 a/2.jpg 3\n{ids[3]} 0 a/0.jpg 1\n")
    r = run_cli("judgments", "import", str(good), "-e", str(cfg), "--judge", "bob")
    assert r.returncode == 0, r.stderr
    assert "3 new, 0 changed, 0 already there" in r.stdout
    store = JudgmentStore(dest)
    assert store.marks()[ids[0], ids[1]] == {"alice": 1, "bob": 0}  # alice's mark survives bob's import
    assert read_qrels(dest) == {ids[0]: {ids[1]: 0, ids[2]: 3}, ids[3]: {ids[0]: 1}}
    n = len(judges_path(dest).read_text().splitlines())
    r = run_cli("judgments", "import", str(good), "-e", str(cfg), "--judge", "bob")  # again: no duplicates
    assert r.returncode == 0 and "0 new, 0 changed, 3 already there" in r.stdout
    assert len(judges_path(dest).read_text().splitlines()) == n and dest.read_text().count("\n") == 3
    r = run_cli("judgments", "import", str(good), "--data-dir", str(tmp_path / "data"), "-e", "jcli")
    assert r.returncode == 2 and "pass its experiment file" in r.stderr


def test_cli_import_binary_experiment_refuses_grade_2(catalogued_exp, tmp_path):
    from tests.helpers import run_cli

    cfg, ids = catalogued_exp["cfg"], catalogued_exp["ids"]
    cfg.write_text(cfg.read_text().replace("max_grade: 3", "max_grade: 1"))
    f = tmp_path / "g.qrels"
    f.write_text(f"{ids[0]} 0 {ids[1]} 2\n")
    r = run_cli("judgments", "import", str(f), "-e", str(cfg))
    assert r.returncode == 2 and f"{f}:1: grade 2 is outside this experiment's scale: 0 (not relevant) or 1" in r.stderr
    assert not catalogued_exp["dest"].exists()


def test_cli_agreement_and_remove(catalogued_exp):
    from sklearn.metrics import cohen_kappa_score

    from tests.helpers import run_cli

    cfg, ids, dest = catalogued_exp["cfg"], catalogued_exp["ids"], catalogued_exp["dest"]
    store = JudgmentStore(dest)
    a, b = [1, 0, 1, 1, 0, 2], [1, 0, 0, 1, 1, 2]
    pairs = [(q, d) for q in ids[:3] for d in ids if d != q][: len(a)]
    for (q, d), ga, gb in zip(pairs, a, b, strict=True):
        store.judge(q, d, ga, judge="alice")
        store.judge(q, d, gb, judge="bob")
    r = run_cli("judgments", "agreement", "-e", str(cfg))
    assert r.returncode == 0, r.stderr
    assert f"alice vs bob: kappa {cohen_kappa_score(a, b):.3f} on 6 shared pairs" in r.stdout
    assert "conflicts: 2 pairs" in r.stdout
    r = run_cli("judgments", "remove", "-e", str(cfg), "--all")
    assert r.returncode == 2 and "would remove all 12 marks" in r.stderr and store.count() == 6
    r = run_cli("judgments", "remove", "-e", str(cfg), "--judge", "bob", "--query", "a/0.jpg")
    assert r.returncode == 0 and "removed 3 marks" in r.stdout, r.stderr
    r = run_cli("judgments", "remove", "-e", str(cfg), "--query", ids[1])
    assert r.returncode == 0 and "removed 6 marks" in r.stdout and "3 judged pairs left" in r.stdout, r.stderr
    assert JudgmentStore(dest).judges() == ["alice"]
    r = run_cli("judgments", "remove", "-e", str(cfg), "--all", "--yes")
    assert r.returncode == 0 and "removed 3 marks (all)" in r.stdout and read_qrels(dest) == {}


def test_judged_queries_are_the_default_query_set(tmp_path):
    from onnx_search.experiment.loader import load_experiment
    from onnx_search.experiment.queries import select_queries
    from onnx_search.ids import image_id

    imgs = tmp_path / "imgs"
    (imgs / "a").mkdir(parents=True)
    files = []
    for n in range(4):
        files.append((imgs / "a" / f"{n}.jpg").resolve())
        files[-1].write_bytes(b"")
    (tmp_path / "j.qrels").write_text(
        f"{image_id(files[2])} 0 {image_id(files[0])} 1\nimgs/a/1.jpg 0 77 0\n999 0 1 1\n"
    )
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG.format(root=imgs, qrels="j.qrels"))
    assert select_queries(load_experiment(cfg), files) == [files[1], files[2]]  # judged and catalogued
    cfg.write_text(CONFIG.format(root=imgs, qrels="j.qrels") + "queries:\n  sample: 3\n")
    assert len(select_queries(load_experiment(cfg), files)) == 3  # a named query source wins
    (tmp_path / "j.qrels").write_text("999 0 1 1\n")
    cfg.write_text(CONFIG.format(root=imgs, qrels="j.qrels"))
    with pytest.raises(ConfigError, match="none of the 1 judged queries"):
        select_queries(load_experiment(cfg), files)


# --- deep lists, score ties and duplicate ids: the judged metrics against pytrec_eval -J on the same lists ---------


def _deep_case(seed: int = 0, n_queries: int = 300, depth: int = 40, k: int = 5):
    """Random runs ``depth`` deep with many exact score ties (scores on a coarse grid) and ids whose text order
    differs from their numeric order; each query judges a random subset, often little of its top k."""
    import numpy as np

    rng = np.random.default_rng(seed)
    runs, qrels = {}, {}
    for q in range(n_queries):
        ids = [str(i) for i in rng.choice(5000, size=depth, replace=False)]
        scores = np.round(rng.uniform(0.2, 1.0, size=depth), 1)  # ~9 distinct values: ties everywhere
        runs[str(q)] = dict(zip(ids, scores.tolist(), strict=True))
        judged = rng.choice(ids, size=int(rng.integers(1, depth // 2)), replace=False).tolist()
        judged += [str(i) for i in rng.choice(np.arange(5000, 5100), size=3, replace=False)]  # never retrieved
        qrels[str(q)] = {d: int(rng.integers(0, 4)) for d in judged}
    return runs, qrels, k


def test_trec_order_is_score_then_id_descending_as_text():
    import pytrec_eval

    from onnx_search.experiment.metrics import trec_order

    pairs = [("10", 0.5), ("9", 0.5), ("100", 0.5), ("2", 0.7), ("11", 0.5)]
    order = [d for d, _ in trec_order(pairs, lambda p: p[1], lambda p: p[0])]
    assert order == ["2", "9", "11", "100", "10"]
    for pos, doc in enumerate(order, 1):  # pytrec_eval puts each at the same place (1 / its rank)
        first = pytrec_eval.RelevanceEvaluator({"q": {doc: 1}}, {"recip_rank"}).evaluate({"q": dict(pairs)})
        assert first["q"]["recip_rank"] == pytest.approx(1 / pos), doc


def test_judged_metrics_on_deep_lists_with_ties_equal_pytrec_eval_condensed():
    from onnx_search.experiment.metrics import trec_order

    runs, qrels, k = _deep_case()
    import pytrec_eval

    measures = {f"P_{k}", f"recall_{k}", f"map_cut_{k}", f"ndcg_cut_{k}"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures, judged_docs_only_flag=True).evaluate(runs)
    unjudged_zero = pytrec_eval.RelevanceEvaluator(qrels, {f"P_{k}"}).evaluate(
        {q: dict(sorted(r.items(), key=lambda x: -x[1])[:k]) for q, r in runs.items()}
    )  # the top k only, unjudged counted as not relevant: what a k-deep run can do at best
    filled = 0
    for q, run in runs.items():
        ranked = [d for d, _ in trec_order(list(run.items()), lambda p: p[1], lambda p: p[0])]
        ours = qrels_mod.judged_metrics(ranked, qrels[q], k)
        assert ours["p_at_k"] == pytest.approx(ref[q][f"P_{k}"], abs=1e-12), q
        assert ours["recall_at_k"] == pytest.approx(ref[q][f"recall_{k}"], abs=1e-12), q
        assert ours["ap_at_k"] == pytest.approx(ref[q][f"map_cut_{k}"], abs=1e-12), q
        assert ours["ndcg_at_k"] == pytest.approx(ref[q][f"ndcg_cut_{k}"], abs=1e-12), q
        filled += ours["p_at_k"] > unjudged_zero[q][f"P_{k}"] + 1e-12
    assert filled > len(runs) // 4  # judged images below rank k fill the condensed top k on many queries


def test_compare_scores_the_deep_lists_with_ties_as_pytrec_eval():
    """compare() on top-k hits in the store's order (ties by ascending id) and the deeper lists of the same run:
    the per-query judged metrics equal pytrec_eval -J on the deep run."""
    import pytrec_eval

    from onnx_search.experiment.compare import compare, deep_lists

    runs, qrels, k = _deep_case(seed=1, n_queries=120)
    queries = [{"query": f"/q{q}.jpg", "id": int(q), "label": "", "in_dataset": False, "excluded": False}
               for q in runs]  # fmt: skip
    hits = []
    for q, run in runs.items():
        store_order = sorted(run.items(), key=lambda p: (-p[1], int(p[0])))  # ties by ascending id, as a store may
        for rank, (d, s) in enumerate(store_order, 1):
            hits.append({"query": f"/q{q}.jpg", "model": "A", "rank": rank, "id": int(d), "path": "", "label": "",
                         "cosine": s})  # fmt: skip
    deep = deep_lists(hits, 40)
    c = compare([h for h in hits if h["rank"] <= k], queries, ["A"], k, None, qrels, deep)
    measures = {f"P_{k}", f"ndcg_cut_{k}", f"map_cut_{k}", f"recall_{k}"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures, judged_docs_only_flag=True).evaluate(runs)
    for r in c["per_query"]:
        q = r["query"][2:-4]
        for ours, theirs in (("p_at_k", "P"), ("ndcg_at_k", "ndcg_cut"), ("ap_at_k", "map_cut"),
                             ("recall_at_k", "recall")):  # fmt: skip
            assert r[ours] == pytest.approx(ref[q][f"{theirs}_{k}"], abs=1e-12), (q, ours)
    assert c["summary"]["ground_truth"]["judged_depth"] == 40
    # without the deep lists only the top k is scored: the figures differ (what a k-deep run loses)
    shallow = compare([h for h in hits if h["rank"] <= k], queries, ["A"], k, None, qrels)
    assert shallow["summary"]["models"]["A"]["p_at_k"] < c["summary"]["models"]["A"]["p_at_k"] - 0.01


def test_a_duplicate_id_in_a_ranking_is_an_error():
    from onnx_search.errors import OnnxSearchError
    from onnx_search.experiment.compare import compare, deep_lists

    queries = [{"query": "/q.jpg", "id": 1, "label": "", "in_dataset": False, "excluded": False}]
    hits = [{"query": "/q.jpg", "model": "A", "rank": r, "id": i, "path": "", "label": "", "cosine": 1 - r / 10}
            for r, i in ((1, 7), (2, 8), (3, 7))]  # fmt: skip
    with pytest.raises(OnnxSearchError, match=r"model A's hits for query /q.jpg lists image 7 2 times") as info:
        compare(hits, queries, ["A"], 3, None, {"1": {"7": 1, "8": 1}})
    assert "\n" not in str(info.value)
    good = [h | {"id": 9} if h["rank"] == 3 else h for h in hits]
    with pytest.raises(OnnxSearchError, match=r"deep list for query /q.jpg lists image 7"):
        compare(good, queries, ["A"], 3, None, {"1": {"7": 1}}, deep_lists(hits, 3))
