"""Experiment commands: ``init``, ``run``, ``compare``, ``demo``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def cmd_run(args) -> int:
    from ..experiment.run import run_experiment

    if args.keep_redis:  # read where the run opens its stores
        from ..store.local_redis import KEEP_ENV

        os.environ[KEEP_ENV] = "1"
    out = run_experiment(
        args.config,
        progress=not args.quiet,
        augment=args.augment,
        rebuild=args.rebuild,
        rebuild_changed=getattr(args, "rebuild_changed", False),
        models_dir=args.models_dir,
    )
    print(out.console or out.summary_md)
    if out.random_weights:
        print(
            f"WARNING: {', '.join(out.random_weights)} ran with RANDOM weights: results show the pipeline, "
            "not what the models learned. Put ImageNet weights in place to compare real models (README, Models)."
        )
    print(f"results in {out.run_dir}: " + ", ".join(sorted(p.name for p in out.files.values())))
    return 0


def cmd_compare(args) -> int:
    from ..experiment.report.summary import header_lines, summary_markdown
    from ..experiment.results import load_results, recompare

    qrels_file = getattr(args, "qrels", None)
    if qrels_file:
        from ..experiment.qrels import read_qrels_ids

        comparison = recompare(args.results, read_qrels_ids(qrels_file), Path(qrels_file).resolve())
        title = f"# {Path(args.results).name} re-scored on {Path(qrels_file).name} (from saved results)"
    else:
        comparison = recompare(args.results)
        title = f"# {Path(args.results).name} (recomputed from saved results)"
    # the run's own header under this title: random weights, the machine, its warnings; its verdict's CPU clause
    results = load_results(args.results)
    if qrels_file:  # the agreement of the judges behind these qrels, not the run's own
        from ..experiment.judges import judges_record

        results.pop("judges", None)
        if (judges := judges_record(qrels_file)) is not None:
            results["judges"] = comparison["summary"]["ground_truth"]["judges"] = judges
    run_dir = Path(args.results).parent if Path(args.results).is_file() else Path(args.results)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    header = [title, *header_lines(results["experiment"], results.get("random_weights") or [], manifest, results)[1:]]
    print(summary_markdown(comparison, header, results.get("dataset_root"), manifest.get("sweep"), None, results,
                           manifest))  # fmt: skip
    output = args.output or (rescored_path(args.results, qrels_file) if qrels_file else None)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(output).with_name(f".{Path(output).name}.partial")
        tmp.write_text(json.dumps(comparison, indent=1, ensure_ascii=False, sort_keys=True))
        os.replace(tmp, output)
        print(f"wrote {output}")
    return 0


def rescored_path(run: str | Path, qrels_file: str | Path) -> Path:
    """Where ``compare RUN --qrels FILE`` writes by default: RUN/comparison.<FILE's stem>.json, beside the run's
    own comparison.json, which it never replaces."""
    d = Path(run).parent if Path(run).is_file() else Path(run)
    return d / f"comparison.{Path(qrels_file).stem}.json"


def cmd_report(args) -> int:
    from ..experiment.report.html import write_html_report
    from ..experiment.results import load_results

    dirs = [Path(d) for d in args.runs]
    for d in dirs:
        load_results(d)  # refuses a folder that holds no complete run, with a clear message
    out = Path(args.output) if args.output else (dirs[0] / "report.html" if len(dirs) == 1 else Path("report.html"))
    out.parent.mkdir(parents=True, exist_ok=True)  # --output into a folder not made yet, as compare does
    write_html_report(dirs, out, args.reference)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(dirs)} run{'s' if len(dirs) > 1 else ''})")
    return 0


def cmd_demo(args) -> int:
    from ..synth import generate_demo_set

    photos = generate_demo_set(args.images, per_class=args.per_class)
    print(
        f"demo images in {args.images} (generated locally, labelled by folder; {photos} real photos from "
        "scikit-image and Matplotlib in photos/)"
    )
    args.rebuild_changed = True  # the demo's data is its own: a model that really changed is re-embedded, said so
    return cmd_run(args)


def cmd_init(args) -> int:
    from ..experiment.init import describe_folder, detects_words, init_experiment

    out = init_experiment(args.folder, args.output, args.force, progress=not args.quiet)
    s = out.survey
    print(f"{s.root}:")
    for line in describe_folder(s):
        print(f"  {line}")
    print(f"  {s.labels.reason}")
    for note in out.notes:
        print(f"NOTE: {note}")
    print(f"wrote {out.path}: {out.queries} queries, {detects_words(out.detectable)} (its comments say how)")
    print("next:")
    print(f"  onnx-search run {out.path}      # convert, ingest, query, compare: results in runs/")
    print(f"  onnx-search serve {out.path}    # browse, compare and judge the results in the explorer")
    return 0


def register(sub) -> None:
    p = sub.add_parser("init", help="survey an image folder and write a commented experiment file for it")
    p.add_argument("folder", help="the folder of images")
    p.add_argument("--output", "-o", help="the experiment file to write (default: ./<folder name>.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite the experiment file if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run a YAML experiment end to end")
    p.add_argument("config", help="the experiment file (YAML)")
    _add_run_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "compare",
        help="recompute the comparison from a run's saved results (no store is opened: works while serve runs)",
    )
    p.add_argument("results", help="a run folder (or its results.json)")
    p.add_argument(
        "--qrels",
        metavar="FILE",
        help="re-score the run on these judgments (`query_id 0 doc_id relevance`, ids or paths relative to the "
        "file) from its saved lists, kept judged_depth deep; writes RUN_DIR/comparison.<FILE stem>.json unless "
        "--output names another file (the run's comparison.json is left as it was)",
    )
    p.add_argument("--output", help="also write the comparison JSON here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "report", help="(re)build the single-file report.html of one run, or compare several on one page"
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (runs/<experiment>); several: one page")
    p.add_argument("--output", help="where to write it (default: RUN_DIR/report.html, or ./report.html for several)")
    p.add_argument(
        "--reference",
        metavar="MODEL",
        help="several runs: measure each model's overlap@k against this model "
        "(default: the first model of the first run)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="generate a labelled image set and run configs/demo.yaml on it")
    p.add_argument("--config", default="configs/demo.yaml", help="the experiment file (default: configs/demo.yaml)")
    p.add_argument("--images", default="demo/images", help="where the images are generated (default: demo/images)")
    p.add_argument("--per-class", type=int, default=8, help="images generated per class (default: 8)")
    _add_run_args(p)
    p.set_defaults(func=cmd_demo)


def _add_run_args(p) -> None:
    """Flags of every command that runs an experiment (run, demo)."""
    p.add_argument("--augment", type=int, metavar="N", help="also query with perturbed copies of N sampled images")
    p.add_argument("--rebuild", action="store_true", help="re-embed the models whose file changed since ingest")
    p.add_argument("--models-dir", default=None, help="where converted models live (default: the config's models_dir)")
    p.add_argument("--keep-redis", action="store_true", help="leave the embedded redis-server running at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
