"""Several judges: the sidecar of who judged what, the consensus in the qrels file, conflicts, removal, and
Cohen's kappa against scikit-learn."""

from __future__ import annotations

import json
import math

import pytest
from sklearn.metrics import cohen_kappa_score

from onnx_search.errors import ConfigError
from onnx_search.experiment.judges import agreement, format_agreement
from onnx_search.experiment.qrels import (
    JudgmentStore,
    consensus,
    judges_path,
    judgment_error,
    read_qrels,
    write_qrels,
)


def _sidecar(p):
    return [json.loads(line) for line in judges_path(p).read_text().splitlines()]


@pytest.mark.parametrize(
    "grades,expected",
    [([2], 2), ([0, 1], 0), ([3, 1], 1), ([0, 3, 2], 2), ([1, 1, 3, 3], 1), ([3, 3, 0, 2, 1], 2)],
)
def test_consensus_is_the_lower_median(grades, expected):
    assert consensus(grades) == expected
    assert consensus({f"j{i}": g for i, g in enumerate(grades)}) == expected


def test_two_judges_keep_their_own_marks_and_the_qrels_holds_the_consensus(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    assert store.judge("1", "10", 1, judge="alice") == {"grade": 1, "conflict": False, "judges": {"alice": 1}}
    out = store.judge("1", "10", 0, judge="bob")
    assert out == {"grade": 0, "conflict": True, "judges": {"alice": 1, "bob": 0}}
    assert read_qrels(p) == {"1": {"10": 0}}  # valid TREC, the lower median, on disk before the return
    assert p.read_text() == "1 0 10 0\n"
    recs = _sidecar(p)
    assert [(r["query"], r["doc"], r["judge"], r["grade"]) for r in recs] == [
        ("1", "10", "alice", 1),
        ("1", "10", "bob", 0),
    ]
    assert all(r["time"].endswith("Z") for r in recs)
    assert store.conflicts() == [{"query": "1", "doc": "10", "judges": {"alice": 1, "bob": 0}, "grade": 0}]
    # a third judge moves the median; bob's change does not erase alice's mark
    assert store.judge("1", "10", 1, judge="carol")["grade"] == 1
    store.judge("1", "10", 1, judge="bob")
    assert store.conflicts() == [] and JudgmentStore(p).marks() == {("1", "10"): {"alice": 1, "bob": 1, "carol": 1}}
    n = len(_sidecar(p))
    store.judge("1", "10", 1, judge="bob")  # the same mark again records nothing
    assert len(_sidecar(p)) == n


def test_unjudge_one_judge_or_all_and_remove_by_query_judge_or_all(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    for j, g in (("alice", 2), ("bob", 0)):
        store.judge("1", "10", g, judge=j)
        store.judge("1", "11", 1, judge=j)
        store.judge("2", "20", 1, judge=j)
    assert store.unjudge("1", "10", judge="bob") == 1
    assert read_qrels(p)["1"]["10"] == 2  # alice's mark alone now
    assert store.unjudge("1", "10") == 1 and "10" not in read_qrels(p)["1"]
    assert store.unjudge("1", "10") == 0
    assert store.remove(judge="alice") == 2
    assert JudgmentStore(p).marks() == {("1", "11"): {"bob": 1}, ("2", "20"): {"bob": 1}}
    assert store.remove(query="2") == 1 and read_qrels(p) == {"1": {"11": 1}}
    store.judge("3", "30", 1, judge="alice")
    assert store.remove() == 2 and read_qrels(p) == {} and JudgmentStore(p).count() == 0


def test_store_refuses_what_the_endpoint_refuses_and_writes_nothing(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p, max_grade=1)
    for args, msg in [
        (("1", "1", 1), "judged against itself"),
        (("1", "2", 2), r"grade 2 is outside .* 0 \(not relevant\) or 1 .*judging.max_grade"),
        (("1", "2", True), "grade True"),
        (("1", "", 1), "empty or holds whitespace"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            store.judge(*args)
    with pytest.raises(ConfigError, match="judge name 'a b' is not allowed"):
        store.judge("1", "2", 1, judge="a b")
    assert not p.exists() and not judges_path(p).exists()
    assert JudgmentStore(p, max_grade=3).judge("1", "2", 3)["grade"] == 3
    assert judgment_error("1", "2", 3, 3) is None and judgment_error("1", "2", 4, 3) is not None
    assert judgment_error("1", "2", 0, 1) is None and judgment_error("1", "2", -1, 3) is not None


def test_a_qrels_file_from_elsewhere_is_the_default_judges_and_survives_a_second_judge(tmp_path):
    p = tmp_path / "j.qrels"
    write_qrels(p, {"1": {"10": 1, "11": 0}})  # no sidecar: written by another tool
    store = JudgmentStore(p)
    assert store.marks() == {("1", "10"): {"default": 1}, ("1", "11"): {"default": 0}}
    out = store.judge("1", "10", 0, judge="alice")
    assert out["judges"] == {"default": 1, "alice": 0} and out["conflict"]
    assert {(r["judge"], r["doc"]) for r in _sidecar(p)} >= {("default", "10"), ("default", "11"), ("alice", "10")}
    assert JudgmentStore(p).marks()[("1", "11")] == {"default": 0}


def test_a_sidecar_line_cut_by_a_crash_is_dropped_and_a_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    store.judge("1", "10", 1, judge="alice")
    side = judges_path(p)
    with open(side, "a") as f:
        f.write('{"query": "1", "doc": "11", "jud')  # an append that never returned
    assert JudgmentStore(p).marks() == {("1", "10"): {"alice": 1}}
    store.judge("1", "12", 0, judge="alice")  # the cut tail is dropped, not glued to the new line
    assert JudgmentStore(p).marks() == {("1", "10"): {"alice": 1}, ("1", "12"): {"alice": 0}}
    side.write_text(side.read_text().replace('"grade": 1', '"grade": "yes"'))
    with pytest.raises(ConfigError, match=rf"{side}:1: not a judgment record"):
        JudgmentStore(p)


def _ten_pools(store, a="alice", b="bob"):
    """Two judges on 10 shared pools of 5 images (graded 0..3), one pair only alice judged, one only bob."""
    ga, gb = [], []
    for q in range(10):
        for d in range(5):
            x = (q * 7 + d * 3) % 4
            y = x if (q + d) % 3 else (x + 1) % 4
            store.judge(str(q), str(100 + d), x, judge=a)
            store.judge(str(q), str(100 + d), y, judge=b)
            ga.append(x)
            gb.append(y)
    store.judge("50", "500", 1, judge=a)
    store.judge("51", "501", 0, judge=b)
    return ga, gb


def test_kappa_equals_sklearn_on_the_shared_pairs(tmp_path):
    store = JudgmentStore(tmp_path / "j.qrels")
    ga, gb = _ten_pools(store)
    got = agreement(store)
    want = cohen_kappa_score(ga, gb)
    assert got["judges"] == ["alice", "bob"]
    (pair,) = got["pairs"]
    assert pair["shared"] == 50 and pair["kappa"] == pytest.approx(want, abs=1e-12)
    assert 0 < want < 1
    assert got["overall"]["kappa"] == pytest.approx(want, abs=1e-12) and got["overall"]["shared"] == 50
    assert got["conflicts"] == sum(x != y for x, y in zip(ga, gb, strict=True))
    text = format_agreement(got)
    assert f"alice vs bob: kappa {want:.3f} on 50 shared pairs" in text and "nan" not in text.lower()


def test_overall_is_the_shared_pair_weighted_mean_of_pairwise_kappas(tmp_path):
    store = JudgmentStore(tmp_path / "j.qrels")
    _ten_pools(store)
    store.judge("0", "100", 1, judge="carol")  # carol shares 3 pairs with both
    store.judge("0", "101", 0, judge="carol")
    store.judge("0", "102", 1, judge="carol")
    got = agreement(tmp_path / "j.qrels")
    by = {tuple(r["judges"]): r for r in got["pairs"]}
    m = store.marks()
    for a, b in (("alice", "bob"), ("alice", "carol"), ("bob", "carol")):
        shared = sorted(p for p, js in m.items() if a in js and b in js)
        want = cohen_kappa_score([m[p][a] for p in shared], [m[p][b] for p in shared])
        assert by[a, b]["shared"] == len(shared)
        if math.isnan(want):
            assert by[a, b]["kappa"] is None and "undefined" in by[a, b]["reason"]
        else:
            assert by[a, b]["kappa"] == pytest.approx(want)
    scored = [r for r in got["pairs"] if r["kappa"] is not None]
    assert len(scored) >= 2
    w = sum(r["shared"] for r in scored)
    assert got["overall"]["kappa"] == pytest.approx(sum(r["kappa"] * r["shared"] for r in scored) / w)
    assert got["overall"]["shared"] == w


def test_no_shared_pairs_or_one_judge_is_a_clear_line_not_nan(tmp_path):
    store = JudgmentStore(tmp_path / "j.qrels")
    store.judge("1", "10", 1, judge="alice")
    one = agreement(store)
    assert (
        one["pairs"] == [] and one["overall"]["kappa"] is None and one["overall"]["reason"] == "fewer than two judges"
    )
    store.judge("2", "20", 0, judge="bob")
    got = agreement(store)
    (pair,) = got["pairs"]
    assert pair["shared"] == 0 and pair["kappa"] is None and "no shared pairs" in pair["reason"]
    assert got["overall"]["kappa"] is None and got["overall"]["shared"] == 0
    text = format_agreement(got)
    assert "alice vs bob: kappa undefined on 0 shared pairs (no shared pairs" in text and "nan" not in text.lower()
    store.judge("2", "20", 0, judge="alice")  # one shared pair, same grade: 0/0 for kappa
    pair = agreement(store)["pairs"][0]
    assert pair["shared"] == 1 and pair["kappa"] is None and pair["observed"] == 1.0 and "undefined" in pair["reason"]


# --- the summary of a run scored on a qrels file with a judges record beside it ---------------------------------------


def _summary(run, judges):
    from onnx_search.experiment.report.summary import console_summary, header_lines, summary_markdown

    results = json.loads((run / "results.json").read_text())
    results = results | ({"judges": judges} if judges is not None else {})
    comparison = json.loads((run / "comparison.json").read_text())
    comparison.pop("cost")  # the hand-made run's cost holds speeds only
    header = header_lines(results["experiment"], [], None, results)
    return summary_markdown(comparison, header, None, None, None, results), console_summary(
        comparison, header, None, results, run
    )


def test_summary_gives_the_judges_kappa_per_pair_and_overall_and_nothing_for_one_judge(tmp_path):
    from onnx_search.experiment.judges import judges_record
    from tests.evidence_runs import make_run

    run = make_run(tmp_path, "r", judged=True)
    qrels = json.loads((run / "results.json").read_text())["qrels"]
    path = tmp_path / "two.qrels"
    store = JudgmentStore(path)
    ga, gb, gc = [], [], []
    for i, (q, d, g) in enumerate((q, d, g) for q, docs in sorted(qrels.items()) for d, g in sorted(docs.items())):
        b = (g + 1) % 3 if i % 4 == 0 else g
        store.judge(q, d, g, judge="alice")
        store.judge(q, d, b, judge="bob")
        ga.append(g)
        gb.append(b)
        if i < 12:  # carol shares 12 pairs with each
            gc.append(g if i % 2 else 1)
            store.judge(q, d, gc[-1], judge="carol")
    rec = judges_record(path)
    assert rec == agreement(store) | {"sidecar": "two.qrels.judges.jsonl"}
    k_ab, n = cohen_kappa_score(ga, gb), len(ga)
    k_ac, k_bc = cohen_kappa_score(ga[:12], gc), cohen_kappa_score(gb[:12], gc)
    overall = (k_ab * n + k_ac * 12 + k_bc * 12) / (n + 24)
    conflicts = sum(len({a, b, *gc[i : i + 1]}) > 1 for i, (a, b) in enumerate(zip(ga, gb, strict=True)))
    assert 0 < min(k_ab, k_ac, k_bc) and max(k_ab, k_ac, k_bc) < 1 and k_ab != k_ac  # the weights matter
    want = (
        f"Judges alice, bob, carol (two.qrels.judges.jsonl): Cohen's kappa {overall:.3f} on {n + 24} shared pairs; "
        f"per pair of judges (kappa on shared pairs): alice vs bob {k_ab:.3f} on {n}; alice vs carol {k_ac:.3f} on "
        f"12; bob vs carol {k_bc:.3f} on 12; {conflicts} open conflicts (pairs whose judges disagree; the qrels hold "
        "the lower median)."
    )
    md, console = _summary(run, rec)
    assert [x for x in md.splitlines() if x.startswith("Judges ")] == [want]
    assert want in console  # the console summary shares the notes on the data
    plain, _ = _summary(run, None)
    assert md.replace(f"\n{want}\n", "") == plain  # one line (and its blank line), nothing else changes

    one = tmp_path / "one.qrels"  # one judge: a record in results.json, no line in the summary
    JudgmentStore(one).judge("1", "10", 1, judge="alice")
    single = judges_record(one)
    assert single["judges"] == ["alice"] and _summary(run, single) == _summary(run, None)
    write_qrels(tmp_path / "bare.qrels", {"1": {"10": 1}})  # no judges record beside it: nothing
    assert judges_record(tmp_path / "bare.qrels") is None and judges_record(None) is None


def test_summary_says_in_one_line_when_agreement_cannot_be_computed(tmp_path, monkeypatch):
    from onnx_search.experiment import judges
    from tests.evidence_runs import make_run

    def no_sklearn(a, b):
        raise ConfigError("agreement needs scikit-learn: pip install 'onnx-search[serve]'")

    monkeypatch.setattr(judges, "_kappa", no_sklearn)
    store = JudgmentStore(tmp_path / "j.qrels")
    store.judge("1", "10", 1, judge="alice")
    store.judge("1", "10", 0, judge="bob")
    rec = judges.judges_record(tmp_path / "j.qrels")
    md, _ = _summary(make_run(tmp_path, "r"), rec)
    assert [x for x in md.splitlines() if x.startswith("Judges ")] == [
        "Judges alice, bob (j.qrels.judges.jsonl): agreement not computed: agreement needs scikit-learn: "
        "pip install 'onnx-search[serve]'"
    ]


# --- `run` while the explorer holds the Milvus Lite folder: one line naming `serve` and the data folder ----------

HOLD = """\
import sys, time
from pymilvus import MilvusClient
c = MilvusClient(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_run_while_serve_holds_milvus_lite_says_stop_serve_in_one_line_and_writes_nothing(
    tmp_path, labelled_set, redis_url
):
    import subprocess
    import sys

    from onnx_search.store.milvus import lite_lock_holder, lite_locked_message
    from tests.helpers import run_cli

    data = tmp_path / "data"
    (data / "milvus").mkdir(parents=True)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"""\
experiment: locked
output: {tmp_path / "runs"}
data_dir: {data}
models_dir: {tmp_path / "models"}
dataset:
  root: {labelled_set}
models:
  - name: mobilenetv2
    weights: random
    providers: [cpu]
store:
  redis_url: {redis_url}
  namespace: locked-test
cost: null
""")
    # a real Milvus Lite client on the experiment's folder, in a process whose command line is the explorer's
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data / "milvus" / "milvus.db"), "onnx-search", "serve", "runs/locked"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        found = lite_lock_holder(data)
        assert found is not None and found["pid"] == holder.pid
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        r = run_cli("run", str(cfg))
        assert r.returncode == 2, r.stdout + r.stderr
        err = r.stderr.strip()
        assert err.count("\n") == 0, err
        assert f"`onnx-search serve`, pid {holder.pid}) holds the stores in {data}, and only one process" in err
        assert "stop `serve` first" in err
        assert not (tmp_path / "runs").exists() and not (tmp_path / "models").exists()  # stopped before converting
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert lite_lock_holder(data) is None  # the lock went with its process
    other = lite_locked_message(data, {"pid": 7, "command": "python notebook.py", "serve": False})
    assert "held by pid 7: python notebook.py" in other and "stop `onnx-search serve`" in other
    assert f"data folder {data}" in other
