"""How a deployment variant differs from its parent in a run: shared hits and the cosine of the same image."""

from __future__ import annotations

import numpy as np

from ..models.int8_recipe import low_agreement
from ..models.session import ModelSession
from ..store.stores import Stores

SAMPLE = 200  # images whose two vectors are compared


def variant_agreement(stores: Stores, models: dict[str, ModelSession], comparison: dict, ids: list[int]) -> dict:
    """Per variant whose parent is in the run: overlap@k and RBO with the parent, and the cosine between the
    variant's and the parent's vector of the same image (over a fixed sample of catalogued ids)."""
    out = {}
    pairs = comparison["summary"]["pairs"]
    sample = sorted(ids)[:SAMPLE]
    for name, m in models.items():
        parent = (m.meta.get("parent") or {}).get("name")
        if parent not in models or not sample:
            continue
        pair = pairs.get(f"{parent}|{name}") or pairs.get(f"{name}|{parent}") or {}
        cos = (stores.fetch(parent, sample) * stores.fetch(name, sample)).sum(axis=1)
        out[name] = {
            "parent": parent,
            "variant": m.meta.get("variant"),
            "overlap_at_k": pair.get("overlap_at_k"),
            "rbo": pair.get("rbo"),
            "mean_parent_cosine": float(np.mean(cos)),
            "min_parent_cosine": float(np.min(cos)),
            "images": len(sample),
        }
        if rec := m.meta.get("int8_recipe"):  # the INT8 recipe, its target ISA and its agreement where chosen
            out[name]["int8_recipe"] = rec
    return out


def agreement_warnings(variants: dict) -> list[str]:
    """One line per INT8 variant whose mean cosine to its parent on the run's own images is below its recipe's
    target (``variant_agreement``'s dict)."""
    lines = []
    for name, v in variants.items():
        if v.get("int8_recipe"):
            line = low_agreement(name, v["mean_parent_cosine"], v["int8_recipe"], v["images"])
            lines += [line] if line else []
    return lines
