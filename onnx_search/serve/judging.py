"""Judge mode: blind relevance judgments of pooled results, by named judges, written through ``experiment.qrels``.

A query's POOL is the union of every served model's top-k (the query itself left out), shown in an order fixed by
a hash of (query, image) so neither the model that found an image nor its rank shows.

Blind by design: nothing served while judging depends on which model found what. The pool, the list of queries
and the answer to a mark carry ids, the judge's own marks, pool sizes and conflict flags only: no model name, no
rank, no per-model figure; file names and labels are left out too unless the page asks (``names=1``) and the
server allows it (``--blind-names`` forbids it). Per-model figures (judged@k and P@k, the run's verdict re-scored
on the judgments) are separate routes the page calls only when the judge asks.

Several judges: each mark records its judge (``JudgmentStore`` sidecar); the qrels file holds their consensus.
The queries of a run come in the run's own order, and each judge's progress counts that judge's marks, so
"next unjudged pool" deals the same pools in the same order to every judge. Each mark is on disk before the
HTTP answer; the file is ``judgments_path(data_dir, experiment)``, with ``data_dir`` the served stores' folder
and ``experiment`` the first run's (else the store namespace).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ConfigError
from ..experiment.config import JudgingSection
from ..experiment.evidence import interval
from ..experiment.judges import agreement
from ..experiment.qrels import DEFAULT_JUDGE, JudgmentStore, check_judge, judgment_error, judgments_path
from ..experiment.results import recompare
from ..ids import image_id
from ..search import search_embedded
from .guard import K_DEFAULT, K_MAX, RequestError, parse_id, parse_k

log = logging.getLogger(__name__)
SEED = 0  # the intervals' bootstrap seed
POOL_CACHE = 10_000  # (query, k, models) top-k lists kept in memory
BODY_LIMIT = 4096


def blind_order(query_id: str, ids: list[str]) -> list[str]:
    """``ids`` in an order fixed by a hash of (query, image): the same every time, unrelated to rank or model."""
    return sorted(set(ids), key=lambda d: hashlib.sha256(f"{query_id}|{d}".encode()).hexdigest())


def run_max_grade(run) -> int:
    """The served run's ``judging.max_grade`` (from the config its manifest recorded); 1 (binary) without one."""
    try:
        config = json.loads((run.path / "manifest.json").read_text()).get("config") or {}
        return JudgingSection(**(config.get("judging") or {})).max_grade
    except (OSError, ValueError, TypeError) as exc:
        log.warning("judging.max_grade of run %s not read (%s): grades 0/1", run.name, exc)
        return 1


class Judging:
    """Pools (cached per query, k and models), the judgment store and the per-model figures over one Explorer."""

    def __init__(
        self, ex, data_dir: Path, experiment: str, max_grade: int = 1, default_k: int = K_DEFAULT, names: bool = True
    ) -> None:
        self.ex = ex
        self.experiment = experiment
        self.max_grade = max_grade
        self.default_k = default_k
        self.names_allowed = names  # False: --blind-names, file names and labels are never sent while judging
        self.store = JudgmentStore(judgments_path(data_dir, experiment), max_grade=max_grade)
        self._pools: dict[tuple, dict[str, list[str]]] = {}
        self._lock = threading.Lock()
        self._compute = threading.Lock()  # one pool computation at a time (see top_k_many)

    @classmethod
    def over(cls, ex, names: bool = True) -> Judging:
        """The explorer's own: its stores' data folder (the parent of its cache), the first run's experiment,
        grade scale and top_k."""
        run = ex.runs[0] if ex.runs else None
        experiment = next((r.results.get("experiment") for r in ex.runs if r.results.get("experiment")), None)
        k = int(run.results.get("top_k") or K_DEFAULT) if run else K_DEFAULT
        grade = run_max_grade(run) if run else 1
        return cls(ex, Path(ex.cache_dir).parent, experiment or ex.stores.catalog.ns, grade, min(k, K_MAX), names)

    def _models(self, models: list[str] | None) -> tuple[str, ...]:
        unknown = [m for m in models or [] if m not in self.ex.sessions]
        if unknown:
            raise RequestError(400, f"unknown model(s) {unknown}; served: {', '.join(self.ex.sessions)}")
        return tuple(sorted(models or self.ex.sessions))

    def top_k(self, query_id: int, k: int, models: tuple[str, ...]) -> dict[str, list[str]]:
        """Each model's top-k ids for a catalogued query (itself left out), cached."""
        return self.top_k_many([query_id], k, models)[query_id]

    def top_k_many(self, query_ids: list[int], k: int, models: tuple[str, ...]) -> dict[int, dict[str, list[str]]]:
        """``top_k`` of many queries: those not cached are searched together, one batch per model (the stored
        vectors fetched at once, one search call), as ``Explorer.query_id`` would one by one; a query without a
        stored vector goes through ``query_id`` (embedded from its file). One computation at a time: a request
        that arrives while the start-up thread computes the same pools waits for them instead of repeating them."""
        with self._lock:
            cached = {q: self._pools[q, k, models] for q in query_ids if (q, k, models) in self._pools}
        if len(cached) == len(set(query_ids)):
            return cached
        with self._compute:
            with self._lock:
                cached = {q: self._pools[q, k, models] for q in query_ids if (q, k, models) in self._pools}
            todo = [q for q in dict.fromkeys(query_ids) if q not in cached]
            found = self._search_stored(todo, k, models) if todo else {}
            for q in todo:
                if q not in found:
                    out = self.ex.query_id(q, k, True, list(models))
                    found[q] = {m: [h["id"] for h in hits] for m, hits in out["models"].items()}
            with self._lock:
                if len(self._pools) + len(found) >= POOL_CACHE:  # ad-hoc queries add up: start again
                    self._pools.clear()
                self._pools.update({(q, k, models): ranked for q, ranked in found.items()})
        return cached | found

    def _search_stored(self, query_ids: list[int], k: int, models: tuple[str, ...]) -> dict[int, dict]:
        """The pools of the queries every model holds a stored vector of, searched in one batch per model."""
        stores = self.ex.stores
        recs = stores.catalog.get_images(query_ids)
        vectors = {m: stores.fetch_present(m, list(recs)) for m in models}
        ready = [q for q in query_ids if q in recs and all(q in vectors[m] for m in models)]
        if not ready:
            return {}
        paths = [Path(recs[q].path) for q in ready]
        if [image_id(p) for p in paths] != ready:  # ids not derived from these paths: leave them to query_id
            return {}
        out: dict[int, dict[str, list[str]]] = {q: {m: [] for m in models} for q in ready}
        for m in models:
            stacked = np.stack([vectors[m][q] for q in ready])
            for h in search_embedded(paths, {m: stacked}, stores, k, exclude_self=True):
                out[image_id(h.query)][m].append(str(h.id))
        return out

    def pool_ids(self, query_id: int, k: int, models: tuple[str, ...]) -> list[str]:
        """The pool: every model's top-k ids, merged into one set in the blind order."""
        return blind_order(str(query_id), [i for hits in self.top_k(query_id, k, models).values() for i in hits])

    def _own(self, judge: str) -> tuple[dict, dict]:
        """(this judge's marks {(q, d): grade}, every pair's judges {(q, d): {judge: grade}})."""
        marks = self.store.marks()
        return {pair: js[judge] for pair, js in marks.items() if judge in js}, marks

    def pool(self, query_id: int, k: int, models: list[str] | None, judge: str, names: bool = False) -> dict:
        """The blind pool of one query with this judge's marks (no model names, no ranks, no per-model figure);
        file names and labels only with ``names`` where the server allows them."""
        chosen = self._models(models)
        rec = self.ex.record(query_id)
        qid = str(query_id)
        ids = self.pool_ids(query_id, k, chosen)
        own, marks = self._own(judge)
        names = names and self.names_allowed
        recs = self.ex.stores.catalog.get_images([int(i) for i in ids]) if names else {}
        docs = []
        for i in ids:
            judges = marks.get((qid, i), {})
            doc = {"id": i, "relevance": own.get((qid, i)), "conflict": len(set(judges.values())) > 1}
            if names:
                doc["name"] = Path(recs[int(i)].path).name if int(i) in recs else ""
            docs.append(doc)
        query = {"id": qid} | ({"name": Path(rec.path).name, "label": rec.label or ""} if names else {})
        return {
            "query": query,
            "k": k,
            "docs": docs,
            "judged": sum(d["relevance"] is not None for d in docs),
            "size": len(docs),
            "judge": judge,
            "max_grade": self.max_grade,
            "file": str(self.store.path),
        }

    def _query_rows(self, run: int | None) -> list[str]:
        if run is not None:
            return [str(image_id(q["query"])) for q in self.ex.run(run).results["queries"]]  # the run's own order
        judged = {q for q, _ in self.store.marks() if q.isdigit()}
        found = self.ex.stores.catalog.get_images([int(q) for q in judged])
        return [str(i) for i in sorted(found)]

    def queries(self, run: int | None, k: int, models: list[str] | None, judge: str) -> dict:
        """The queries to work through, in a fixed order (a run's own, else every judged query by id), with how
        much of each pool this judge has marked: every judge is dealt the same pools in the same order."""
        chosen = self._models(models)
        own, _ = self._own(judge)
        out = []
        rows = self._query_rows(run)
        self.top_k_many([int(q) for q in rows], k, chosen)  # every pool at once, in one batch per model
        for qid in rows:
            ids = self.pool_ids(int(qid), k, chosen)
            out.append({"id": qid, "size": len(ids), "judged": sum((qid, i) in own for i in ids)})
        done = sum(q["judged"] == q["size"] for q in out)
        return {
            "queries": out,
            "done": done,
            "total": len(out),
            "count": sum(1 for _ in own),
            "judge": judge,
            "k": k,
            "max_grade": self.max_grade,
            "names_allowed": self.names_allowed,
            "file": str(self.store.path),
        }

    def warm(self, run: int, k: int) -> None:
        """Every pool of a run's queries at k computed ahead (a background thread at start): the first pool
        list a judge asks for is then answered from memory."""
        try:
            self.top_k_many([int(q) for q in self._query_rows(run)], k, self._models(None))
        except Exception as exc:  # noqa: BLE001 - only a head start: a request computes what is missing itself
            log.warning("pools not computed ahead: %s", exc)

    def judge(self, query_id: int, doc_id: int, relevance: int, judge: str) -> dict:
        """Persist one judge's mark (both ids must be catalogued) before answering. The answer carries the pair's
        state only (this judge's grade, the consensus, whether judges disagree), nothing about models."""
        self.ex.record(query_id)
        self.ex.record(doc_id)
        try:
            out = self.store.judge(str(query_id), str(doc_id), relevance, judge=judge)
        except ConfigError as exc:
            raise RequestError(400, str(exc)) from None
        return self._answer(query_id, doc_id, relevance, out["conflict"], out["judges"], judge)

    def unjudge(self, query_id: int, doc_id: int, judge: str) -> dict:
        """Withdraw this judge's mark on one pair (undo); on disk before answering."""
        self.store.unjudge(str(query_id), str(doc_id), judge=judge)
        judges = self.store.marks().get((str(query_id), str(doc_id)), {})
        return self._answer(query_id, doc_id, None, len(set(judges.values())) > 1, judges, judge)

    def _answer(self, q: int, d: int, relevance, conflict: bool, judges: dict, judge: str) -> dict:
        return {
            "query": str(q),
            "doc": str(d),
            "relevance": relevance,
            "conflict": conflict,
            "judges": dict(sorted(judges.items())),
            "judge": judge,
            "count": len(self._own(judge)[0]),
        }

    def summary(self, k: int, models: list[str] | None) -> dict:
        """judged@k and P@k per model over every judged query, each with its bootstrap interval, and the
        agreement between judges (Cohen's kappa on shared pairs). Asked for by the judge, never sent per mark."""
        chosen = self._models(models)
        qrels = self.store.qrels()
        listed = [q for q in qrels if q.isdigit()]
        found = self.ex.stores.catalog.get_images([int(q) for q in listed])
        queries = sorted(q for q in listed if int(q) in found)
        judged = {m: [] for m in chosen}
        precision = {m: [] for m in chosen}
        for q in queries:
            ranked = self.top_k(int(q), k, chosen)
            for m in chosen:
                hits = ranked.get(m, [])
                judged[m].append(sum(h in qrels[q] for h in hits) / k)
                precision[m].append(sum(qrels[q].get(h, 0) > 0 for h in hits) / k)
        per_model = {
            m: {
                "judged_at_k": interval(np.asarray(judged[m], dtype=float), seed=SEED),
                "p_at_k": interval(np.asarray(precision[m], dtype=float), seed=SEED),
            }
            for m in chosen
        }
        return {
            "k": k,
            "queries": len(queries),
            "rule": "P@k counts unjudged hits as not relevant",
            "models": per_model,
            "agreement": agreement(self.store),
        }

    def verdict(self, run: int) -> dict:
        """The run's verdict re-scored on the judgments so far (``compare RUN --qrels``: from the run's saved
        lists, no store), with each model's interval on the verdict's metric and how many judged queries would
        separate the leaders."""
        view = self.ex.run(run)
        try:
            comparison = recompare(view.path, self.store.qrels(), self.store.path)
        except ConfigError as exc:  # none of the run's queries judged yet: a state to show, not an error
            none = dict.fromkeys(("metric", "queries_needed", "more_queries"))
            return none | {"run": view.name, "models": {}, "judged_queries": 0, "separable": False,
                           "text": str(exc), "file": str(self.store.path)}  # fmt: skip
        ev = comparison.get("evidence") or {}
        v = ev.get("verdict") or {}
        metric = v.get("metric")
        n = int(v.get("units") or v.get("n") or 0)
        need = v.get("queries_needed_to_separate")
        if need is None and v.get("queries_for") and not v.get("separable"):
            need = max(v["queries_for"].values())
        return {
            "run": view.name,
            "metric": metric,
            "metric_label": v.get("metric_label") or metric,
            "models": (ev.get("quality") or {}).get(metric, {}),
            "best": v.get("best"),
            "tied": v.get("tied", []),
            "separable": bool(v.get("separable")),
            "judged_queries": comparison["summary"].get("ground_truth", {}).get("judged_queries"),
            "queries": n,
            "queries_needed": need,
            "more_queries": None if need is None else max(0, int(need) - n),
            "queries_for": v.get("queries_for", {}),
            "text": v.get("text", ""),
            "file": str(self.store.path),
        }


def _models_param(request: Request) -> list[str] | None:
    return [m for m in request.query_params.get("models", "").split(",") if m] or None


def _run_param(request: Request) -> int | None:
    raw = request.query_params.get("run", "")
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise RequestError(400, f"run must be a run index (0, 1, ...), got {raw[:20]!r}")
    return int(raw)


def _judge_name(raw: str | None) -> str:
    try:
        return check_judge(raw or DEFAULT_JUDGE)
    except ConfigError as exc:
        raise RequestError(400, str(exc)) from None


async def _body(request: Request, max_grade: int, undo: bool = False) -> tuple[int, int, int | None, str]:
    raw = await request.body()
    shape = '{"query": "ID", "doc": "ID", "judge": "NAME"}' if undo else (
        f'{{"query": "ID", "doc": "ID", "relevance": 0..{max_grade}, "judge": "NAME"}}'
    )  # fmt: skip
    if len(raw) > BODY_LIMIT:
        raise RequestError(413, f"a judgment is a small JSON object: {shape}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise RequestError(400, f"send JSON: {shape}") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"send a JSON object: {shape}")
    judge = _judge_name(body.get("judge"))
    qid, doc = parse_id(str(body.get("query", ""))), parse_id(str(body.get("doc", "")))
    if undo:
        return qid, doc, None, judge
    rel = body.get("relevance")
    error = judgment_error(str(qid), str(doc), rel, max_grade)
    if error:
        raise RequestError(400, error)
    return qid, doc, rel, judge


def judge_routes(ex, names: bool = True) -> list[Route]:
    """The judge routes over one Explorer (its judgments file opened now, so a bad file fails the start); the
    pools of the first run's queries at its top_k are computed ahead in a background thread."""
    judging = Judging.over(ex, names)
    if ex.runs:
        threading.Thread(target=judging.warm, args=(0, judging.default_k), daemon=True, name="pools").start()

    def k_of(request: Request) -> int:
        return parse_k(request.query_params.get("k"), judging.default_k)

    def flag(request: Request, name: str) -> bool:
        return request.query_params.get(name, "0").lower() in ("1", "true", "yes", "on")

    async def pool(request: Request) -> Response:
        qid = parse_id(request.path_params["id"])
        judge = _judge_name(request.query_params.get("judge"))
        args = (qid, k_of(request), _models_param(request), judge, flag(request, "names"))
        return JSONResponse(await run_in_threadpool(judging.pool, *args))

    async def queries(request: Request) -> Response:
        judge = _judge_name(request.query_params.get("judge"))
        args = (_run_param(request), k_of(request), _models_param(request), judge)
        return JSONResponse(await run_in_threadpool(judging.queries, *args))

    async def judge(request: Request) -> Response:
        qid, doc, rel, who = await _body(request, judging.max_grade)
        return JSONResponse(await run_in_threadpool(judging.judge, qid, doc, rel, who))

    async def undo(request: Request) -> Response:
        qid, doc, _, who = await _body(request, judging.max_grade, undo=True)
        return JSONResponse(await run_in_threadpool(judging.unjudge, qid, doc, who))

    async def summary(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(judging.summary, k_of(request), _models_param(request)))

    async def verdict(request: Request) -> Response:
        run = _run_param(request)
        return JSONResponse(await run_in_threadpool(judging.verdict, 0 if run is None else run))

    return [
        Route("/api/judge/pool/{id}", pool),
        Route("/api/judge/queries", queries),
        Route("/api/judge", judge, methods=["POST"]),
        Route("/api/judge/undo", undo, methods=["POST"]),
        Route("/api/judge/summary", summary),
        Route("/api/judge/verdict", verdict),
    ]
