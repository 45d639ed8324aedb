"""Which family a model belongs to and what its vector is, read from the recipe a .onnx file carries.

Families: a CNN, a self-supervised ViT (DINO, DINOv2, MAE, ...), a CLIP/SigLIP contrastive image tower, a supervised
ViT, or the user's own model. Derived from the metadata only (source, builder, pooling), so a variant (which keeps
its parent's metadata) lands in its parent's family, and a run folder says it without the registry.
"""

from __future__ import annotations

FAMILIES = ("CNN", "ViT self-supervised", "CLIP/SigLIP contrastive", "ViT supervised", "user model", "unknown")
TOKEN_POOLINGS = ("token", "avg-tokens", "map")
TRANSFORMER_HINTS = ("vit", "deit", "eva", "beit", "dino", "clip", "siglip", "swin")
SELF_SUPERVISED_HINTS = ("dino", "mae", "beit", "ibot", "mocov3")
CONTRASTIVE_HINTS = ("clip", "siglip")
VECTORS = {
    "max": "global max pool",
    "avg": "global average pool",
    "avgpool": "avgpool (classifier removed)",
    "fc7": "fc7 (penultimate FC)",
    "token": "CLS token",
    "avg-tokens": "mean of patch tokens",
    "map": "attention-pool (MAP) head",
    "output": "the model's output",
}


def family(meta: dict) -> str:
    """The family of the model whose metadata is ``meta`` (one of FAMILIES)."""
    source, builder = str(meta.get("source") or ""), str(meta.get("builder") or "").lower()
    if not source:
        return "unknown"
    if source.startswith("user-"):
        return "user model"
    arch = builder  # a timm name (with its pretrained tag) or a constructor's dotted path
    if any(h in arch for h in CONTRASTIVE_HINTS):
        return "CLIP/SigLIP contrastive"
    if meta.get("pooling") in TOKEN_POOLINGS or any(h in arch for h in TRANSFORMER_HINTS):
        return "ViT self-supervised" if any(h in arch for h in SELF_SUPERVISED_HINTS) else "ViT supervised"
    return "CNN"


def vector_source(meta: dict) -> str:
    """What the vector is, in words: the pooling (or the user's named layer)."""
    pooling = str(meta.get("pooling") or "")
    if pooling.startswith("layer:"):
        return f"layer {pooling[len('layer:') :]}"
    return VECTORS.get(pooling, pooling or "–")


def family_info(meta: dict, dim: int | None = None) -> dict:
    """Family, source, architecture, vector source and dimension: one row of a report's family table."""
    return {
        "family": family(meta),
        "source": meta.get("source"),
        "builder": meta.get("builder"),
        "pooling": meta.get("pooling"),
        "vector": vector_source(meta),
        "dim": dim if dim is not None else meta.get("dim"),
    }


def family_order(name_family: dict[str, str]) -> list[str]:
    """Model names grouped by family (in FAMILIES order), each group in the given order."""
    rank = {f: i for i, f in enumerate(FAMILIES)}
    names = list(name_family)
    return sorted(names, key=lambda n: (rank.get(name_family[n], len(FAMILIES)), names.index(n)))
