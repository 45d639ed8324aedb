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
    with pytest.raises(ConfigError, match="not an integer >= 0"):
        store.judge("5", "9", -1)
    with pytest.raises(ConfigError, match="whitespace"):
        store.judge("5", "a b", 1)


def test_store_sees_another_writer(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    store.judge("1", "1", 1)
    other = JudgmentStore(p)
    other.judge("2", "2", 1)
    store.judge("3", "3", 0)  # must not drop the other writer's judgment
    assert read_qrels(p) == {"1": {"1": 1}, "2": {"2": 1}, "3": {"3": 0}}


def test_concurrent_judges_from_threads_lose_nothing(tmp_path):
    p = tmp_path / "j.qrels"
    store = JudgmentStore(p)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(25):
                store.judge(str(t), str(i), (t + i) % 3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    expected = {str(t): {str(i): (t + i) % 3 for i in range(25)} for t in range(8)}
    assert store.qrels() == expected and read_qrels(p) == expected
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
