"""Where an experiment's data lives: its data folder, namespace and models, found from the experiment file (YAML)
or from its run folder (``runs/<experiment>/manifest.json``). Every command that reads or writes an experiment's
stores (check, search, serve, ingest, judgments) asks here, so they all agree with ``run``.

A run folder's manifest records the namespace and the data folder as the run resolved them (absolute), so it
finds the data from any working directory; the experiment file's relative paths are taken from the working
directory, as ``run`` takes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError
from ..store.stores import StoreSettings
from .loader import load_experiment

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Located:
    """An experiment's stores and models."""

    experiment: str
    settings: StoreSettings
    models_dir: Path
    models: list[str] = field(default_factory=list)  # the experiment's model keys (variants included)
    config_file: Path | None = None
    run_dir: Path | None = None  # a complete run folder (it holds manifest.json), when there is one
    dataset_root: Path | None = None
    extensions: list[str] | None = None
    labels: bool = True


def is_experiment_file(value: str | Path) -> bool:
    p = Path(value)
    return p.suffix.lower() in YAML_SUFFIXES and p.is_file()


def is_run_dir(value: str | Path) -> bool:
    return (Path(value) / "manifest.json").is_file()


def _from_config(cfg: Path) -> Located:
    exp = load_experiment(cfg, check_files=False)  # a file gone since the run: the others still answer
    run_dir = exp.run_dir if is_run_dir(exp.run_dir) else None
    return Located(
        experiment=exp.experiment,
        settings=exp.store.settings(exp.stores_dir, exp.experiment),
        models_dir=Path(exp.models_dir),
        models=[k for m in exp.models for k in m.keys],
        config_file=cfg.resolve(),
        run_dir=run_dir.resolve() if run_dir else None,
        dataset_root=exp.dataset.root,
        extensions=list(exp.dataset.extensions),
        labels=exp.dataset.labels,
    )


def _from_run_dir(run_dir: Path) -> Located:
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir / 'manifest.json'}: cannot be read ({exc}); run the experiment again") from None
    store = manifest.get("store") or {}
    cfg = Path(manifest.get("config_file") or "")
    if cfg.suffix and cfg.is_file():
        loc = _from_config(cfg)
    elif store.get("redis") == "local redis-server" and store.get("milvus") == "milvus-lite" and store.get("data_dir"):
        models = manifest.get("models") or {}
        root = (manifest.get("dataset") or {}).get("root")
        loc = Located(
            experiment=manifest.get("experiment") or run_dir.name,
            settings=StoreSettings(data_dir=Path(store["data_dir"]), metric=store.get("metric", "COSINE")),
            models_dir=Path("models"),
            models=list(models),
            dataset_root=Path(root) if root else None,
        )
    else:
        raise ConfigError(
            f"{run_dir}: its experiment file {cfg} is gone and its stores are not the embedded ones: "
            "pass the experiment file (YAML) instead"
        )
    settings = loc.settings
    if store.get("namespace"):  # what the run really used
        settings = replace(settings, namespace=store["namespace"])
    if store.get("data_dir"):
        settings = replace(settings, data_dir=Path(store["data_dir"]))
    return replace(loc, settings=settings, run_dir=run_dir.resolve())


def locate(value: str | Path) -> Located:
    """The experiment named by its YAML file or its run folder; a ConfigError says what to pass otherwise."""
    p = Path(value).expanduser()
    if p.is_dir():
        if not is_run_dir(p):
            raise ConfigError(
                f"{p} is a folder without manifest.json, so not a run folder: give the experiment file (YAML) "
                "or a folder `onnx-search run` wrote (runs/<experiment>)"
            )
        return _from_run_dir(p)
    if p.is_file():
        if p.name == "manifest.json":
            return _from_run_dir(p.parent)
        return _from_config(p)
    raise ConfigError(
        f"{value}: no such experiment file or run folder; give the experiment's YAML file or its run folder "
        "(runs/<experiment>)"
    )


def known_runs(runs_root: str | Path = "runs") -> list[dict]:
    """The run folders under ``runs_root`` with their experiment, namespace, data folder and config file."""
    out = []
    for manifest in sorted(Path(runs_root).glob("*/manifest.json")):
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        store = m.get("store") or {}
        out.append(
            {
                "run_dir": str(manifest.parent),
                "experiment": m.get("experiment", manifest.parent.name),
                "namespace": store.get("namespace"),
                "data_dir": store.get("data_dir"),
                "config_file": m.get("config_file"),
            }
        )
    return out
