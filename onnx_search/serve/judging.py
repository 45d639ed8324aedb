"""Judge mode: blind relevance judgments of pooled results, written through ``experiment.qrels``.

A query's POOL is the union of every served model's top-k (the query itself left out), shown in an order fixed by
a hash of (query, image) so neither the model that found an image nor its rank shows. Each judgment is on disk
(``JudgmentStore``, atomic) before the HTTP answer; the file is ``judgments_path(data_dir, experiment)``, with
``data_dir`` the served stores' folder and ``experiment`` the first run's (else the store namespace).
judged@k (share of a model's top-k that was judged) and P@k (unjudged hits counted not relevant) per model come
with intervals over the judged queries from ``experiment.evidence.interval``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ConfigError
from ..experiment.evidence import interval
from ..experiment.qrels import JudgmentStore, judgments_path
from ..ids import image_id
from .guard import RequestError, parse_id, parse_k

MAX_GRADE = 3  # the page marks 0 / 1; graded judgments up to 3 are accepted from scripts
SEED = 0  # the intervals' bootstrap seed
POOL_CACHE = 10_000  # (query, k, models) top-k lists kept in memory


def blind_order(query_id: str, ids: list[str]) -> list[str]:
    """``ids`` in an order fixed by a hash of (query, image): the same every time, unrelated to rank or model."""
    return sorted(set(ids), key=lambda d: hashlib.sha256(f"{query_id}|{d}".encode()).hexdigest())


class Judging:
    """Pools (cached per query, k and models), the judgment store and the judged@k summary over one Explorer."""

    def __init__(self, ex, data_dir: Path, experiment: str) -> None:
        self.ex = ex
        self.experiment = experiment
        self.store = JudgmentStore(judgments_path(data_dir, experiment))
        self._pools: dict[tuple, dict[str, list[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def over(cls, ex) -> Judging:
        """The explorer's own: its stores' data folder (the parent of its cache) and the first run's experiment."""
        experiment = next((r.results.get("experiment") for r in ex.runs if r.results.get("experiment")), None)
        return cls(ex, Path(ex.cache_dir).parent, experiment or ex.stores.catalog.ns)

    def _models(self, models: list[str] | None) -> tuple[str, ...]:
        unknown = [m for m in models or [] if m not in self.ex.sessions]
        if unknown:
            raise RequestError(400, f"unknown model(s) {unknown}; served: {', '.join(self.ex.sessions)}")
        return tuple(sorted(models or self.ex.sessions))

    def top_k(self, query_id: int, k: int, models: tuple[str, ...]) -> dict[str, list[str]]:
        """Each model's top-k ids for a catalogued query (itself left out), cached."""
        key = (query_id, k, models)
        with self._lock:
            if key in self._pools:
                return self._pools[key]
        out = self.ex.query_id(query_id, k, True, list(models))
        ranked = {m: [h["id"] for h in hits] for m, hits in out["models"].items()}
        with self._lock:
            if len(self._pools) >= POOL_CACHE:  # ad-hoc queries add up: start again rather than grow without end
                self._pools.clear()
            self._pools[key] = ranked
        return ranked

    def pool(self, query_id: int, k: int, models: list[str] | None) -> dict:
        """The blind pool of one query with the judgments made so far (no model names, no ranks)."""
        chosen = self._models(models)
        rec = self.ex.record(query_id)
        ranked = self.top_k(query_id, k, chosen)
        qid = str(query_id)
        ids = blind_order(qid, [i for hits in ranked.values() for i in hits])
        recs = self.ex.stores.catalog.get_images([int(i) for i in ids])
        judged = self.store.for_query(qid)
        docs = [{"id": i, "name": Path(recs[int(i)].path).name if int(i) in recs else "", "relevance": judged.get(i)}
                for i in ids]  # fmt: skip
        return {
            "query": {"id": qid, "name": Path(rec.path).name, "label": rec.label or ""},
            "k": k,
            "docs": docs,
            "judged": sum(d["relevance"] is not None for d in docs),
            "size": len(docs),
            "file": str(self.store.path),
        }

    def queries(self, run: int | None, k: int, models: list[str] | None) -> dict:
        """The queries to work through (a run's, or every judged one) with how much of each pool is judged."""
        chosen = self._models(models)
        qrels = self.store.qrels()
        if run is not None:
            view = self.ex.run(run)
            rows = [(str(image_id(q["query"])), Path(q["query"]).name) for q in view.results["queries"]]
        else:
            recs = self.ex.stores.catalog.get_images([int(q) for q in qrels if q.isdigit()])
            rows = [(str(i), Path(r.path).name) for i, r in sorted(recs.items())]
        out = []
        for qid, name in rows:
            ids = {i for hits in self.top_k(int(qid), k, chosen).values() for i in hits}
            judged = qrels.get(qid, {})
            out.append({"id": qid, "name": name, "size": len(ids), "judged": len(ids & judged.keys())})
        done = sum(q["judged"] == q["size"] for q in out)
        return {
            "queries": out,
            "done": done,
            "total": len(out),
            "count": self.store.count(),
            "file": str(self.store.path),
        }

    def judge(self, query_id: int, doc_id: int, relevance: int) -> dict:
        """Persist one judgment (both ids must be catalogued) before answering."""
        self.ex.record(query_id)
        self.ex.record(doc_id)
        try:
            self.store.judge(str(query_id), str(doc_id), relevance)
        except ConfigError as exc:
            raise RequestError(400, str(exc)) from None
        return {"query": str(query_id), "doc": str(doc_id), "relevance": relevance, "count": self.store.count()}

    def summary(self, k: int, models: list[str] | None) -> dict:
        """judged@k and P@k per model over every judged query, each with its bootstrap interval."""
        chosen = self._models(models)
        qrels = self.store.qrels()
        queries = sorted(q for q in qrels if q.isdigit() and int(q) in self.ex.stores.catalog.get_images([int(q)]))
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


async def _body(request: Request) -> tuple[int, int, int]:
    raw = await request.body()
    if len(raw) > 4096:
        raise RequestError(413, "a judgment is a small JSON object: {query, doc, relevance}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise RequestError(400, 'send JSON: {"query": "ID", "doc": "ID", "relevance": 0 or 1}') from None
    if not isinstance(body, dict):
        raise RequestError(400, 'send a JSON object: {"query": "ID", "doc": "ID", "relevance": 0 or 1}')
    rel = body.get("relevance")
    if not isinstance(rel, int) or isinstance(rel, bool) or not 0 <= rel <= MAX_GRADE:
        raise RequestError(400, f"relevance must be a whole number from 0 (not relevant) to {MAX_GRADE}, got {rel!r}")
    return parse_id(str(body.get("query", ""))), parse_id(str(body.get("doc", ""))), rel


def judge_routes(ex) -> list[Route]:
    """The judge routes over one Explorer (its judgments file opened now, so a bad file fails the start)."""
    judging = Judging.over(ex)

    async def pool(request: Request) -> Response:
        qid = parse_id(request.path_params["id"])
        k = parse_k(request.query_params.get("k"))
        return JSONResponse(await run_in_threadpool(judging.pool, qid, k, _models_param(request)))

    async def queries(request: Request) -> Response:
        k = parse_k(request.query_params.get("k"))
        out = await run_in_threadpool(judging.queries, _run_param(request), k, _models_param(request))
        return JSONResponse(out)

    async def judge(request: Request) -> Response:
        qid, doc, rel = await _body(request)
        return JSONResponse(await run_in_threadpool(judging.judge, qid, doc, rel))

    async def summary(request: Request) -> Response:
        k = parse_k(request.query_params.get("k"))
        return JSONResponse(await run_in_threadpool(judging.summary, k, _models_param(request)))

    return [
        Route("/api/judge/pool/{id}", pool),
        Route("/api/judge/queries", queries),
        Route("/api/judge", judge, methods=["POST"]),
        Route("/api/judge/summary", summary),
    ]
