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
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
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


class JudgmentStore:
    """Thread-safe judgments backed by one qrels file; each change is on disk before the call returns.

    Another process writing the same file (``onnx-search judgments import``) takes the same lock, and a store
    re-reads the file when it changed, so neither loses the other's judgments.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._qrels: Qrels = {}
        self._stamp: tuple[int, int] | None = None
        with self._lock:
            self._reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self) -> None:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._qrels = read_qrels(self.path) if stamp is not None else {}
            self._stamp = stamp

    def _change(self, apply: Callable[[Qrels], None]) -> None:
        with self._lock, file_lock(self.path):
            self._reload()
            qrels = {q: dict(d) for q, d in self._qrels.items()}
            apply(qrels)
            write_qrels(self.path, qrels)
            self._qrels, self._stamp = qrels, self._file_stamp()

    def judge(self, query_id: str, doc_id: str, relevance: int) -> None:
        """Record (or change) one judgment and persist it atomically before returning."""
        q, d = _check_token(query_id, "query id"), _check_token(doc_id, "doc id")
        if not isinstance(relevance, int) or isinstance(relevance, bool) or relevance < 0:
            raise ConfigError(f"relevance {relevance!r} is not an integer >= 0 (0 = not relevant, 1, 2, ... graded)")
        self._change(lambda qrels: qrels.setdefault(q, {}).__setitem__(d, relevance))

    def unjudge(self, query_id: str, doc_id: str) -> None:
        """Forget one judgment (nothing happens if it was never made); persisted before returning."""

        def drop(qrels: Qrels) -> None:
            docs = qrels.get(str(query_id), {})
            docs.pop(str(doc_id), None)
            if not docs:
                qrels.pop(str(query_id), None)

        self._change(drop)

    def qrels(self) -> Qrels:
        """A copy of every judgment (re-read if another process changed the file)."""
        with self._lock:
            self._reload()
            return {q: dict(d) for q, d in self._qrels.items()}

    def for_query(self, query_id: str) -> dict[str, int]:
        """The judgments of one query (doc_id -> relevance), a copy."""
        return dict(self.qrels().get(str(query_id), {}))

    def count(self) -> int:
        """How many (query, doc) judgments there are."""
        return sum(len(d) for d in self.qrels().values())


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
