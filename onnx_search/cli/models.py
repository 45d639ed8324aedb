"""``convert`` and ``embed``: making .onnx files, and a folder of images -> .npy vectors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..models.zoo import DEFAULT_MODELS
from .common import add_session_args, load_sessions, print_skipped


def cmd_convert(args) -> int:
    from ..models.convert import annotate
    from ..models.isolated import convert_isolated

    if args.annotate:
        like = args.like or "resnet50"
        meta = annotate(args.annotate, like)
        print(f"annotated {args.annotate} with the recipe of {like}: {json.dumps(meta)}")
        return 0
    if args.source:
        return _convert_user(args)
    weights = args.weights or "imagenet"
    for name in args.model or list(DEFAULT_MODELS):
        child = convert_isolated(name, args.models_dir, weights=weights, seed=args.seed, force=args.force)
        _report_conversion(child.result, args, child.peak_rss_mb)
        for variant in args.variant or []:
            _report_variant(name, variant, args)
    return 0


def _convert_user(args) -> int:
    """The user's own model (torch factory, Keras file or bare .onnx) with the recipe given by --recipe."""
    from ..errors import ConfigError
    from ..models.isolated import convert_isolated
    from ..models.user import user_spec

    if not args.model or len(args.model) != 1:
        raise ConfigError("--source needs exactly one --model NAME (the name of your model)")
    if args.variant:
        raise ConfigError("--variant is for registry models; convert a variant of your model yourself")
    if args.source != "torch" and args.weights:
        raise ConfigError(
            f"--weights is the state dict of a --source torch model; a {args.source} model's weights are in its "
            "--file: drop --weights"
        )
    if args.source != "torch" and args.reads:
        raise ConfigError("--reads names the files a --source torch factory reads; drop it")
    recipe = _recipe_arg(args.recipe) if args.recipe else None
    user = {"source": args.source, "recipe": recipe, "factory": args.factory, "file": args.file, "layer": args.layer,
            "reads": [str(Path(r).resolve()) for r in args.reads or []]}  # fmt: skip
    user_spec(args.model[0], **user)  # one line about the name, paths and recipe before a child starts
    made = [d for d in (Path(args.models_dir), *Path(args.models_dir).parents) if not d.exists()]
    try:
        child = convert_isolated(
            args.model[0], args.models_dir, weights=args.weights or "auto", seed=args.seed, force=args.force,
            user=user,
        )  # fmt: skip
    except BaseException:  # a failed conversion leaves no folder it made either
        for d in made:  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    _report_conversion(child.result, args, child.peak_rss_mb)
    return 0


def _recipe_arg(value: str) -> object:
    """--recipe as a file (.json/.yaml/.yml, or any existing file) or inline YAML/JSON text."""
    import yaml

    from ..errors import ConfigError

    path = Path(value).expanduser()
    looks_like_file = path.suffix.lower() in (".json", ".yaml", ".yml") and not value.lstrip().startswith("{")
    if looks_like_file and not path.is_file():
        raise ConfigError(f"--recipe: file {value} does not exist; give an existing file or the recipe inline")
    try:
        text = path.read_text() if path.is_file() else value
        return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--recipe: cannot read {value} ({exc}); give a YAML/JSON text file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--recipe is neither a file nor YAML/JSON: {str(exc).splitlines()[0]}") from None


def _report_variant(name: str, variant: str, args) -> None:
    from ..models.isolated import variant_isolated
    from ..models.variants import calibration_files

    files = calibration_files(args.calibrate) if variant == "int8" and args.calibrate else None
    root = args.calibrate if files else None  # the sample is ranked by paths relative to the folder
    child = variant_isolated(name, variant, args.models_dir, calibration=files, seed=args.seed, force=args.force,
                             calibration_root=root, target=args.target)  # fmt: skip
    r = child.result
    if r.skipped:
        print(f"{r.name}: {r.path} is up to date (parent {r.metadata['parent']['sha256'][:12]})")
        return
    a = r.metadata["parent_agreement"]
    print(
        f"{r.name}: wrote {r.path} in {r.seconds:.1f}s ({r.path.stat().st_size / 1e6:.1f} MB), cosine to its parent "
        f"min {a['min_cosine']:.5f} mean {a['mean_cosine']:.5f}; peak memory {child.peak_rss_mb:,.0f} MB"
    )
    if rec := r.metadata.get("int8_recipe"):
        print(f"  {_recipe_line(rec)}")


def _recipe_line(rec: dict) -> str:
    """The INT8 recipe chosen: for which ISA, on which CPU, its agreement with FP32 against the target."""
    a = rec["agreement"]
    figure = (f"mean cosine {a['mean_cosine']:.4f} (target {a['target']}) on {a['images']} {a['where']}"
              if a["measured"] else "agreement not measured")  # fmt: skip
    speed = f", x{rec['speedup']:.2f} FP32's speed" if rec.get("speedup") else ""
    head = f"INT8 recipe {rec['recipe']} for {rec['target_isa']}, chosen on {rec['chosen_on']['cpu_model']} " \
           f"({rec['chosen_on']['isa_summary']}): {figure}{speed}"  # fmt: skip
    return head if rec["reached"] else f"{head}. WARNING: {rec['reason']}"


def _report_conversion(r, args, peak_mb: float) -> None:
    if r.skipped:
        print(f"{r.name}: {r.path} is up to date ({r.metadata['weights']}); --force converts again")
    else:
        p = r.metadata["parity"]
        print(
            f"{r.name}: wrote {r.path} in {r.seconds:.1f}s, weights {r.metadata['weights']}, "
            f"parity max|diff| {p['max_abs_diff']:.2e} (tolerance {p['tolerance']:g}), "
            f"min cosine {p['min_cosine']:.7f}; peak memory {peak_mb:,.0f} MB (a child process)"
        )
    if r.metadata["weights"].startswith("random"):
        print(f"  NOTE: {r.name} has RANDOM weights (seed {args.seed}); its vectors carry no learned meaning.")


def cmd_embed(args) -> int:
    from ..embed.files import embed_folder

    models = load_sessions(args.model, args)
    s = embed_folder(
        args.folder, models, args.output, batch_size=args.batch_size, workers=args.workers, progress=not args.quiet
    )
    print(f"embedded {s.embedded} images into {s.output} ({s.times['images_per_s']} img/s)")
    for name, prov in s.providers.items():
        print(f"  {name}: providers {prov}")
    print_skipped(s.skipped, s.output / "skipped.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser("convert", help="registry model -> models/<name>.onnx with a parity check")
    p.add_argument("--model", action="append", help=f"registry name (repeatable; default {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--models-dir", default="models", help="where the .onnx files are written (default: models)")
    p.add_argument(
        "--weights",
        help="registry models: imagenet (default), random, auto (imagenet if it can be had, else random) or a "
        "weights file; --source torch: the state dict (.pth/.pt/.safetensors) or random (default: the factory's "
        "own weights, seeded); not for --source keras/onnx (their weights are in --file)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --weights random")
    p.add_argument("--force", action="store_true", help="convert even when the file is up to date")
    p.add_argument(
        "--variant",
        action="append",
        choices=["int8", "fp16", "optimized"],
        help="also write models/<name>.<variant>.onnx (int8: <name>.int8.<inputs>.onnx, named by its calibration set)",
    )
    p.add_argument("--calibrate", metavar="DIR", help="images to calibrate int8 on (a seeded sample of up to 64)")
    p.add_argument(
        "--target",
        choices=["auto", "avx2", "vnni"],
        default="auto",
        help="int8: the CPU the file will run on, whose kernels decide the recipe: auto (this CPU), avx2 (x86 "
        "without VNNI) or vnni; for another CPU than this one, agreement is measured only where it holds",
    )
    p.add_argument(
        "--annotate", metavar="FILE", help="add the recipe of --like MODEL (default resnet50) to a foreign .onnx"
    )
    p.add_argument("--like", metavar="MODEL", help="with --annotate: the registry model whose recipe to add")
    g = p.add_argument_group("your own model (one --model NAME)")
    g.add_argument("--source", choices=["torch", "keras", "onnx"], help="convert your own model, not a registry one")
    g.add_argument(
        "--factory", metavar="PKG.MODULE:CALLABLE", help="torch: builds the module (imported from the current folder)"
    )
    g.add_argument("--file", help="keras: the .keras or .h5 model file; onnx: the .onnx model file (not for torch)")
    g.add_argument(
        "--reads",
        action="append",
        metavar="FILE",
        help="torch: a file the factory reads itself (a checkpoint; repeatable): hashed, so a change converts again",
    )
    g.add_argument("--layer", help="the layer whose output is the vector (default: the model's output)")
    g.add_argument("--recipe", help="the recipe as YAML/JSON text or a file: {input_size: 224, preprocess: ...}")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("embed", help="embed a folder: <output>/<model>.npy + index.json + skipped.json")
    p.add_argument("folder", help="the folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="the folder to write <model>.npy, index.json and skipped.json to")
    add_session_args(p)
    p.set_defaults(func=cmd_embed)
