"""Flags shared by several commands, and turning them into the library's settings objects."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ..models.session import ModelSession, SessionConfig, resolve_model_path
from ..models.zoo import DEFAULT_MODELS
from ..store.index import IndexParams, IndexType, Metric
from ..store.stores import StoreSettings


def add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", action="append", help=f"registry name or .onnx path (repeatable; default {' '.join(DEFAULT_MODELS)})"
    )
    p.add_argument("--models-dir", default="models", help="where converted models live (default: models)")
    p.add_argument("--providers", default="auto", help="comma list: auto, tensorrt, cuda, cpu (default: auto)")
    p.add_argument("--strict", action="store_true", help="fail when a requested provider does not load")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: one per core)")
    p.add_argument("--batch-size", type=int, default=32, help="images per inference batch (default: 32)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: cores, max 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="data", help="embedded stores live here (default: data)")
    p.add_argument("--milvus-uri", default=None, help="Milvus server, e.g. http://host:19530 (default: Milvus Lite)")
    p.add_argument("--milvus-token", default=None, help="Milvus token or user:password")
    p.add_argument("--redis-url", default=None, help="redis:// or rediss:// URL (default: a local server)")
    p.add_argument("--namespace", default=None, help="Redis key prefix and Milvus collection prefix")
    p.add_argument("--metric", default=Metric.COSINE.value, choices=[m.value for m in Metric])
    p.add_argument("--index", default=IndexType.FLAT.value, choices=[t.value for t in IndexType])
    p.add_argument(
        "--index-params",
        default=None,
        help='JSON, the keys of the YAML index section: {"params": {"nlist": 64}, "search": {"nprobe": 8}}',
    )


def session_config(args) -> SessionConfig:
    return SessionConfig(providers=args.providers.split(","), strict=args.strict, intra_op_threads=args.threads)


def load_sessions(names: list[str] | None, args) -> dict[str, ModelSession]:
    """One session per model name or .onnx path (default: the default models), keyed by the model's name."""
    out = {}
    for n in names or list(DEFAULT_MODELS):
        m = ModelSession(resolve_model_path(n, args.models_dir), session_config(args))
        out[m.name] = m
    return out


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
        data_dir=Path(args.data_dir),
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
