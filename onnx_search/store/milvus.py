"""Milvus: one collection per model (id INT64 primary key, never auto_id; FLOAT_VECTOR), index, upsert, search."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..errors import CollectionMismatchError, StoreUnavailableError
from ..ids import in_tie_order
from .index import IndexSpec
from .net import mask_url, probe_tcp

log = logging.getLogger(__name__)

UPSERT_CHUNK = 1000
# pymilvus pings every 10 s, even without calls; Milvus Lite's in-process gRPC server allows one ping per 5 min
# (gRPC's default) and answers more with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", which gRPC prints to the
# console. A loopback server in this very process needs no keepalive: ping rarely, and only during calls.
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600_000, "grpc.keepalive_permit_without_calls": False}
MAX_QUERY = 16384  # Milvus caps one query's limit
TIE_MARGIN = 8  # rows asked beyond top_k, so a tie at the cut is usually seen whole in one search
TIE_TOL = 1e-6  # distances this close are one tie (the same vector scored in two places of a batch may differ)


class VectorStore:
    """Collection life cycle (create -> index -> load -> upsert/search/delete) in one place."""

    def __init__(self, client) -> None:
        self._client = client
        self._loaded: set[str] = set()

    def ensure(self, name: str, dim: int, index: IndexSpec, expected_rows: int = 0) -> None:
        """Create the collection with its index if missing, check its dimension if present, and load it."""
        from pymilvus import DataType, MilvusClient

        if self._client.has_collection(name):
            fields = self._client.describe_collection(name)["fields"]
            have = next((int(f["params"]["dim"]) for f in fields if f["name"] == "vector"), None)
            if have != dim:
                raise CollectionMismatchError(
                    f"Milvus collection {name} holds {have}-d vectors but the model gives {dim}-d: "
                    f"drop it with `onnx-search ingest ... --rebuild` (re-embeds that model) or use another namespace"
                )
        else:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            params = self._client.prepare_index_params()
            params.add_index(
                field_name="vector",
                index_type=index.type,
                metric_type=index.metric,
                params=index.build_params(expected_rows),
            )
            self._client.create_collection(name, schema=schema)
            # sync=False: pymilvus would sleep 0.5 s before its first look at the state of an index that, on an
            # empty collection, is already built (load below waits for what it needs)
            self._client.create_index(name, params, sync=False)
        self._loaded.discard(name)
        self.load(name)

    def exists(self, name: str) -> bool:
        return bool(self._client.has_collection(name))

    def collections(self) -> list[str]:
        return list(self._client.list_collections())

    def close(self) -> None:
        """Release the client (a Milvus Lite folder can then be opened by another process)."""
        self._client.close()

    def fetch_present(self, name: str, ids: list[int]) -> dict[int, np.ndarray]:
        """Stored vectors of those ``ids`` that are stored (an id that is not is simply absent)."""
        self.load(name)
        found: dict[int, np.ndarray] = {}
        for s in range(0, len(ids), UPSERT_CHUNK):
            chunk = [int(i) for i in ids[s : s + UPSERT_CHUNK]]
            for row in self._client.get(name, ids=chunk, output_fields=["vector"]):
                found[int(row["id"])] = np.asarray(row["vector"], np.float32)
        return found

    def fetch(self, name: str, ids: list[int]) -> np.ndarray:
        """Stored vectors of ``ids`` in the order given; an id that is not stored is a CollectionMismatchError."""
        found = self.fetch_present(name, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise CollectionMismatchError(
                f"collection {name} lacks {len(missing)} of the ids asked for ({missing[:5]}): the catalogue and the "
                "collection disagree; run `onnx-search check --repair` on this data folder, then the command again"
            )
        return np.asarray([found[i] for i in ids], dtype=np.float32).reshape(len(ids), -1)

    def index_info(self, name: str) -> dict:
        info = self._client.describe_index(name, "vector")
        return {k: v for k, v in info.items() if k not in ("total_rows", "indexed_rows", "pending_index_rows", "state")}

    def drop(self, name: str) -> None:
        if self._client.has_collection(name):
            self._client.drop_collection(name)
        self._loaded.discard(name)

    def upsert(self, name: str, ids: list[int], vectors: np.ndarray) -> None:
        """Insert or replace rows by id, in bulk; re-running never duplicates."""
        vectors = np.asarray(vectors, dtype=np.float32)
        for s in range(0, len(ids), UPSERT_CHUNK):
            rows = [
                {"id": int(i), "vector": v}
                for i, v in zip(ids[s : s + UPSERT_CHUNK], vectors[s : s + UPSERT_CHUNK], strict=True)
            ]
            self._client.upsert(name, rows)

    def flush(self, name: str) -> None:
        """Seal what was written so the index is built over it (unflushed rows are searched by brute force:
        on Milvus Lite, 1,500 2048-d rows took 200 ms a query before a flush and 11 ms after)."""
        self._client.flush(name)

    def delete(self, name: str, ids: list[int]) -> None:
        for s in range(0, len(ids), UPSERT_CHUNK):
            self._client.delete(name, ids=[int(i) for i in ids[s : s + UPSERT_CHUNK]])

    def count(self, name: str) -> int:
        self.load(name)
        res = self._client.query(name, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def ids(self, name: str, page: int = 8000) -> set[int]:
        """Every primary key, read in id ranges small enough for one query each (ids are uniform hashes)."""
        self.load(name)
        n = self.count(name)
        out: set[int] = set()
        stack = [(0, 1 << 63, max(1, math.ceil(n / page)))]
        while stack:
            lo, hi, parts = stack.pop()
            step = -(-(hi - lo) // parts)
            for a in range(lo, hi, step):
                b = min(hi, a + step)
                cond = f"id >= {a}" + (f" and id < {b}" if b < (1 << 63) else "")  # 2**63 overflows INT64
                rows = self._client.query(name, filter=cond, output_fields=["id"], limit=MAX_QUERY)
                if len(rows) >= MAX_QUERY:  # too dense: split this range further
                    stack.append((a, b, 4))
                else:
                    out.update(int(r["id"]) for r in rows)
        return out

    def load(self, name: str) -> None:
        """Load the collection for search/query once per process (Milvus keeps new ones released)."""
        if name not in self._loaded:
            if not self._client.has_collection(name):
                raise CollectionMismatchError(
                    f"Milvus has no collection {name}: ingest with that model first "
                    "(`onnx-search ingest FOLDER --model NAME`), or check the namespace"
                )
            self._client.load_collection(name)
            self._loaded.add(name)

    def search(
        self, name: str, queries: np.ndarray, top_k: int, index: IndexSpec, exclude: list[int | None] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k (id, Milvus distance) per query; ``exclude[i]`` drops that id from query i's hits.

        Hits at equal distance (exact duplicates under different ids) come in trec_eval's tie order
        (``ids.in_tie_order``), so identical runs give identical hits: Milvus returns ties in no fixed order, so
        each query asks for a few more rows than it keeps, and asks again deeper while the tie at the cut may reach
        past what was returned.
        """
        self.load(name)
        queries = [np.asarray(q, np.float32) for q in queries]
        extra = 1 if exclude and any(e is not None for e in exclude) else 0
        out: list[list[tuple[int, float]] | None] = [None] * len(queries)
        todo = list(range(len(queries)))
        limit = min(MAX_QUERY, top_k + extra + TIE_MARGIN)
        while todo:
            res = self._client.search(
                name,
                data=[queries[i] for i in todo],
                limit=limit,
                search_params={"metric_type": index.metric, "params": index.query_params(limit)},
                output_fields=["id"],
            )
            deeper = []
            for qi, hits in zip(todo, res, strict=True):
                skip = exclude[qi] if exclude else None
                row = [(int(h["id"]), float(h["distance"])) for h in hits]
                ordered = order_ties(row, str(index.metric))
                kept = [h for h in ordered if h[0] != skip][:top_k]
                if len(row) >= limit and limit < MAX_QUERY and kept and _tied(kept[-1][1], ordered[-1][1]):
                    deeper.append(qi)  # the tie at the cut may go on past the rows returned
                out[qi] = kept
            todo, limit = deeper, min(MAX_QUERY, limit * 4)
        return out


def _tied(a: float, b: float) -> bool:
    return abs(a - b) <= TIE_TOL * max(1.0, abs(a), abs(b))


def order_ties(hits: list[tuple[int, float]], metric: str) -> list[tuple[int, float]]:
    """``(id, distance)`` best first (ascending distance for L2, descending for COSINE and IP), runs of tied
    distances in trec_eval's order (``ids.in_tie_order``: id descending, compared as text)."""
    sign = 1.0 if metric == "L2" else -1.0
    by_distance = sorted(hits, key=lambda h: (sign * h[1], h[0]))
    out: list[tuple[int, float]] = []
    run: list[tuple[int, float]] = []
    for h in by_distance:
        if run and not _tied(run[0][1], h[1]):
            out += in_tie_order(run, _first)
            run = []
        run.append(h)
    return out + in_tie_order(run, _first)


def _first(hit: tuple[int, float]) -> int:
    return hit[0]


def _lite_lock_file(data_dir: str | Path) -> Path:
    return Path(data_dir).absolute() / "milvus" / "milvus.db" / "LOCK"  # milvus_lite's db.LOCK_FILENAME


def lite_lock_holder(data_dir: str | Path) -> dict | None:
    """The process that holds the Milvus Lite folder under ``data_dir`` (``{"pid", "command", "serve"}``, serve:
    whether it is ``onnx-search serve``), or None when it is free or this system cannot tell. It reads
    ``/proc/locks`` (Linux only) and takes no lock itself, so asking never gets in the way of a process that is
    opening the folder."""
    try:
        inode = _lite_lock_file(data_dir).stat().st_ino
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in locks.splitlines():
        cols = line.split()  # "3: FLOCK ADVISORY WRITE 28916 fe:00:2384001 0 EOF"
        if len(cols) >= 6 and cols[1] == "FLOCK" and cols[5].rsplit(":", 1)[-1] == str(inode):
            pid = int(cols[4]) if cols[4].isdigit() else None
            if pid is None or pid == os.getpid():
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
            except OSError:
                argv = []
            words = " ".join(argv).split()  # one line, whatever the arguments hold
            return {"pid": pid, "command": " ".join(words)[:160], "serve": _is_serve(words)}
    return None


def _is_serve(words: list[str]) -> bool:
    return "serve" in words and any("onnx-search" in w or "onnx_search" in w for w in words)


def lite_locked_message(data_dir: str | Path, holder: dict | None, detail: str | None = None) -> str:
    """One line: who holds the Milvus Lite folder of ``data_dir`` and what to do (stop `onnx-search serve` first)."""
    folder = Path(data_dir)
    if holder and holder.get("serve"):
        return (
            f"the explorer (`onnx-search serve`, pid {holder['pid']}) holds the stores in {folder}, and only one "
            "process may open them: stop `serve` first (Ctrl+C in its terminal), then run again; to score "
            "judgments while it serves, use `onnx-search compare RUN_DIR --qrels FILE`"
        )
    who = f"pid {holder['pid']}: {holder['command']}" if holder else "another process"
    why = f" ({detail})" if detail else ""
    return (
        f"Milvus Lite in {folder} is held by {who}{why}; only one process may open it: stop `onnx-search serve`, "
        f"or the other run or notebook, on data folder {folder} first, or use a Milvus server with "
        "`--milvus-uri http://host:19530`"
    )


def check_lite_free(data_dir: str | Path) -> None:
    """Fail at once, before any work, when another process holds the Milvus Lite folder of ``data_dir``."""
    holder = lite_lock_holder(data_dir)
    if holder is not None:
        raise StoreUnavailableError(lite_locked_message(data_dir, holder))


def connect_milvus(
    uri: str | None,
    data_dir: str | Path,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 3.0,
):
    """A MilvusClient: Milvus Lite in ``<data_dir>/milvus/milvus.db`` when ``uri`` is empty, else the server."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    if not uri:
        folder = Path(data_dir).absolute() / "milvus"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "milvus.db"
        # Milvus Lite's in-process gRPC server logs a traceback for AllocTimestamp, which it does not
        # implement and pymilvus only uses as an optional hint; nothing is wrong, so keep it quiet.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)  # we explain a lock below
        try:
            return MilvusClient(str(path), grpc_options=LITE_GRPC_OPTIONS)
        except MilvusException as exc:
            holder = lite_lock_holder(data_dir)
            raise StoreUnavailableError(lite_locked_message(data_dir, holder, exc.message)) from None
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.hostname:
        raise StoreUnavailableError(
            f"Milvus URI {mask_url(uri)!r} should look like http://host:19530 (or leave it unset for Milvus Lite)"
        )
    probe_tcp(parts.hostname, parts.port or 19530, "Milvus", timeout)
    kwargs = {"uri": uri, "timeout": 10}
    if token:
        kwargs["token"] = token
    elif user:
        kwargs.update(user=user, password=password or "")
    try:
        return MilvusClient(**kwargs)
    except MilvusException as exc:
        raise StoreUnavailableError(f"Milvus at {mask_url(uri)} refused the connection: {exc.message}") from None
