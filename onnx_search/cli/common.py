"""Flags shared by several commands, and turning them into the library's settings objects."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..models.session import ModelSession, SessionConfig, resolve_model_path
from ..models.zoo import DEFAULT_MODELS
from ..store.index import IndexParams, IndexType, Metric
from ..store.local_redis import KEEP_ENV
from ..store.stores import Stores, StoreSettings, namespaces, open_stores

if TYPE_CHECKING:
    from ..experiment.locate import Located


def add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", action="append", help=f"registry name or .onnx path (repeatable; default {' '.join(DEFAULT_MODELS)})"
    )
    p.add_argument(
        "--models-dir", default=None, help="where converted models live (default: the experiment's, else models)"
    )
    p.add_argument("--providers", default="auto", help="comma list: auto, tensorrt, cuda, cpu (default: auto)")
    p.add_argument("--strict", action="store_true", help="fail when a requested provider does not load")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: one per core)")
    p.add_argument("--batch-size", type=int, default=32, help="images per inference batch (default: 32)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: cores, max 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_experiment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-e",
        "--experiment",
        metavar="FILE_OR_RUN_DIR",
        help="the experiment file (YAML) or its run folder (runs/<experiment>): use its data folder, namespace "
        "and models",
    )


def add_store_args(p: argparse.ArgumentParser) -> None:
    add_experiment_arg(p)
    p.add_argument("--data-dir", default=None, help="embedded stores live here (default: the experiment's, else data)")
    p.add_argument("--milvus-uri", default=None, help="Milvus server, e.g. http://host:19530 (default: Milvus Lite)")
    p.add_argument("--milvus-token", default=None, help="Milvus token or user:password")
    p.add_argument("--redis-url", default=None, help="redis:// or rediss:// URL (default: a local server)")
    p.add_argument("--namespace", default=None, help="Redis key prefix and Milvus collection prefix")
    p.add_argument(
        "--keep-redis",
        action="store_true",
        help=f"leave the embedded redis-server running when the command ends (or set {KEEP_ENV}=1)",
    )
    p.add_argument(
        "--metric",
        default=Metric.COSINE.value,
        choices=[m.value for m in Metric],
        help=f"vector distance of the Milvus collections (default: {Metric.COSINE.value})",
    )
    p.add_argument(
        "--index",
        default=IndexType.FLAT.value,
        choices=[t.value for t in IndexType],
        help=f"Milvus index type (default: {IndexType.FLAT.value}, exact search); its parameters: --index-params",
    )
    p.add_argument(
        "--index-params",
        default=None,
        help='JSON, the keys of the YAML index section: {"params": {"nlist": 64}, "search": {"nprobe": 8}}',
    )


def session_config(args) -> SessionConfig:
    return SessionConfig(providers=args.providers.split(","), strict=args.strict, intra_op_threads=args.threads)


def load_sessions(names: list[str] | None, args) -> dict[str, ModelSession]:
    """One session per model name or .onnx path (default: the default models), keyed by the model's name."""
    out: dict[str, ModelSession] = {}
    for n in names or list(DEFAULT_MODELS):
        _add_session(out, None, resolve_model_path(n, args.models_dir or "models"), args)
    return out


def _add_session(out: dict[str, ModelSession], key: str | None, path: Path, args) -> None:
    """``out[key or the model's name]`` = a session of ``path``; two files under one name are refused."""
    if key is None and any(m.path.resolve() == path.resolve() for m in out.values()):
        return  # the same file asked for twice
    m = ModelSession(path, session_config(args))
    key = key or m.name
    if key in out:
        raise ConfigError(
            f"{out[key].path} and {m.path} are both model {key}: their vectors would share one name "
            "(one .npy, one collection); give one of them, or rename one file"
        )
    out[key] = m


def catalogue_sessions(names: list[str], stores: Stores, models_dir: str | Path, args) -> dict[str, ModelSession]:
    """One session per model, keyed by its collection's name: a .onnx path as given; a name by the file the
    catalogue recorded for its collection (an INT8 file named by its inputs too), else ``models_dir/<name>``."""
    recorded = stores.catalog.models()
    out = {}
    for n in names:
        info = recorded.get(n) or {}
        path = Path(info["path"]) if info.get("path") and not n.endswith(".onnx") else None
        if path is not None and not path.is_file():  # recorded relative to another folder: its name here
            path = Path(models_dir) / path.name
        if path is None or not path.is_file():
            path = resolve_model_path(n, models_dir)
        _add_session(out, n if n in recorded else None, path, args)
    return out


def located(args) -> Located | None:
    """The experiment ``--experiment`` names (None without it); the store flags it replaces are refused."""
    if not getattr(args, "experiment", None):
        return None
    given = [f for f in ("data_dir", "namespace", "redis_url", "milvus_uri") if getattr(args, f, None)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"--experiment names the stores already: drop {flag} (or drop --experiment)")
    from ..experiment.locate import locate

    return locate(args.experiment)


def settings_for(args, loc: Located | None) -> StoreSettings:
    """The experiment's store settings, else the store flags'; ``--keep-redis`` either way."""
    settings = loc.settings if loc else store_settings(args)
    return replace(settings, keep_redis=True) if getattr(args, "keep_redis", False) else settings


def _runs_note(runs: list[dict]) -> str:
    """``  (experiment NAME: RUN_DIR, CONFIG; ...)`` for a line of a listing ('' without runs)."""
    if not runs:
        return ""
    return "  (" + "; ".join(f"experiment {r['experiment']}: {r['run_dir']}, {r['config_file']}" for r in runs) + ")"


def _describe_namespace(ns: str, data_dir: Path, runs: list[dict]) -> str:
    here = str(data_dir.resolve())
    return f"  {ns}" + _runs_note([r for r in runs if r["namespace"] == ns and r.get("data_dir") in (None, here)])


def _refuse_bare_other_stores(settings: StoreSettings) -> None:
    """Bare, with no embedded stores in the data folder but experiments' stores in its subfolders: list them
    instead of starting an empty store."""
    if settings.redis_url or (settings.data_dir / "redis" / "state.json").is_file():
        return
    below = sorted(s.parent.parent for s in settings.data_dir.glob("*/redis/state.json"))
    if not below:
        return
    from ..experiment.locate import known_runs

    runs = known_runs()
    lines = [f"  {d}" + _runs_note([r for r in runs if r.get("data_dir") == str(d.resolve())]) for d in below]
    raise ConfigError(
        f"{settings.data_dir} holds no stores of its own, but experiments' stores lie below it: pass "
        "--experiment FILE_OR_RUN_DIR (or --data-dir DIR):\n" + "\n".join(lines)
    )


def _refuse_bare_empty_namespace(stores: Stores, data_dir: Path) -> None:
    """Bare, when the default namespace holds nothing and others do: list them instead of answering about it."""
    present = namespaces(stores.catalog.r)
    others = [ns for ns in present if ns != stores.catalog.ns]
    if not others:
        return
    from ..experiment.locate import known_runs

    runs = known_runs()
    listing = "\n".join(_describe_namespace(ns, data_dir, runs) for ns in others)
    if stores.catalog.ns in present:
        print(f"(this data folder also holds: --experiment or --namespace picks one)\n{listing}", file=sys.stderr)
        return
    raise ConfigError(
        f"namespace {stores.catalog.ns} holds nothing, but "
        + (f"{len(others)} other namespaces here do" if len(others) > 1 else "another namespace here does")
        + ": pass --experiment FILE_OR_RUN_DIR (or --namespace NS):\n"
        + listing
    )


def open_data(args, bare_check: bool = True) -> tuple[Stores, Located | None]:
    """The stores a command works on: the experiment's (``--experiment``), else the store flags'. Used bare (no
    experiment, no namespace) on a data folder whose data lies elsewhere, ``bare_check`` lists what is there
    instead of answering about an empty default namespace."""
    loc = located(args)
    settings = settings_for(args, loc)
    bare = bare_check and loc is None and not args.namespace
    if bare:
        _refuse_bare_other_stores(settings)
    stores = open_stores(settings)
    if bare:
        try:
            _refuse_bare_empty_namespace(stores, settings.data_dir)
        except BaseException:
            stores.close()
            raise
    return stores, loc


def data_dir_of(args, loc: Located | None) -> Path:
    """The data folder a command works in: the experiment's, else ``--data-dir`` (default data)."""
    return Path(loc.settings.data_dir) if loc else Path(getattr(args, "data_dir", None) or "data")


def store_settings(args) -> StoreSettings:
    """The store flags as StoreSettings, the index validated by the same model the YAML uses."""
    from pydantic import ValidationError

    try:
        extra = json.loads(args.index_params) if args.index_params else {}
        index = IndexParams.model_validate({"type": args.index, **extra})
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"--index-params is not a JSON object: {exc}") from None
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'index'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--index-params: {msgs}") from None
    return StoreSettings(
        data_dir=Path(args.data_dir or "data"),
        milvus_uri=args.milvus_uri,
        milvus_token=args.milvus_token,
        redis_url=args.redis_url,
        namespace=args.namespace,
        metric=args.metric,
        index=index,
    )


def print_skipped(skipped: list[tuple[str, str]], report: Path | None = None) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} files" + (f" (listed in {report})" if report else "") + ":")
    for path, reason in skipped[:20]:
        print(f"  {path}: {reason}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more")
