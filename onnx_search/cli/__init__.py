"""Command line: ``onnx-search COMMAND``; ``onnx-search --help`` lists every command, each with its one-line help.

Each area registers its commands on one parser (models.py, stores.py, experiments.py); the only error caught
here is OnnxSearchError, printed as one line with exit status 2 (and a stdout closed early by its reader, status 1).
"""

from __future__ import annotations

import argparse
import logging
import os
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
    """Run one command. A reader that closes stdout early (``onnx-search ... | head -1``) ends it quietly with
    status 1, as the Python docs advise for SIGPIPE: stdout goes to devnull so the exit flush cannot fail again."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here (also after --help), not as a traceback at exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
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
