"""The one vocabulary for metrics and indexes, used by the YAML config, the CLI flags and the Milvus layer."""

from __future__ import annotations

import math
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Name(str, Enum):
    """A name that prints as itself (Milvus and the results want ``COSINE``, not ``Metric.COSINE``)."""

    def __str__(self) -> str:
        return self.value


class Metric(_Name):
    COSINE = "COSINE"
    IP = "IP"
    L2 = "L2"  # Milvus returns squared L2; on unit vectors 2 - 2·cos


class IndexType(_Name):
    FLAT = "FLAT"
    IVF_FLAT = "IVF_FLAT"
    HNSW = "HNSW"


# build and search parameters each index type understands (anything else is a typo)
KNOWN_PARAMS: dict[str, tuple[set[str], set[str]]] = {
    "FLAT": (set(), set()),
    "IVF_FLAT": ({"nlist"}, {"nprobe"}),
    "HNSW": ({"M", "efConstruction"}, {"ef"}),
}


class IndexParams(BaseModel):
    """An index as the config and the CLI spell it: ``{type, params (build), search}``."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=True, frozen=True)

    type: IndexType = Field(IndexType.FLAT, description="FLAT: exact search; IVF_FLAT and HNSW: approximate")
    params: dict[str, int] = Field(
        default_factory=dict,
        description="build parameters: IVF_FLAT nlist (default about 4·√rows); HNSW M (16), efConstruction (200)",
    )
    search: dict[str, int] = Field(
        default_factory=dict,
        description="search parameters: IVF_FLAT nprobe (default 16); HNSW ef (default 64, at least top_k)",
    )

    @model_validator(mode="after")
    def _known_keys(self):
        build, search = KNOWN_PARAMS[self.type]
        for where, given, known in (("params", self.params, build), ("search", self.search, search)):
            unknown = sorted(set(given) - known)
            if unknown:
                allowed = ", ".join(sorted(known)) or "none"
                raise ValueError(f"{self.type} does not take {where} {unknown} (allowed: {allowed})")
        return self


class IndexSpec(IndexParams):
    """An index with its metric: everything Milvus needs to build and search it."""

    metric: Metric = Metric.COSINE

    @classmethod
    def of(cls, metric: str, index: IndexParams | None = None) -> IndexSpec:
        return cls(metric=metric, **(index.model_dump() if index else {}))

    def build_params(self, expected_rows: int) -> dict:
        """Build parameters with defaults: nlist ≈ 4·√n for IVF_FLAT, M=16/efConstruction=200 for HNSW."""
        if self.type == "IVF_FLAT":
            nlist = self.params.get("nlist") or max(1, min(65536, round(4 * math.sqrt(max(expected_rows, 1)))))
            return {"nlist": int(nlist)}
        if self.type == "HNSW":
            return {"M": int(self.params.get("M", 16)), "efConstruction": int(self.params.get("efConstruction", 200))}
        return {}

    def query_params(self, top_k: int) -> dict:
        if self.type == "IVF_FLAT":
            return {"nprobe": int(self.search.get("nprobe", 16))}
        if self.type == "HNSW":
            return {"ef": int(max(self.search.get("ef", 64), top_k))}
        return {}
