"""The Redis catalogue every model shares: image id -> path, content hash, size, mtime, label.

Key schema (``ns`` is the namespace prefix, e.g. ``onnxsearch:demo``):

| key | type | holds |
| --- | --- | --- |
| ``ns:img:<id>`` | hash | ``path``, ``sha`` (BLAKE2b-128 of the bytes), ``size``, ``mtime_ns``, ``label``, ``root`` |
| ``ns:ids`` | set | every catalogued image id |
| ``ns:done:<model>`` | hash | image id -> content hash whose vector is in that model's collection |
| ``ns:models`` | hash | model -> JSON: collection, dim, model file sha256, metric, index |
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

CHUNK = 2000  # commands per pipeline round trip


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: str
    sha: str
    size: int
    mtime_ns: int
    label: str
    root: str


def _s(v) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


class Catalog:
    """Catalogue operations under one namespace; every multi-key write goes through a pipeline."""

    def __init__(self, client, namespace: str) -> None:
        self.r = client
        self.ns = namespace.rstrip(":")

    def _k(self, *parts) -> str:
        return ":".join([self.ns, *map(str, parts)])

    # images
    def put_images(self, records: Iterable[ImageRecord]) -> None:
        pipe = self.r.pipeline(transaction=False)
        ids = []
        for rec in records:
            pipe.hset(
                self._k("img", rec.id),
                mapping={
                    "path": rec.path,
                    "sha": rec.sha,
                    "size": rec.size,
                    "mtime_ns": rec.mtime_ns,
                    "label": rec.label,
                    "root": rec.root,
                },
            )
            ids.append(rec.id)
        if ids:
            pipe.sadd(self._k("ids"), *ids)
        pipe.execute()

    def get_images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        ids = list(ids)
        out: dict[int, ImageRecord] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            pipe = self.r.pipeline(transaction=False)
            for i in chunk:
                pipe.hgetall(self._k("img", i))
            for i, h in zip(chunk, pipe.execute(), strict=True):
                if h:
                    d = {_s(k): _s(v) for k, v in h.items()}
                    out[i] = ImageRecord(
                        i,
                        d["path"],
                        d["sha"],
                        int(d["size"]),
                        int(d["mtime_ns"]),
                        d.get("label", ""),
                        d.get("root", ""),
                    )
        return out

    def ids(self) -> set[int]:
        return {int(x) for x in self.r.smembers(self._k("ids"))}

    def image_keys(self) -> set[int]:
        """Ids that have an ``img`` hash (should equal ``ids()``)."""
        prefix = self._k("img", "")
        return {int(_s(k)[len(prefix) :]) for k in self.r.scan_iter(match=prefix + "*", count=1000)}

    def remove_images(self, ids: Iterable[int], models: Iterable[str]) -> None:
        ids = list(ids)
        models = list(models)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            pipe = self.r.pipeline(transaction=False)
            pipe.delete(*[self._k("img", i) for i in chunk])
            pipe.srem(self._k("ids"), *chunk)
            for m in models:
                pipe.hdel(self._k("done", m), *chunk)
            pipe.execute()

    # per-model progress
    def done(self, model: str) -> dict[int, str]:
        return {int(k): _s(v) for k, v in self.r.hgetall(self._k("done", model)).items()}

    def mark_done(self, model: str, shas: dict[int, str]) -> None:
        if shas:
            self.r.hset(self._k("done", model), mapping=shas)

    def unmark(self, model: str, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            self.r.hdel(self._k("done", model), *ids)

    # models
    def models(self) -> dict[str, dict]:
        return {_s(k): json.loads(v) for k, v in self.r.hgetall(self._k("models")).items()}

    def set_model(self, name: str, info: dict) -> None:
        self.r.hset(self._k("models"), name, json.dumps(info, sort_keys=True))

    def drop_model(self, name: str) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(self._k("models"), name)
        pipe.delete(self._k("done", name))
        pipe.execute()
