"""Names in the stores: the namespace (Redis key prefix) and the Milvus collection of each model."""

from __future__ import annotations

import getpass
import re


def sanitize(text: str) -> str:
    """Letters, digits and underscores only (Milvus names; user names in namespaces)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", text)


def default_namespace(name: str = "default") -> str:
    """``onnxsearch:<user>:<name>``: two users or experiments on one Redis/Milvus never collide."""
    return f"onnxsearch:{sanitize(getpass.getuser() or 'user')}:{name}"


def collection_prefix(namespace: str) -> str:
    """Milvus collection prefix from the Redis namespace (``:`` is not allowed in collection names)."""
    return sanitize(namespace)


def collection_name(prefix: str, model: str) -> str:
    """``<prefix>_<model>`` made into a legal Milvus name."""
    name = sanitize(f"{prefix}_{model}")
    return name if not name[0].isdigit() else f"c_{name}"
