"""Command line: ``onnx-search convert | embed | ingest | search | check | run | compare``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .metadata import ModelFileError
from .zoo import DEFAULT_MODELS, UnknownModelError

log = logging.getLogger("onnx_search")


class UserError(RuntimeError):
    """An error whose message tells the user what to do; printed without a traceback."""


def _runner_options(args):
    from .runner import RunnerOptions

    return RunnerOptions(providers=args.providers.split(","), strict=args.strict, intra_op_threads=args.threads)


def load_embedders(names: list[str], models_dir: str, options) -> dict:
    """One OnnxEmbedder per model name or .onnx path, keyed by the model's name."""
    from .runner import OnnxEmbedder, resolve_model_path

    out = {}
    for n in names:
        m = OnnxEmbedder(resolve_model_path(n, models_dir), options)
        out[m.name] = m
    return out


def cmd_convert(args) -> int:
    from .convert import annotate, convert_model

    if args.annotate:
        meta = annotate(args.annotate, args.like or "resnet50")
        print(f"annotated {args.annotate} with the recipe of {args.like}: {json.dumps(meta)}")
        return 0
    for name in args.model or list(DEFAULT_MODELS):
        r = convert_model(name, args.models_dir, weights=args.weights, seed=args.seed, force=args.force)
        if r.skipped:
            print(f"{r.name}: {r.path} is up to date ({r.metadata['weights']}); --force converts again")
        else:
            p = r.metadata["parity"]
            print(
                f"{r.name}: wrote {r.path} in {r.seconds:.1f}s, weights {r.metadata['weights']}, "
                f"parity max|diff| {p['max_abs_diff']:.2e} (tolerance {p['tolerance']:g}), "
                f"min cosine {p['min_cosine']:.7f}"
            )
        if r.metadata["weights"].startswith("random"):
            print(f"  NOTE: {r.name} has RANDOM weights (seed {args.seed}); its vectors carry no learned meaning.")
    return 0


def cmd_embed(args) -> int:
    from .embed import embed_folder

    models = load_embedders(args.model or list(DEFAULT_MODELS), args.models_dir, _runner_options(args))
    s = embed_folder(
        args.folder, models, args.output, batch_size=args.batch_size, workers=args.workers, progress=not args.quiet
    )
    print(f"embedded {s.embedded} images into {s.output} ({s.times['images_per_s']} img/s)")
    for name, prov in s.providers.items():
        print(f"  {name}: providers {prov}")
    _print_skipped(s.skipped, s.output / "skipped.json")
    return 0


def _print_skipped(skipped, report: Path | None = None) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} files" + (f" (listed in {report})" if report else "") + ":")
    for path, reason in skipped[:20]:
        print(f"  {path}: {reason}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more")


def _add_runner_args(p) -> None:
    p.add_argument("--model", action="append", help="registry name or .onnx path (repeatable)")
    p.add_argument("--models-dir", default="models", help="where converted models live (default: models)")
    p.add_argument("--providers", default="auto", help="comma list: auto, tensorrt, cuda, cpu (default: auto)")
    p.add_argument("--strict", action="store_true", help="fail when a requested provider does not load")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: one per core)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: cores, max 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="onnx-search", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="Keras application -> models/<name>.onnx with a parity check")
    p.add_argument("--model", action="append", help=f"registry name (repeatable; default {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--models-dir", default="models")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet, random, auto (imagenet if it can be had, else random), or a .h5 path",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --weights random")
    p.add_argument("--force", action="store_true", help="convert even when the file is up to date")
    p.add_argument("--annotate", metavar="FILE", help="add the recipe of --like MODEL to a foreign .onnx file")
    p.add_argument("--like", metavar="MODEL")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("embed", help="embed a folder: <output>/<model>.npy + index.json + skipped.json")
    p.add_argument("folder")
    p.add_argument("--output", required=True)
    _add_runner_args(p)
    p.set_defaults(func=cmd_embed)

    from . import cli_store

    cli_store.add_commands(sub, _add_runner_args)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from .errors import USER_ERRORS

    try:
        return int(args.func(args) or 0)
    except (UserError, UnknownModelError, ModelFileError, *USER_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
