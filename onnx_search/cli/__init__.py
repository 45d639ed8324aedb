"""Command line: ``onnx-search COMMAND``; ``onnx-search --help`` lists every command, each with its one-line help.

Each area registers its commands on one parser (models.py, stores.py, experiments.py); the only error caught
here is OnnxSearchError, printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import OnnxSearchError
from . import experiments, judgments, models, serve, stores

DESCRIPTION = (
    "Compare image-embedding models (ONNX, run by onnxruntime) on your own images, as a real image search "
    "uses them: vectors in Milvus, the catalogue in Redis; quality with intervals, speed, memory and a verdict."
)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="onnx-search", description=DESCRIPTION)
    ap.add_argument("-v", "--verbose", action="store_true", help="log what each step does (INFO level)")
    sub = ap.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    for area in (models, stores, experiments, judgments, serve):
        area.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except OnnxSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
