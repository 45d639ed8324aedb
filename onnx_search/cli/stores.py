"""Store commands: ``ingest``, ``search``, ``check``, ``redis-stop`` (Milvus + Redis)."""

from __future__ import annotations

import json
from pathlib import Path

from ..embed.scan import DEFAULT_EXTENSIONS
from ..errors import ConfigError
from .common import (
    add_experiment_arg,
    add_session_args,
    add_store_args,
    catalogue_sessions,
    data_dir_of,
    load_sessions,
    located,
    open_data,
    print_skipped,
)


def cmd_ingest(args) -> int:
    stores, loc = open_data(args, bare_check=False)  # a store that is down fails here, before any model is loaded
    try:
        return _ingest(args, stores, loc)
    finally:
        stores.close()


def _ingest(args, stores, loc) -> int:
    from ..ingest import ingest

    folder = args.folder or (loc.dataset_root if loc else None)
    if folder is None:
        raise ConfigError("ingest needs the image FOLDER (or --experiment FILE_OR_RUN_DIR, whose dataset it takes)")
    if loc:  # the experiment's models, by the files their collections were built with
        models = catalogue_sessions(args.model or loc.models, stores, args.models_dir or loc.models_dir, args)
    else:
        models = load_sessions(args.model, args)
    extensions = args.extensions.split(",") if args.extensions else (loc.extensions if loc else None)
    report_dir = data_dir_of(args, loc) / "reports"
    r = ingest(
        folder,
        models,
        stores,
        batch_size=args.batch_size,
        workers=args.workers,
        extensions=extensions or DEFAULT_EXTENSIONS,
        labels=loc.labels if loc else True,
        prune=args.prune,
        rebuild=args.rebuild,
        progress=not args.quiet,
        report_dir=report_dir,
        engine=_engine(args),
    )
    print(
        f"scanned {r.scanned} files: {r.unchanged} unchanged, catalogued {r.catalogued}, "
        f"embedded {r.embedded}, pruned {r.pruned}"
    )
    t = r.times
    print(
        f"timings: read+decode {t['read_decode_s']}s (threads), waited for decode {t['wait_for_decode_s']}s, "
        f"inference {t['inference_s']}, write {t['write_s']}s, total {t['total_s']}s"
    )
    for name, prov in r.providers.items():
        print(f"  {name}: providers {prov}, collection {stores.collection(name)}")
    print_skipped(r.skipped, report_dir / "skipped.json")
    return 0


def _engine(args):
    """RaySettings for --engine ray, else None (the local engine)."""
    if args.engine != "ray":
        return None
    from ..embed.ray_engine import RaySettings

    return RaySettings(args.ray_address, args.actors, args.gpus_per_actor)


def cmd_search(args) -> int:
    stores, loc = open_data(args)
    try:
        return _search(args, stores, loc)
    finally:
        stores.close()


def _search(args, stores, loc) -> int:
    from ..search import search

    names = args.model or sorted(stores.catalog.models())
    if not names:
        print(
            f"nothing ingested in namespace {stores.catalog.ns} yet: run `onnx-search ingest` first, "
            "or pass --experiment FILE_OR_RUN_DIR"
        )
        return 2
    models = catalogue_sessions(names, stores, args.models_dir or (loc.models_dir if loc else "models"), args)
    hits, failed = search(
        [Path(p) for p in args.images], models, stores, args.top_k, args.exclude_self, args.batch_size, args.workers
    )
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], indent=1, ensure_ascii=False))
    else:
        for q in dict.fromkeys(h.query for h in hits):
            print(f"query {q}")
            for name in models:
                print(f"  {name} ({stores.index.metric}):")
                for h in (h for h in hits if h.query == q and h.model == name):
                    print(f"    {h.rank:>2}. cos {h.cosine:+.4f}  dist {h.distance:.4f}  [{h.label}] {h.path}")
    print_skipped(failed)
    return 0 if not failed or hits else 2


def cmd_check(args) -> int:
    from ..store.consistency import check

    stores, _ = open_data(args)
    try:
        rep = check(stores, repair=args.repair)
    finally:
        stores.close()
    if not rep.counts and rep.ok:
        print(f"nothing ingested in namespace {stores.catalog.ns}: nothing to compare")
        return 0
    for name, counts in rep.counts.items():
        print(
            f"{name}: catalogue {counts['catalogue']}, done {counts['done']}, vectors {counts['vectors']}, "
            f"pending {rep.pending[name]}"
        )
    bad = {m: {k: v for k, v in d.items() if v} for m, d in rep.problems.items()}
    bad = {m: d for m, d in bad.items() if d}
    for m, d in bad.items():
        for kind, ids in d.items():
            print(
                f"  DIFFERENCE {m}: {kind}: {len(ids)} ids (first: {ids[:5]})" + (" -> repaired" if args.repair else "")
            )
    if not bad:
        print("Milvus and Redis agree")
    return 0 if not bad or args.repair else 1


def cmd_redis_stop(args) -> int:
    from ..store.local_redis import LocalRedis

    data_dir = data_dir_of(args, located(args))
    server = LocalRedis(data_dir)
    if not server.running():
        print(f"no onnx-search Redis server is running for {data_dir}")
        return 0
    server.stop()
    print(f"stopped the Redis server of {data_dir} (its data stays in {server.dir})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("ingest", help="embed a folder into per-model Milvus collections + the Redis catalogue")
    p.add_argument("folder", nargs="?", help="the image folder (default: the --experiment's dataset)")
    add_session_args(p)
    add_store_args(p)
    p.add_argument("--extensions", default=None, help="comma list, e.g. jpg,png (case-insensitive)")
    p.add_argument("--prune", action="store_true", help="remove images that vanished from the folder")
    p.add_argument("--rebuild", action="store_true", help="drop and re-embed these models' collections")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="where embedding runs (default: local)")
    p.add_argument("--ray-address", default=None, help="auto, ray://host:10001 (default: a local cluster on 127.0.0.1)")
    p.add_argument("--actors", type=int, default=1, help="Ray actors per model (default: 1)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each Ray actor reserves (default: 0)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="top-k hits per model for one or more query images")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="query image files")
    add_session_args(p)
    add_store_args(p)
    p.add_argument("--top-k", type=int, default=10, help="hits per model and query (default: 10)")
    p.add_argument("--exclude-self", action="store_true", help="leave the query image out of its own hits")
    p.add_argument("--json", action="store_true", help="print the hits as a JSON list instead of text")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("check", help="compare Milvus and Redis; non-zero exit on any difference")
    add_store_args(p)
    p.add_argument("--repair", action="store_true", help="remove half-written entries a crash left")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("redis-stop", help="stop the local Redis server a data directory started")
    add_experiment_arg(p)
    p.add_argument("--data-dir", default=None, help="the data folder (default: the experiment's, else data)")
    p.set_defaults(func=cmd_redis_stop)
