"""Run folders as browsers: queries sorted by how much two models disagree, and the perturbed copies one model
missed and another found. Everything comes from the run's saved results.json (nothing is searched again)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..embed.decode import decode, read_bytes
from ..embed.images import embed_images
from ..experiment.augment import TRANSFORMS, copy_source
from ..experiment.augmented import baselines
from ..experiment.compare import rankings
from ..experiment.metrics import rbo
from ..experiment.results import load_results
from ..ids import image_id


@dataclass
class RunView:
    """One complete run folder, read once."""

    path: Path
    results: dict

    @classmethod
    def open(cls, path: str | Path) -> RunView:
        return cls(Path(path), load_results(path))

    @property
    def name(self) -> str:
        return self.path.name

    def seed(self) -> int:
        """The run's seed (its config's ``seed``, default 0): what its calibration sample was drawn with."""
        try:
            manifest = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError):
            return 0
        return int((manifest.get("config") or {}).get("seed", 0) or 0)

    def quality(self) -> dict[str, dict]:
        """Per model the run's headline quality figure with its interval (comparison["evidence"]; {} without)."""
        try:
            comparison = json.loads((self.path / "comparison.json").read_text())
        except (OSError, ValueError):
            return {}
        ev = comparison.get("evidence") or {}
        table = ev.get("quality") or {}
        verdict = ev.get("verdict") or {}
        metric = verdict.get("metric") or next(iter(table), None)
        if metric not in table:
            return {}
        label = verdict.get("metric_label") or metric
        return {m: {"metric": metric, "label": label, **iv} for m, iv in table[metric].items()}

    def describe(self) -> dict:
        rob = self.results.get("robustness") or {}
        return {
            "name": self.name,
            "experiment": self.results.get("experiment"),
            "models": self.results["models"],
            "top_k": self.results["top_k"],
            "queries": len(self.results["queries"]),
            "copies": len(rob.get("copies", [])),
            "transforms": rob.get("transforms", []),
        }

    def _check_models(self, a: str, b: str) -> None:
        models = self.results["models"]
        for m in (a, b):
            if m not in models:
                raise KeyError(f"model {m!r} is not in run {self.name} (it has {', '.join(models)})")

    def disagreement(self, a: str, b: str) -> list[dict]:
        """Every query with both models' top-k, sorted by RBO between them (least agreement first)."""
        self._check_models(a, b)
        ranked = rankings(self.results["hits"])
        rows = []
        for q in self.results["queries"]:
            per_model = ranked.get(q["query"], {})
            ha, hb = per_model.get(a, []), per_model.get(b, [])
            if not ha and not hb:
                continue
            ia, ib = [h["id"] for h in ha], [h["id"] for h in hb]
            rows.append(
                {
                    "query": q["query"],
                    "query_id": str(image_id(q["query"])),
                    "label": q.get("label") or "",
                    "rbo": round(rbo(ia, ib), 6),
                    "a": [_hit(h) for h in ha],
                    "b": [_hit(h) for h in hb],
                }
            )
        return sorted(rows, key=lambda r: (r["rbo"], r["query"]))

    def robustness(self, missed_by: str, found_by: str) -> list[dict]:
        """Copies whose original ``missed_by`` left out of its top-k while ``found_by`` found it."""
        self._check_models(missed_by, found_by)
        rob = self.results.get("robustness") or {}
        rows = {(r["copy"], r["model"]): r for r in rob.get("rows", [])}
        out = []
        for c, copy in enumerate(rob.get("copies", [])):
            miss, hit = rows.get((c, missed_by)), rows.get((c, found_by))
            if miss and hit and miss["rank"] is None and hit["rank"] is not None:
                out.append(
                    {
                        "copy": c,
                        "original": copy["original"],
                        "original_id": str(image_id(copy["original"])),
                        "transform": copy["transform"],
                        "params": copy["params"],
                        "missed": {"rank": None, "true_z": miss.get("true_z"), "top1_id": _sid(miss["top1_id"])},
                        "found": {"rank": hit["rank"], "true_z": hit.get("true_z")},
                    }
                )
        return out

    def copy_image(self, c: int) -> Image.Image:
        """The perturbed copy ``c``, made again from its original with the run's seed (as augment.make_copies).

        Raises LookupError when it cannot be made again exactly (an original unreadable now, or one skipped in
        the run, which shifts the generator's index)."""
        rob = self.results.get("robustness") or {}
        copies = rob.get("copies", [])
        if not 0 <= c < len(copies):
            raise LookupError(f"run {self.name} has no copy {c}")
        copy = copies[c]
        originals = list(dict.fromkeys(x["original"] for x in copies))
        i, j = originals.index(copy["original"]), rob["transforms"].index(copy["transform"])
        img = copy_source(read_bytes(copy["original"]), rob.get("source_side"))  # the scale the run made it at
        out, params = TRANSFORMS[copy["transform"]](img, np.random.default_rng([rob["seed"], i, j]))
        if json.loads(json.dumps(params)) != copy["params"]:
            raise LookupError(f"copy {c} of run {self.name} cannot be made again exactly")
        return out.convert("RGB")


def run_baselines(run: RunView, stores, sessions: dict) -> dict[str, np.ndarray]:
    """Each model's baseline as the run computed it (``experiment.augmented.baselines``): the run's queries
    against the seeded sample of its dataset's catalogued images, so percentile and z equal the report's."""
    models = [m for m in run.results["models"] if m in sessions]
    root = run.results.get("dataset_root")
    qpaths = [Path(q["query"]) for q in run.results["queries"]]
    if not models or not qpaths or not root:
        return {}
    catalogue = stores.catalog.get_images(stores.catalog.ids())
    cat_ids = [i for i, r in catalogue.items() if r.root == root]
    qids = [image_id(p) for p in qpaths]
    qvecs = {}
    for m in models:
        found = stores.fetch_present(m, qids)
        missing = [p for p, i in zip(qpaths, qids, strict=True) if i not in found]
        if missing:  # queries from outside the collection: embedded again, as the run did
            try:
                made = embed_images({m: sessions[m]}, [decode(read_bytes(str(p))) for p in missing])[m]
            except Exception:  # noqa: BLE001 - an unreadable query: this model keeps the collection baseline
                continue
            found |= {image_id(p): v for p, v in zip(missing, made, strict=True)}
        qvecs[m] = np.stack([found[i] for i in qids])
    return baselines(stores, list(qvecs), qpaths, qvecs, cat_ids, run.seed())


def _sid(i) -> str | None:
    return None if i is None else str(i)


def _hit(h: dict) -> dict:
    return {"id": str(h["id"]), "rank": h["rank"], "label": h.get("label", ""), "cosine": round(h["cosine"], 6)}
