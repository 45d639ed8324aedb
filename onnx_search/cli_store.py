"""Store subcommands: ``ingest``, ``search``, ``check`` (Milvus + Redis)."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path


def default_namespace(name: str = "default") -> str:
    """``onnxsearch:<user>:<name>``: two users or experiments on one Redis/Milvus never collide."""
    user = re.sub(r"[^0-9A-Za-z_]", "_", getpass.getuser() or "user")
    return f"onnxsearch:{user}:{name}"


def prefix_for(namespace: str) -> str:
    """Milvus collection prefix from the Redis namespace (``:`` is not allowed in collection names)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", namespace)


def open_stores(args):
    from .catalog import Catalog
    from .ingest import Stores
    from .stores import connect_milvus, connect_redis
    from .vectors import IndexConfig, VectorStore

    ns = args.namespace or default_namespace()
    redis_client = connect_redis(args.redis_url, args.data_dir)
    milvus = connect_milvus(args.milvus_uri, args.data_dir, token=args.milvus_token)
    params = json.loads(args.index_params) if args.index_params else {}
    return Stores(
        Catalog(redis_client, ns),
        VectorStore(milvus),
        prefix_for(ns),
        IndexConfig(args.metric, args.index, params.get("build", {}), params.get("search", {})),
    )


def cmd_ingest(args) -> int:
    from .cli import _print_skipped, _runner_options, load_embedders
    from .ingest import ingest
    from .scan import DEFAULT_EXTENSIONS

    stores = open_stores(args)  # a store that is down fails here, before any model is loaded
    models = load_embedders(args.model or ["resnet50", "vgg16"], args.models_dir, _runner_options(args))
    report_dir = Path(args.data_dir) / "reports"
    r = ingest(
        args.folder,
        models,
        stores,
        batch_size=args.batch_size,
        workers=args.workers,
        extensions=args.extensions.split(",") if args.extensions else DEFAULT_EXTENSIONS,
        prune=args.prune,
        rebuild=args.rebuild,
        progress=not args.quiet,
        report_dir=report_dir,
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
    _print_skipped(r.skipped, report_dir / "skipped.json")
    return 0


def cmd_search(args) -> int:
    from .cli import _print_skipped, _runner_options, load_embedders
    from .search import search

    stores = open_stores(args)
    names = args.model or sorted(stores.catalog.models())
    if not names:
        print("nothing ingested in this namespace yet: run `onnx-search ingest` first")
        return 2
    models = load_embedders(names, args.models_dir, _runner_options(args))
    hits, failed = search([Path(p) for p in args.images], models, stores, args.top_k, args.exclude_self)
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], indent=1, ensure_ascii=False))
    else:
        for q in dict.fromkeys(h.query for h in hits):
            print(f"query {q}")
            for name in models:
                print(f"  {name} ({stores.index.metric}):")
                for h in (h for h in hits if h.query == q and h.model == name):
                    print(f"    {h.rank:>2}. cos {h.cosine:+.4f}  dist {h.distance:.4f}  [{h.label}] {h.path}")
    _print_skipped(failed)
    return 0 if not failed or hits else 2


def cmd_check(args) -> int:
    from .ingest import check

    rep = check(open_stores(args), repair=args.repair)
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


def _add_store_args(p) -> None:
    p.add_argument("--data-dir", default="data", help="embedded stores live here (default: data)")
    p.add_argument("--milvus-uri", default=None, help="Milvus server, e.g. http://host:19530 (default: Milvus Lite)")
    p.add_argument("--milvus-token", default=None, help="Milvus token or user:password")
    p.add_argument("--redis-url", default=None, help="redis:// or rediss:// URL (default: a local server)")
    p.add_argument("--namespace", default=None, help="Redis key prefix and Milvus collection prefix")
    p.add_argument("--metric", default="COSINE", choices=["COSINE", "IP", "L2"])
    p.add_argument("--index", default="FLAT", choices=["FLAT", "IVF_FLAT", "HNSW"])
    p.add_argument("--index-params", default=None, help='JSON: {"build": {"nlist": 64}, "search": {"nprobe": 8}}')


def add_commands(sub, add_runner_args) -> None:
    p = sub.add_parser("ingest", help="embed a folder into per-model Milvus collections + the Redis catalogue")
    p.add_argument("folder")
    add_runner_args(p)
    _add_store_args(p)
    p.add_argument("--extensions", default=None, help="comma list, e.g. jpg,png (case-insensitive)")
    p.add_argument("--prune", action="store_true", help="remove images that vanished from the folder")
    p.add_argument("--rebuild", action="store_true", help="drop and re-embed these models' collections")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="top-k hits per model for one or more query images")
    p.add_argument("images", nargs="+")
    add_runner_args(p)
    _add_store_args(p)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--exclude-self", action="store_true", help="leave the query image out of its own hits")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("check", help="compare Milvus and Redis; non-zero exit on any difference")
    _add_store_args(p)
    p.add_argument("--repair", action="store_true", help="remove half-written entries a crash left")
    p.set_defaults(func=cmd_check)
    add_experiment_commands(sub)


def cmd_run(args) -> int:
    from .experiment import run_experiment

    out = run_experiment(args.config, progress=not args.quiet)
    print(out.summary_md)
    if out.random_weights:
        print(
            f"WARNING: {', '.join(out.random_weights)} ran with RANDOM weights: results show the pipeline, "
            "not what the models learned. Put ImageNet weights in ~/.keras/models to compare real models."
        )
    print(f"results in {out.run_dir}: " + ", ".join(sorted(p.name for p in out.files.values())))
    return 0


def cmd_compare(args) -> int:
    from .experiment import recompare
    from .report import summary_markdown

    comparison = recompare(args.results)
    print(summary_markdown(comparison, [f"# {Path(args.results).name} (recomputed from saved results)"]))
    if args.output:
        Path(args.output).write_text(json.dumps(comparison, indent=1, ensure_ascii=False, sort_keys=True))
    return 0


def cmd_demo(args) -> int:
    from .synth import generate_labelled_set

    generate_labelled_set(args.images, per_class=args.per_class, size=160, seed=0)
    print(f"demo images in {args.images} (generated locally, labelled by folder)")
    return cmd_run(args)


def cmd_redis_stop(args) -> int:
    from .redis_server import LocalRedis

    server = LocalRedis(args.data_dir)
    if not server.running():
        print(f"no onnx-search Redis server is running for {args.data_dir}")
        return 0
    server.stop()
    print(f"stopped the Redis server of {args.data_dir} (its data stays in {server.dir})")
    return 0


def add_experiment_commands(sub) -> None:
    p = sub.add_parser("redis-stop", help="stop the local Redis server a data directory started")
    p.add_argument("--data-dir", default="data")
    p.set_defaults(func=cmd_redis_stop)

    p = sub.add_parser("run", help="run a YAML experiment end to end")
    p.add_argument("config")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="recompute the comparison from a run's saved results")
    p.add_argument("results", help="a run folder (or its results.json)")
    p.add_argument("--output", help="also write the comparison JSON here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="generate a labelled image set and run configs/demo.yaml on it")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--images", default="demo/images")
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
