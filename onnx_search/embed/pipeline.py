"""Read -> decode (thread pool) -> batch -> embed with every model, decoding overlapped with inference."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import DecodeError
from ..ids import content_hash
from ..models.session import ModelSession
from .decode import DEFAULT_MAX_PIXELS, load_for_recipes
from .normalize import FusedNormalizer

log = logging.getLogger(__name__)

AHEAD_BYTES = 128 * 2**20  # float inputs prepared ahead by the decode threads, at most (all models together)


@dataclass
class Item:
    """One decoded image: where it came from, its content hash and one uint8 array per geometry."""

    path: Path
    sha: str
    size: int
    mtime_ns: int
    arrays: list[np.ndarray]
    models: frozenset[str]  # models that still need this image
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # model -> its float32 input (decode thread)


@dataclass
class Batch:
    """Items of one batch and, per model, the row indices embedded and their vectors."""

    items: list[Item]
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (rows, vecs)


@dataclass
class StageTimes:
    """Seconds spent per stage (decode is summed over worker threads)."""

    read_decode: float = 0.0
    wait_for_decode: float = 0.0
    normalize: float = 0.0
    inference: dict[str, float] = field(default_factory=dict)
    write: float = 0.0
    images: int = 0
    wall: float = 0.0

    def as_dict(self) -> dict:
        return {
            "read_decode_s": round(self.read_decode, 3),
            "wait_for_decode_s": round(self.wait_for_decode, 3),
            "normalize_s": round(self.normalize, 3),
            "inference_s": {k: round(v, 3) for k, v in self.inference.items()},
            "write_s": round(self.write, 3),
            "images": self.images,
            "wall_s": round(self.wall, 3),
            "images_per_s": round(self.images / self.wall, 2) if self.wall else None,
        }


def load_file(path: Path, geometries: list, max_pixels: int = DEFAULT_MAX_PIXELS):
    """``(bytes, one uint8 array per geometry, stat)`` of one file, or the reason it cannot be used (a string).

    Shared by every engine, so a bad file is reported with the same words whichever engine met it.
    """
    try:
        st = path.stat()
        data, arrays = load_for_recipes(path, geometries, max_pixels)
        return data, arrays, st
    except DecodeError as exc:
        return str(exc)
    except FileNotFoundError:
        return "file not found (broken symlink or removed during the run)"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    except MemoryError:
        return "out of memory while decoding"
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the run
        log.warning("unexpected error on %s", path, exc_info=True)
        return f"unexpected error while decoding: {type(exc).__name__}: {exc}"


def model_batch_sizes(models: dict, batch_size: int | dict[str, int]) -> dict[str, int]:
    """One inference batch size per model, from one size for all or a size per model; each at least 1."""
    sizes = batch_size if isinstance(batch_size, dict) else dict.fromkeys(models, batch_size)
    if any(sizes.get(name, 0) < 1 for name in models):
        raise ValueError(f"every model needs a batch size of at least 1 (got {sizes})")
    return {name: int(sizes[name]) for name in models}


def default_decode_workers() -> int:
    """Decoding threads: as many as cores, at most 8 (Pillow releases the GIL while decoding)."""
    return max(1, min(8, os.cpu_count() or 1))


class Pipeline:
    """Embeds files with several models at once; each file is read and decoded once for all of them."""

    def __init__(
        self,
        models: dict[str, ModelSession],
        batch_size: int | dict[str, int] = 32,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = True,
    ) -> None:
        self.models = models
        self.model_batch = model_batch_sizes(models, batch_size)  # inference batch per model
        self.batch_size = max(self.model_batch.values(), default=1)  # images decoded per yielded batch
        self.workers = workers or default_decode_workers()
        self.max_pixels = max_pixels
        self.progress = progress
        self.geometries = sorted({m.recipe.geometry for m in models.values()})
        self.geometry_of = {name: self.geometries.index(m.recipe.geometry) for name, m in models.items()}
        self.normalizers = {name: FusedNormalizer(m.recipe) for name, m in models.items()}
        # float32 inputs made ahead by the decode threads for every image in flight, while they fit the budget
        # (one or two models); past it, the same lookup runs on the inference thread, batch by batch
        ahead = (self.batch_size * 3 + self.workers) * sum(4 * 3 * m.recipe.input_size**2 for m in models.values())
        self.normalize_ahead = ahead <= AHEAD_BYTES
        self.failures: list[tuple[str, str]] = []
        self.times = StageTimes()
        self._times_lock = threading.Lock()  # decode threads add to read_decode

    def _load(self, path: Path, needed: frozenset[str]) -> Item | tuple[str, str]:
        t0 = time.perf_counter()
        loaded = load_file(path, self.geometries, self.max_pixels)
        if isinstance(loaded, str):
            item: Item | tuple[str, str] = (str(path), loaded)
        else:
            data, arrays, st = loaded
            item = Item(path, content_hash(data), st.st_size, st.st_mtime_ns, arrays, needed)
            for name in needed & self.normalizers.keys() if self.normalize_ahead else ():  # off the inference thread
                item.inputs[name] = self.normalizers[name](arrays[self.geometry_of[name]])
        with self._times_lock:
            self.times.read_decode += time.perf_counter() - t0
        return item

    def _decoded(self, tasks: Iterable[tuple[Path, frozenset[str]]]) -> Iterator[Item | tuple[str, str]]:
        """Decoded items in input order, with a bounded number of decodes in flight."""
        window = self.batch_size * 2 + self.workers
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            pending: deque = deque()
            for path, needed in tasks:
                pending.append(pool.submit(self._load, path, needed))
                if len(pending) >= window:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())

    def decoded(self, tasks: Iterable[tuple[Path, frozenset[str]]]) -> Iterator[Item | tuple[str, str]]:
        """The decode side alone (read, hash, decode, resize, normalise), in input order: no inference."""
        return self._decoded(tasks)

    def _result(self, fut):
        t0 = time.perf_counter()
        r = fut.result()
        self.times.wait_for_decode += time.perf_counter() - t0
        return r

    def _embed(self, items: list[Item]) -> Batch:
        batch = Batch(items)
        for name, model in self.models.items():
            rows = np.array([i for i, it in enumerate(items) if name in it.models], dtype=np.int64)
            if len(rows) == 0:
                continue
            g, step = self.geometry_of[name], self.model_batch[name]
            chunks = []
            for start in range(0, len(rows), step):  # each model infers in batches of its own size
                t0 = time.perf_counter()
                part = rows[start : start + step]
                if all(name in items[i].inputs for i in part):  # normalised by the decode threads
                    x = np.stack([items[i].inputs.pop(name) for i in part])
                else:
                    x = np.stack([self.normalizers[name](items[i].arrays[g]) for i in part])
                t1 = time.perf_counter()
                chunks.append(model.embed(x))
                self.times.normalize += t1 - t0
                self.times.inference[name] = self.times.inference.get(name, 0.0) + time.perf_counter() - t1
            batch.vectors[name] = (rows, np.concatenate(chunks))
        return batch

    def run(
        self, tasks: list[tuple[Path, frozenset[str]]], on_failure: Callable[[str, str], None] | None = None
    ) -> Iterator[Batch]:
        """Yield embedded batches for ``tasks`` (path, models needing it); failures are recorded, not raised."""
        t_start = time.perf_counter()
        items: list[Item] = []
        bar = tqdm(total=len(tasks), unit="img", desc="embed", disable=not (self.progress and tasks), leave=False)
        try:
            for r in self._decoded(tasks):
                bar.update(1)
                if isinstance(r, tuple):
                    self.failures.append(r)
                    log.info("skipped %s: %s", *r)
                    if on_failure:
                        on_failure(*r)
                    continue
                items.append(r)
                if len(items) >= self.batch_size:
                    yield self._embed(items)
                    self.times.images += len(items)
                    items = []
            if items:
                yield self._embed(items)
                self.times.images += len(items)
        finally:
            bar.close()
            self.times.wall += time.perf_counter() - t_start
