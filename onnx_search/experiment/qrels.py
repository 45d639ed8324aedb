"""Relevance judgments in the TREC qrels format: ``query_id 0 doc_id relevance``, one judgment a line.

Ids are the catalogue's image ids as decimal strings (``onnx_search.ids.image_id`` of the resolved path); a file
may give paths instead, which the caller that holds the catalogue maps to ids (``resolve_ids``). Files are
written atomically (a temporary file in the same folder, fsync, ``os.replace``), so a reader never sees half a
file and a crash never leaves one. ``JudgmentStore`` is the explorer's write path: every judgment is on disk
before ``judge`` returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError
from ..ids import image_id
from ..textfile import read_user_text

Qrels = dict[str, dict[str, int]]  # query_id -> doc_id -> relevance (int >= 0)

_FIX = "each line is `query_id 0 doc_id relevance` (relevance an integer >= 0)"


def parse_qrels(text: str, source: str | Path) -> Qrels:
    """Parse qrels text; a bad line is a ConfigError ``source:line: what is wrong; fix``.

    Blank lines and lines starting with ``#`` are skipped. The second column (TREC's iteration) is ignored, as
    trec_eval ignores it. The same judgment twice is fine; two different grades for one pair are an error.
    """
    out: Qrels = {}
    seen: dict[tuple[str, str], int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        cols = stripped.split()
        if len(cols) != 4:
            raise ConfigError(f"{source}:{no}: {len(cols)} columns, expected 4; {_FIX} (ids and paths without spaces)")
        query, _, doc, rel = cols
        try:
            grade = int(rel)
        except ValueError:
            raise ConfigError(f"{source}:{no}: relevance {rel!r} is not an integer; {_FIX}") from None
        if grade < 0:
            raise ConfigError(f"{source}:{no}: relevance {grade} is negative; {_FIX}")
        before = out.setdefault(query, {}).get(doc)
        if before is not None and before != grade:
            raise ConfigError(
                f"{source}:{no}: {query} {doc} judged {grade} here but {before} on line {seen[query, doc]}; "
                "keep one line per query and image"
            )
        out[query][doc] = grade
        seen.setdefault((query, doc), no)
    return out


def read_qrels(path: str | Path) -> Qrels:
    """Read a qrels file (a missing, unreadable or non-UTF-8 file is a one-line ConfigError)."""
    path = Path(path)
    missing = f"qrels file {path} does not exist; give a file of `query_id 0 doc_id relevance` lines"
    return parse_qrels(read_user_text(path, missing, "a qrels file"), path)


def format_qrels(qrels: Qrels) -> str:
    """TREC text, sorted by query then doc (ids sort numerically, paths as text) so a file diffs cleanly."""

    def key(s: str) -> tuple[int, int, str]:
        return (0, int(s), "") if s.isdigit() else (1, 0, s)

    lines = [f"{q} 0 {d} {qrels[q][d]}\n" for q in sorted(qrels, key=key) for d in sorted(qrels[q], key=key)]
    return "".join(lines)


def _check_token(value: str, what: str) -> str:
    value = str(value)
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"{what} {value!r} is empty or holds whitespace; qrels columns are whitespace-separated")
    return value


def write_qrels(path: str | Path, qrels: Qrels) -> None:
    """Write atomically: temp file in the same folder, fsync, ``os.replace`` (the old file stays on failure)."""
    path = Path(path)
    for q, docs in qrels.items():
        _check_token(q, "query id")
        for d, r in docs.items():
            _check_token(d, "doc id")
            if not isinstance(r, int) or isinstance(r, bool) or r < 0:
                raise ConfigError(f"relevance {r!r} of {q} {d} is not an integer >= 0")
    text = format_qrels(qrels)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:  # mkstemp makes 0600: keep the old file's mode, else an ordinary file's
            os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        except OSError:
            pass
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock beside ``path`` (``path.lock``), shared by every process that writes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def merge_qrels(base: Qrels, new: Qrels) -> Qrels:
    """``base`` with every judgment of ``new`` added (``new`` wins where both judge a pair)."""
    out = {q: dict(d) for q, d in base.items()}
    for q, docs in new.items():
        out.setdefault(q, {}).update(docs)
    return out


def resolve_ids(qrels: Qrels, to_id: Callable[[str], str | None], source: str | Path) -> Qrels:
    """Map every query and doc (an id or a path) through ``to_id``; one it cannot map is a ConfigError."""
    out: Qrels = {}
    for q, docs in qrels.items():
        qid = _mapped(q, to_id, source)
        for d, r in docs.items():
            out.setdefault(qid, {})[_mapped(d, to_id, source)] = r
    return out


def _mapped(value: str, to_id: Callable[[str], str | None], source: str | Path) -> str:
    got = to_id(value)
    if got is None:
        raise ConfigError(f"{source}: {value} is neither a catalogued image id nor the path of an image file")
    return got


def path_to_id(base: str | Path) -> Callable[[str], str | None]:
    """``to_id`` for ``resolve_ids``: a decimal id stays; a path (relative to ``base``) that is a file becomes
    ``image_id`` of its resolved path; anything else is None."""

    def to_id(value: str) -> str | None:
        if value.isdigit():
            return value
        p = Path(value).expanduser()
        p = (p if p.is_absolute() else Path(base) / p).resolve()
        return str(image_id(p)) if p.is_file() else None

    return to_id


def read_qrels_ids(path: str | Path) -> Qrels:
    """A qrels file with every path mapped to its image id (paths relative to the file's folder)."""
    path = Path(path)
    return resolve_ids(read_qrels(path), path_to_id(path.parent), path)


def judgments_path(data_dir: str | Path, experiment: str) -> Path:
    """Where the explorer keeps an experiment's judgments: ``data_dir/judgments/<experiment>.qrels``."""
    return Path(data_dir) / "judgments" / f"{experiment}.qrels"


def judges_path(qrels_path: str | Path) -> Path:
    """The sidecar that records who judged what, beside a qrels file: ``<qrels>.judges.jsonl``."""
    p = Path(qrels_path)
    return p.with_name(p.name + ".judges.jsonl")


DEFAULT_JUDGE = "default"
ADOPTED_JUDGE = DEFAULT_JUDGE  # a qrels line the sidecar never mentions (a file from elsewhere) is this judge's
MAX_GRADE = 3  # the highest grade any experiment may use (judging.max_grade is 1..3)
_JUDGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")

Pair = tuple[str, str]  # (query id, doc id)
Marks = dict[Pair, dict[str, int]]  # pair -> judge -> grade


def check_judge(name: str | None) -> str:
    """A judge's name (None: ``default``): 1-64 letters, digits and ``_ . @ + -``, starting with a letter or digit."""
    name = DEFAULT_JUDGE if name is None else str(name)
    if not _JUDGE_NAME.match(name):
        raise ConfigError(
            f"judge name {name[:80]!r} is not allowed: use 1-64 letters, digits and _ . @ + - (e.g. alice)"
        )
    return name


def judgment_error(query_id: str, doc_id: str, relevance: object, max_grade: int = MAX_GRADE) -> str | None:
    """What is wrong with one judgment, or None: the ids are tokens, the query is not the doc, and the grade is a
    whole number from 0 to ``max_grade`` (the experiment's ``judging.max_grade``). The store, the explorer's
    endpoint and ``judgments import`` all ask here, so they refuse the same things."""
    for value, what in ((query_id, "query id"), (doc_id, "doc id")):
        value = str(value)
        if not value or any(c.isspace() for c in value):
            return f"{what} {value!r} is empty or holds whitespace; qrels columns are whitespace-separated"
    if str(query_id) == str(doc_id):
        return f"query {query_id} is judged against itself; a query is never one of its own results, drop the line"
    if not isinstance(relevance, int) or isinstance(relevance, bool) or not 0 <= relevance <= max_grade:
        scale = "0 (not relevant) or 1 (relevant)" if max_grade == 1 else f"0 (not relevant) to {max_grade}"
        return f"grade {relevance!r} is outside this experiment's scale: {scale}" + (
            "" if max_grade >= MAX_GRADE else "; set judging.max_grade in the experiment file for graded relevance"
        )
    return None


def consensus(grades: dict[str, int] | list[int]) -> int:
    """The grade the qrels file holds for a pair several judges marked: the LOWER MEDIAN of their grades.

    One judge: their grade. Two: the lower (a pair counts as relevant only when both say so). Three: the middle
    one. The lower median is itself a grade some judge gave (no averaging into a grade nobody gave), and it leans
    to "not relevant" on a tie, so a disputed image never raises a model's precision.
    """
    values = sorted(grades.values() if isinstance(grades, dict) else grades)
    if not values:
        raise ValueError("consensus of no grades")
    return values[(len(values) - 1) // 2]


class JudgmentStore:
    """Thread- and process-safe judgments of several judges: a TREC qrels file plus a sidecar of who judged what.

    * ``<name>.qrels`` stays valid TREC qrels (``query_id 0 doc_id relevance``): one line per pair, the judges'
      ``consensus`` (lower median). Every tool that reads qrels (``run``, ``compare --qrels``, trec_eval) reads it.
    * ``<name>.qrels.judges.jsonl`` (``judges_path``) is the record: one JSON object a line, ``{"query", "doc",
      "judge", "grade", "time"}`` appended per mark (``grade`` null when a mark is withdrawn); the latest line of
      a (query, doc, judge) is that judge's mark. Each judge's mark survives another judge's.
    * Every change takes ``file_lock`` (shared with ``judgments import`` and other processes), appends to the
      sidecar with fsync, then rewrites the qrels file atomically: both are on disk before the call returns. A
      crash between the two leaves the sidecar ahead; the next change rewrites the qrels file from it.
    * A qrels line the sidecar never mentions (a file written elsewhere, or before judges were recorded) is
      the ``default`` judge's mark, and is written into the sidecar at the next change. For a pair the sidecar
      mentions, the sidecar wins: change judgments through the store or ``onnx-search judgments``, not by hand.

    ``max_grade`` (the experiment's ``judging.max_grade``) bounds the grades ``judge`` accepts; marks already on
    file are kept as they are.
    """

    def __init__(self, path: str | Path, max_grade: int = MAX_GRADE) -> None:
        self.path = Path(path)
        self.sidecar = judges_path(self.path)
        self.max_grade = max_grade
        self._lock = threading.RLock()
        self._marks: Marks = {}
        self._times: dict[tuple[str, str, str], str | None] = {}
        self._adopted: set[Pair] = set()
        self._stamp: tuple | None = None
        with self._lock:
            self._reload()

    # --- reading --------------------------------------------------------------------------------------------

    def _file_stamp(self) -> tuple:
        out = []
        for p in (self.path, self.sidecar):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _reload(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        marks, times, mentioned = _read_sidecar(self.sidecar)
        adopted: set[Pair] = set()
        if self.path.is_file():
            for q, docs in read_qrels(self.path).items():
                for d, r in docs.items():
                    if (q, d) not in mentioned:
                        marks[q, d] = {ADOPTED_JUDGE: r}
                        times[q, d, ADOPTED_JUDGE] = None
                        adopted.add((q, d))
        self._marks, self._times, self._adopted, self._stamp = marks, times, adopted, stamp

    def marks(self) -> Marks:
        """Every judge's mark: {(query, doc): {judge: grade}} (a copy, re-read if another process wrote)."""
        with self._lock:
            self._reload()
            return {pair: dict(js) for pair, js in self._marks.items()}

    def records(self) -> list[dict]:
        """Every live mark as ``{"query", "doc", "judge", "grade", "time"}``, sorted by query, doc, judge."""
        with self._lock:
            self._reload()
            return [
                {"query": q, "doc": d, "judge": j, "grade": g, "time": self._times.get((q, d, j))}
                for (q, d), js in sorted(self._marks.items())
                for j, g in sorted(js.items())
            ]

    def qrels(self) -> Qrels:
        """The consensus of every judged pair, as the qrels file holds it (a copy)."""
        return _consensus_qrels(self.marks())

    def for_query(self, query_id: str) -> dict[str, int]:
        """The consensus judgments of one query (doc_id -> relevance), a copy."""
        return dict(self.qrels().get(str(query_id), {}))

    def count(self) -> int:
        """How many (query, doc) pairs are judged (by any judge)."""
        return len(self.marks())

    def judges(self) -> list[str]:
        """The judges with at least one mark, sorted."""
        return sorted({j for js in self.marks().values() for j in js})

    def conflicts(self) -> list[dict]:
        """The pairs whose judges gave different grades: ``{"query", "doc", "judges": {judge: grade},
        "grade": consensus}``, sorted by query and doc."""
        return [
            {"query": q, "doc": d, "judges": dict(sorted(js.items())), "grade": consensus(js)}
            for (q, d), js in sorted(self.marks().items())
            if len(set(js.values())) > 1
        ]

    # --- writing --------------------------------------------------------------------------------------------

    def _change(self, plan: Callable[[Marks], list[dict]]) -> list[dict]:
        """Under both locks: re-read, let ``plan`` list the sidecar lines to append, append them (fsync), rewrite
        the qrels file atomically. Returns the appended lines."""
        with self._lock, file_lock(self.path):
            self._stamp = None  # another process may have written within the same mtime tick
            self._reload()
            now = _now()
            lines = [
                {"query": q, "doc": d, "judge": ADOPTED_JUDGE, "grade": self._marks[q, d][ADOPTED_JUDGE], "time": None}
                for q, d in sorted(self._adopted)
            ]  # a qrels line from elsewhere becomes a recorded mark before any judge's mark can join it
            planned = plan({pair: dict(js) for pair, js in self._marks.items()})
            for line in planned:
                line.setdefault("time", now)
            lines += planned
            if not lines:
                return []
            _append_lines(self.sidecar, lines)
            marks, times, _ = _read_sidecar(self.sidecar)
            write_qrels(self.path, _consensus_qrels(marks))
            self._marks, self._times, self._adopted = marks, times, set()
            self._stamp = self._file_stamp()
            return planned

    def judge(self, query_id: str, doc_id: str, relevance: int, judge: str | None = DEFAULT_JUDGE) -> dict:
        """Record (or change) ``judge``'s mark on one pair; on disk (sidecar and qrels) before returning.

        Returns ``{"grade": the consensus now in the qrels file, "conflict": whether the pair's judges disagree,
        "judges": {judge: grade}}``. A bad id, a self-judgment, a grade outside 0..max_grade or a bad judge name
        is a one-line ConfigError and writes nothing.
        """
        judge = check_judge(judge)
        error = judgment_error(str(query_id), str(doc_id), relevance, self.max_grade)
        if error:
            raise ConfigError(error)
        q, d = str(query_id), str(doc_id)

        def plan(marks: Marks) -> list[dict]:
            if marks.get((q, d), {}).get(judge) == relevance:
                return []  # the same mark again: nothing to record
            return [{"query": q, "doc": d, "judge": judge, "grade": relevance}]

        with self._lock:
            self._change(plan)
            js = dict(self._marks.get((q, d), {}))
        return {"grade": consensus(js), "conflict": len(set(js.values())) > 1, "judges": js}

    def unjudge(self, query_id: str, doc_id: str, judge: str | None = None) -> int:
        """Withdraw ``judge``'s mark on one pair (None: every judge's); returns how many marks were withdrawn
        (0 when there was none). On disk before returning; the sidecar keeps the history."""
        q, d = str(query_id), str(doc_id)
        who = None if judge is None else check_judge(judge)

        def plan(marks: Marks) -> list[dict]:
            return [
                {"query": q, "doc": d, "judge": j, "grade": None}
                for j in sorted(marks.get((q, d), {}))
                if who is None or j == who
            ]

        return len(self._change(plan))

    def remove(self, query: str | None = None, judge: str | None = None) -> int:
        """Remove every mark of ``query`` and/or ``judge`` (both None: every mark); returns how many marks
        (judge, query, doc) were removed. On disk before returning."""
        who = None if judge is None else check_judge(judge)

        def plan(marks: Marks) -> list[dict]:
            return [
                {"query": q, "doc": d, "judge": j, "grade": None}
                for (q, d), js in sorted(marks.items())
                if query is None or q == str(query)
                for j in sorted(js)
                if who is None or j == who
            ]

        return len(self._change(plan))

    def add_many(self, items: list[tuple[str, str, int]], judge: str | None = DEFAULT_JUDGE) -> tuple[int, int]:
        """Record many marks of one judge in one write (``judgments import``); every item is checked first and
        any error writes nothing. Returns (new marks, changed marks); an identical mark is not recorded again."""
        judge = check_judge(judge)
        for q, d, r in items:
            error = judgment_error(str(q), str(d), r, self.max_grade)
            if error:
                raise ConfigError(f"{q} {d} {r}: {error}")
        counts = [0, 0]

        def plan(marks: Marks) -> list[dict]:
            out, latest = [], {}
            for q, d, r in items:
                latest[str(q), str(d)] = r
            for (q, d), r in latest.items():
                before = marks.get((q, d), {}).get(judge)
                if before == r:
                    continue
                counts[before is not None] += 1
                out.append({"query": q, "doc": d, "judge": judge, "grade": r})
            return out

        self._change(plan)
        return counts[0], counts[1]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _consensus_qrels(marks: Marks) -> Qrels:
    out: Qrels = {}
    for (q, d), js in marks.items():
        if js:
            out.setdefault(q, {})[d] = consensus(js)
    return out


def _read_sidecar(path: Path) -> tuple[Marks, dict, set[Pair]]:
    """Replay the sidecar: (live marks, their times, every pair it ever mentions). A bad line is a one-line
    ConfigError naming ``file:line``, except a last line cut short by a crash (no newline), which is skipped."""
    marks: Marks = {}
    times: dict[tuple[str, str, str], str | None] = {}
    mentioned: set[Pair] = set()
    if not path.is_file():
        return marks, times, mentioned
    text = read_user_text(path, f"{path} does not exist", "a judges file (JSON lines)")
    lines = text.split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            q, d, j, g = str(rec["query"]), str(rec["doc"]), str(rec["judge"]), rec["grade"]
            if g is not None and (not isinstance(g, int) or isinstance(g, bool) or g < 0):
                raise ValueError(f"grade {g!r}")
        except (ValueError, KeyError, TypeError) as exc:
            if no == len(lines):  # the last line, without its newline: an append cut short by a crash
                continue
            raise ConfigError(
                f"{path}:{no}: not a judgment record ({exc}); each line is "
                '{"query", "doc", "judge", "grade", "time"}: fix or delete the line'
            ) from None
        mentioned.add((q, d))
        if g is None:
            js = marks.get((q, d))
            if js is not None:
                js.pop(j, None)
                if not js:
                    del marks[q, d]
            times.pop((q, d, j), None)
        else:
            marks.setdefault((q, d), {})[j] = g
            times[q, d, j] = rec.get("time")
    return marks, times, mentioned


def _append_lines(path: Path, lines: list[dict]) -> None:
    """Append JSON lines and fsync (the caller holds ``file_lock``). A tail cut short by a crash (after the last
    newline) is an append that never returned, so it is dropped first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(rec) + "\n" for rec in lines).encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            tail = os.pread(fd, min(size, 65536), max(0, size - 65536))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                size = max(0, size - len(tail) + cut + 1) if cut >= 0 else (0 if size <= 65536 else size)
                os.ftruncate(fd, size)
        os.pwrite(fd, data, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def judged_metrics(hit_ids: list[str], judgments: dict[str, int], k: int) -> dict[str, float]:
    """P@k, R@k, AP@k, nDCG@k (graded gains) and judged@k of one ranking against one query's judgments.

    The rule for unjudged hits is **condensed lists** (Sakai 2007; trec_eval ``-J``): unjudged images are removed
    from the ranking before scoring, so the judged images below them move up. ``hit_ids`` is the whole ranking in
    trec_eval's order (``metrics.trec_order``), deeper than k when the run kept a deeper list: then the top k of
    the condensed list is filled from judged images found below rank k, as trec_eval ``-J`` does over a deep run.
    An image is relevant when its grade is >= 1, and nDCG's gain is the grade. judged@k is the share of the
    first k hits that was judged (before condensing).
    """
    ids = [str(h) for h in hit_ids]
    judged = [h for h in ids if h in judgments][:k]
    grades = [judgments[h] for h in judged]
    rels = [g >= 1 for g in grades]
    n_rel = sum(1 for g in judgments.values() if g >= 1)
    hits = 0
    ap = 0.0
    for i, r in enumerate(rels, 1):
        if r:
            hits += 1
            ap += hits / i
    dcg = sum(g / math.log2(i + 1) for i, g in enumerate(grades, 1))
    ideal = sum(g / math.log2(i + 1) for i, g in enumerate(sorted(judgments.values(), reverse=True)[:k], 1))
    return {
        "p_at_k": sum(rels) / k if k else 0.0,
        "recall_at_k": sum(rels) / n_rel if n_rel else 0.0,
        "ap_at_k": ap / n_rel if n_rel else 0.0,
        "ndcg_at_k": dcg / ideal if ideal else 0.0,
        "judged_at_k": sum(1 for h in ids[:k] if h in judgments) / k if k else 0.0,
    }


def query_judgments(qrels: Qrels, query_id: str, excluded: bool) -> dict[str, int] | None:
    """One query's judgments, less the query itself when it is excluded from its own hits; None if unjudged."""
    docs = qrels.get(str(query_id))
    if docs is None:
        return None
    return {d: r for d, r in docs.items() if not (excluded and d == str(query_id))}
