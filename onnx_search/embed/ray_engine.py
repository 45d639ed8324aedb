"""The Ray Data engine: the same batches as the local pipeline, computed by Ray tasks and actor pools.

Stages: file list -> read + decode + resize per geometry (Ray tasks, CPU) -> one actor pool per model, each actor
holding one onnxruntime session made once -> (id, vector) batches streamed back to the driver in input order.
The driver writes them exactly as the local engine does (catalogue, vectors, done marks), so resume, ``check``,
``--prune`` and idempotence hold unchanged. Bad files come back as rows with a reason, never as a failed job.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ClusterUnavailableError, OnnxSearchError
from ..models.session import ModelSession
from .pipeline import Batch, Item, StageTimes, model_batch_sizes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaySettings:
    """Where the cluster is and how wide each model's actor pool is."""

    address: str | None = None  # None: start a local cluster on 127.0.0.1; "auto", or "ray://host:10001"
    actors: int = 1  # actors per model
    gpus_per_actor: float = 0.0
    num_cpus: int | None = None  # for a local cluster


def _decode_rows(batch: dict, geometries: list, max_pixels: int) -> dict:
    """Ray task: read and decode each file once, one uint8 array per geometry; failures as reasons."""
    from ..ids import content_hash
    from .pipeline import load_file

    n = len(batch["path"])
    out = {"path": batch["path"], "needed": batch["needed"], "ok": np.zeros(n, bool), "reason": np.full(n, "", object),
           "sha": np.full(n, "", object), "size": np.zeros(n, np.int64), "mtime_ns": np.zeros(n, np.int64)}  # fmt: skip
    pixels = [np.zeros((n, g[0], g[0], 3), np.uint8) for g in geometries]
    for i, p in enumerate(batch["path"]):
        loaded = load_file(Path(p), geometries, max_pixels)
        if isinstance(loaded, str):
            out["reason"][i] = loaded
            continue
        data, arrays, st = loaded
        out["ok"][i], out["sha"][i], out["size"][i], out["mtime_ns"][i] = (
            True,
            content_hash(data),
            st.st_size,
            st.st_mtime_ns,
        )
        for g, arr in enumerate(arrays):
            pixels[g][i] = arr
    return out | {f"px{g}": px for g, px in enumerate(pixels)}


class _ModelActor:
    """Ray actor: one onnxruntime session, made once; embeds the rows that need its model."""

    def __init__(self, name: str, path: str, providers: list[str], strict: bool, geometry: int) -> None:
        from ..models.session import ModelSession, SessionConfig

        self.name, self.geometry = name, geometry
        self.session = ModelSession(Path(path), SessionConfig(providers, strict))

    def __call__(self, batch: dict) -> dict:
        from ..models.recipe import prepare_batch

        n = len(batch["path"])
        rows = [i for i in range(n) if batch["ok"][i] and self.name in list(batch["needed"][i])]
        vecs = np.zeros((n, self.session.dim), np.float32)
        if rows:
            vecs[rows] = self.session.embed(prepare_batch(batch[f"px{self.geometry}"][rows], self.session.recipe))
        return batch | {f"vec:{self.name}": vecs, f"prov:{self.name}": np.full(n, self.session.provider, object)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``ray://host:port`` or ``host:port`` address; None for ``auto`` or no port."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)) if sep and host and port.isdigit() else None


def _probe(address: str, timeout: float = 3.0) -> None:
    """Fail within seconds when nothing answers at the address (Ray's client would retry for about 30 s)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout).close()
    except OSError as exc:
        raise ClusterUnavailableError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it there "
            "(`ray start --head`), check the host and port given with --ray-address, or drop --ray-address "
            "to start a local cluster"
        ) from None


def _start_local(settings: RaySettings) -> None:
    """Start a local cluster bound to loopback; once more with a longer start-up timeout when the first fails."""
    import ray

    for attempt, wait_s in enumerate((None, "120")):
        env = {"RAY_gcs_server_port_wait_time_s": wait_s, "RAY_raylet_start_wait_time_s": wait_s} if wait_s else {}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            ray.init(num_cpus=settings.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, ignore_reinit_error=True)  # fmt: skip
            return
        except Exception as exc:  # a raylet that starts too slowly is a bare Exception ("timed out during startup")
            ray.shutdown()
            if attempt == 0:
                log.warning("starting a local Ray cluster failed (%s); retrying once with a longer timeout",
                            _first_line(exc))  # fmt: skip
                continue
            raise ClusterUnavailableError(
                f"could not start a local Ray cluster ({_first_line(exc)}): the machine may be busy or short of "
                "memory or /tmp space; retry, give a running cluster with --ray-address, or use the local engine"
            ) from None
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def connect(settings: RaySettings) -> None:
    """Start or reach the cluster, or raise ClusterUnavailableError with the cause and what to do."""
    import ray

    if ray.is_initialized():
        return
    if not settings.address:
        _start_local(settings)
        return
    _probe(settings.address)
    try:
        ray.init(address=settings.address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    except (RuntimeError, TimeoutError, ConnectionError, OSError, ValueError) as exc:
        ray.shutdown()
        raise ClusterUnavailableError(
            f"cannot use the Ray cluster at {settings.address} ({_first_line(exc)}): check that it runs "
            f"(`ray status` on its head) and that its Ray and Python versions match this one (ray {ray.__version__}, "
            f"Python {platform.python_version()})"
        ) from None


class RayPipeline:
    """Drop-in for ``Pipeline``: ``run(tasks)`` yields Batches in input order; ``failures``, ``times`` as there."""

    def __init__(
        self,
        models: dict[str, ModelSession],
        batch_size: int | dict[str, int] = 32,
        settings: RaySettings | None = None,
        max_pixels: int = 200_000_000,
        progress: bool = True,
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise OnnxSearchError("the Ray engine needs Ray: pip install -e '.[ray]'") from None
        self.models, self.model_batch = models, model_batch_sizes(models, batch_size)
        self.batch_size = max(self.model_batch.values(), default=1)
        self.settings = settings or RaySettings()
        self.max_pixels = max_pixels
        self.geometries = sorted({m.recipe.geometry for m in models.values()})
        self.failures: list[tuple[str, str]] = []
        self.times = StageTimes()
        self.providers_active: dict[str, set[str]] = {n: set() for n in models}

    def run(self, tasks: Iterable[tuple[Path, frozenset[str]]]) -> Iterator[Batch]:
        import ray

        tasks = list(tasks)
        t0 = time.perf_counter()
        if not tasks:
            return
        connect(self.settings)
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        rows = [{"path": str(p), "needed": sorted(need)} for p, need in tasks]
        ds = ray.data.from_items(rows).map_batches(
            _decode_rows, batch_size=self.batch_size, batch_format="numpy",
            fn_kwargs={"geometries": self.geometries, "max_pixels": self.max_pixels},
        )  # fmt: skip
        for name, m in self.models.items():
            actor = {"name": name, "path": str(m.path), "providers": m.options.providers, "strict": m.options.strict,
                     "geometry": self.geometries.index(m.recipe.geometry)}  # fmt: skip
            ds = ds.map_batches(
                _ModelActor, batch_size=self.model_batch[name], batch_format="numpy", concurrency=self.settings.actors,
                num_gpus=self.settings.gpus_per_actor or None, fn_constructor_kwargs=actor,
            )  # fmt: skip
        try:
            for b in ds.iter_batches(batch_size=self.batch_size, batch_format="numpy", prefetch_batches=1):
                yield self._to_batch(b)
        finally:
            self.times.wall += time.perf_counter() - t0

    def _to_batch(self, b: dict) -> Batch:
        items, keep = [], []
        for i, p in enumerate(b["path"]):
            if not b["ok"][i]:
                self.failures.append((str(p), str(b["reason"][i])))
                continue
            keep.append(i)
            items.append(
                Item(Path(p), str(b["sha"][i]), int(b["size"][i]), int(b["mtime_ns"][i]), [], frozenset(b["needed"][i]))
            )
        batch = Batch(items)
        for name in self.models:
            rows = np.array([j for j, i in enumerate(keep) if name in list(b["needed"][i])], dtype=np.int64)
            if len(rows):
                batch.vectors[name] = (rows, b[f"vec:{name}"][[keep[j] for j in rows]])
                self.providers_active[name].update(str(x) for x in b[f"prov:{name}"][[keep[j] for j in rows]])
        self.times.images += len(items)
        return batch
