"""``make bench``: side-by-side, interleaved measurements written as JSON under
bench/results/<machine>/ (embed.json, keras.json, ...), each with the hardware record.

Every ratio compares variants measured in the same process, alternating, after warm-up, so the machine's
slow swings hit both sides alike; each figure is the median of several passes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .embed import MODELS, bench_embed, parse_sets
from .matrix import bench_matrix, matrix_plot
from .results import WORK, default_out, write_result
from .store import bench_store


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models-dir", default="models", type=Path)
    ap.add_argument("--out", default=default_out(), type=Path, help="results folder (default: %(default)s)")
    ap.add_argument(
        "--work", default=None, type=Path, help=f"scratch folder (default: {WORK}, or OUT/work with another --out)"
    )
    ap.add_argument("--models", default="resnet50,vgg16")
    ap.add_argument(
        "--matrix-models",
        default="",
        help="models of the variant matrix (default: --models); make bench adds a trained CNN and a transformer",
    )
    ap.add_argument("--only", choices=["embed", "keras", "store", "matrix", "scale", "rss"], default=None)
    ap.add_argument("--embed-models", default=",".join(MODELS), help="models of the end-to-end figure (embed.json)")
    ap.add_argument("--embed-sets", default="", help="its JPEG sets, e.g. 640x480:192,4000x3000:48 (the default)")
    ap.add_argument("--variants", default="fp32,int8,fp16,optimized", help="variants in the speed matrix")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batches", default="1,8,32", help="batch sizes of the embed and matrix figures")
    ap.add_argument("--store-images", type=int, default=1500, help="vectors in the store benchmark")
    ap.add_argument("--store-queries", type=int, default=50)
    ap.add_argument("--scale-sizes", default="1000,10000,100000", help="collection sizes for the scale figures")
    ap.add_argument("--scale-model", default="efficientnet-lite0", help="the model whose embeddings the scale uses")
    ap.add_argument("--scale-real", type=int, default=10_000, help="real images embedded (kept under bench/work)")
    ap.add_argument("--rss-sizes", default="1000,10000", help="two folder sizes whose ingest peak RSS is compared")
    ap.add_argument("--rss-models", default="2,4,6", help="model counts whose run peak RSS is compared")
    ap.add_argument("--photos", type=int, default=96, help="640x480 JPEGs for the end-to-end embedding figure")
    ap.add_argument("--agreement-images", default="", help="a folder: each variant's top-10 agreement with FP32 on it")
    args = ap.parse_args(argv)
    args.matrix_models = args.matrix_models or args.models
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or (WORK if args.out == default_out() else args.out / "work")
    batches = tuple(int(b) for b in args.batches.split(","))
    if args.only in (None, "embed"):
        sets, names = parse_sets(args.embed_sets) or None, args.embed_models.split(",")
        res = bench_embed(args.models_dir, work / "embed", reps=args.reps, sets=sets, models=names)
        write_result(args.out, "embed.json", res)
    if args.only in (None, "keras"):  # ORT vs Keras per batch size (TensorFlow builds each Keras model)
        from .keras_speed import bench_keras

        res = bench_keras(args.models_dir, args.models.split(","), batches, reps=args.reps)
        write_result(args.out, "keras.json", res)
    if args.only in (None, "matrix"):
        res = bench_matrix(
            args.models_dir,
            args.matrix_models.split(","),
            args.variants.split(","),
            work,
            reps=args.reps,
            photos=args.photos,
            batches=batches,
            agreement_images=_agreement_images(args.agreement_images),
        )
        write_result(args.out, "matrix.json", res)
        matrix_plot(res, args.out / "matrix.png")
        print(
            f"speed-up over fp32 at batch {max(batches)}:",
            {
                m: {v: res[m][v]["speedup_over_fp32"] for v in args.variants.split(",")}
                for m in args.matrix_models.split(",")
            },
            flush=True,
        )
    if args.only in (None, "scale"):
        from .scale import bench_scale, scale_plot

        sizes = [int(n) for n in args.scale_sizes.split(",")]
        rss = [int(n) for n in args.rss_sizes.split(",")]
        res = bench_scale(
            args.models_dir,
            work / "scale",
            sizes=sizes,
            rss_sizes=rss,
            real_model=args.scale_model,
            real_images=args.scale_real,
        )
        write_result(args.out, "scale.json", res)
        scale_plot(res, args.out / "scale.png")
    if args.only in (None, "rss"):
        from .run_rss import bench_run_rss

        counts = [int(n) for n in args.rss_models.split(",")]
        res = bench_run_rss(args.models_dir, work / "rss", names=args.models.split(","), counts=counts)
        write_result(args.out, "run_rss.json", res)
    if args.only in (None, "store"):
        res = bench_store(args.models_dir, args.models.split(",")[0], args.store_images, args.store_queries, work=work)
        write_result(args.out, "store.json", res)
    return 0


def _agreement_images(folder: str) -> list[Path] | None:
    """The images each variant's top-10 agreement with FP32 is measured on (None when the folder is missing)."""
    from ..embed.scan import scan_folder

    return scan_folder(folder).files or None if folder and Path(folder).is_dir() else None


if __name__ == "__main__":
    raise SystemExit(main())
