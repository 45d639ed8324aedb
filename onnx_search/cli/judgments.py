"""Judgment commands: ``judgments export`` (the explorer's judgments to a TREC qrels file) and ``judgments import``."""

from __future__ import annotations

from pathlib import Path

from ..embed.scan import DEFAULT_EXTENSIONS
from ..errors import ConfigError
from ..experiment.qrels import (
    file_lock,
    judgments_path,
    merge_qrels,
    read_qrels,
    read_qrels_ids,
    write_qrels,
)
from ..ids import image_id


def _paths_under(folder: Path) -> dict[str, str]:
    """image id -> resolved path of every image file under ``folder`` (ids are hashes of resolved paths)."""
    if not folder.is_dir():
        raise ConfigError(f"--paths-under {folder}: not a folder; give the dataset root the experiment catalogued")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in DEFAULT_EXTENSIONS}
    out = {}
    for p in folder.resolve().rglob("*"):
        if p.suffix.lower() in exts and p.is_file() and not any(c.isspace() for c in str(p)):
            out[str(image_id(p))] = str(p)
    return out


def _where(args) -> tuple[Path, str]:
    """(data folder, experiment name): from the experiment file or run folder ``--experiment`` names, else the
    name with ``--data-dir``."""
    from ..experiment.locate import is_experiment_file, is_run_dir, locate

    value = args.experiment
    if is_experiment_file(value) or is_run_dir(value):
        if args.data_dir is not None:
            raise ConfigError("--experiment names an experiment file or run folder, which knows its data folder: "
                              "drop --data-dir")  # fmt: skip
        loc = locate(value)
        return Path(loc.settings.data_dir), loc.experiment
    if Path(value).suffix.lower() in (".yaml", ".yml") or "/" in value:
        raise ConfigError(f"--experiment {value}: no such experiment file or run folder")
    if args.data_dir is None:
        raise ConfigError(
            f"--experiment {value} is a name: give its --data-dir too, or pass the experiment file or run folder"
        )
    return Path(args.data_dir), value


def cmd_export(args) -> int:
    data_dir, experiment = _where(args)
    src = judgments_path(data_dir, experiment)
    if not src.is_file():
        raise ConfigError(
            f"no judgments for experiment {experiment} ({src} does not exist); judge in the explorer first, "
            "or check --experiment (and --data-dir)"
        )
    qrels = read_qrels(src)
    kept = 0
    if args.paths_under:
        paths = _paths_under(Path(args.paths_under))
        mapped = {paths.get(q, q): {paths.get(d, d): r for d, r in docs.items()} for q, docs in qrels.items()}
        kept = sum(q not in paths for q in qrels) + sum(d not in paths for docs in qrels.values() for d in docs)
        qrels = mapped
    write_qrels(args.out, qrels)
    n = sum(len(d) for d in qrels.values())
    note = f" ({kept} ids not found under {args.paths_under} kept as ids)" if kept else ""
    print(f"wrote {n} judgments of {len(qrels)} queries to {args.out}{note}")
    return 0


def cmd_import(args) -> int:
    new = read_qrels_ids(args.file)  # every line checked (and every path found) before anything is written
    dest = judgments_path(*_where(args))
    with file_lock(dest):
        old = read_qrels(dest) if dest.is_file() else {}
        changed = sum(1 for q, docs in new.items() for d, r in docs.items() if d in old.get(q, {}) and old[q][d] != r)
        added = sum(1 for q, docs in new.items() for d in docs if d not in old.get(q, {}))
        write_qrels(dest, merge_qrels(old, new))
    print(f"imported {sum(len(d) for d in new.values())} judgments into {dest}: {added} new, {changed} changed")
    return 0


def _where_args(p) -> None:
    p.add_argument(
        "-e",
        "--experiment",
        required=True,
        metavar="FILE_OR_RUN_DIR_OR_NAME",
        help="the experiment file (YAML) or its run folder; or its name, with --data-dir",
    )
    p.add_argument("--data-dir", default=None, help="the experiment's data folder, when --experiment is a name")


def register(sub) -> None:
    p = sub.add_parser("judgments", help="export or import relevance judgments (TREC qrels)")
    jsub = p.add_subparsers(dest="judgments_command", required=True)
    e = jsub.add_parser("export", help="write the explorer's judgments of an experiment to a TREC qrels file")
    e.add_argument("out", help="the qrels file to write (query_id 0 doc_id relevance)")
    _where_args(e)
    e.add_argument(
        "--paths-under",
        default=None,
        help="write image paths instead of ids, for the images under this folder (the dataset root)",
    )
    e.set_defaults(func=cmd_export)
    i = jsub.add_parser("import", help="merge a TREC qrels file (ids or paths) into an experiment's judgments")
    i.add_argument("file", type=Path, help="qrels file; paths are taken from its folder")
    _where_args(i)
    i.set_defaults(func=cmd_import)
