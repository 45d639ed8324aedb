"""Do Milvus and Redis agree? ``check`` compares them per model; ``repair`` removes what a crash left half-written."""

from __future__ import annotations

from dataclasses import dataclass, field

from .stores import Stores


@dataclass
class CheckReport:
    """Differences between the stores, per model; ``pending`` (not yet embedded) is not a disagreement."""

    problems: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(v for d in self.problems.values() for v in d.values())


def check(stores: Stores, repair: bool = False) -> CheckReport:
    """Compare Milvus and Redis; with ``repair`` remove what a crash left half-written."""
    cat = stores.catalog
    ids, keys = cat.ids(), cat.image_keys()
    rep = CheckReport()
    rep.problems["catalogue"] = {"id_without_record": sorted(ids - keys), "record_without_id": sorted(keys - ids)}
    if repair:
        cat.remove_images(rep.problems["catalogue"]["id_without_record"], [])
        cat.remove_images(rep.problems["catalogue"]["record_without_id"], [])
        ids = ids & keys
    for name, info in cat.models().items():
        coll = info.get("collection", stores.collection(name))
        vec_ids = stores.vectors.ids(coll) if stores.vectors.exists(coll) else set()
        done = set(cat.done(name))
        p = {
            "vector_without_mark": sorted(vec_ids - done),
            "mark_without_vector": sorted(done - vec_ids),
            "mark_without_image": sorted(done - ids),
        }
        rep.problems[name] = p
        rep.pending[name] = len(ids - done)
        rep.counts[name] = {"catalogue": len(ids), "done": len(done), "vectors": len(vec_ids)}
        if repair:
            stores.vectors.delete(coll, sorted(set(p["vector_without_mark"]) | set(p["mark_without_image"])))
            cat.unmark(name, set(p["mark_without_vector"]) | set(p["mark_without_image"]))
    return rep
