"""Judgment commands over an experiment's judgments (``DATA_DIR/judgments/EXPERIMENT.qrels`` and its judges
sidecar): ``export`` (to a TREC qrels file), ``import`` (checked as the explorer checks a mark), ``agreement``
(Cohen's kappa between judges) and ``remove`` (by query, judge or all)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..experiment.judges import agreement, format_agreement
from ..experiment.qrels import (
    MAX_GRADE,
    JudgmentStore,
    check_judge,
    judgment_error,
    judgments_path,
    write_qrels,
)
from ..ids import image_id
from ..textfile import read_user_text

MAX_ERRORS = 50  # error lines printed for one file (the count of the rest follows)


@dataclass
class Where:
    """An experiment's judgments file, and what a check of new judgments needs (None when not known)."""

    data_dir: Path
    experiment: str
    located: object | None = None  # experiment.locate.Located, when -e named a file or run folder
    max_grade: int = MAX_GRADE

    @property
    def path(self) -> Path:
        return judgments_path(self.data_dir, self.experiment)

    @property
    def root(self) -> Path | None:
        loc = self.located
        return Path(loc.dataset_root).expanduser().resolve() if loc is not None and loc.dataset_root else None


def _max_grade(loc) -> int:
    """The experiment's ``judging.max_grade`` (from its file; a run folder whose file is gone: the widest scale)."""
    from ..experiment.loader import load_experiment

    if loc.config_file is None or not Path(loc.config_file).is_file():
        return MAX_GRADE
    return load_experiment(loc.config_file, check_files=False).judging.max_grade


def _where(args, need_experiment: bool = False) -> Where:
    """The data folder and experiment: from the experiment file or run folder ``--experiment`` names, else the
    name with ``--data-dir`` (``export`` only: the others check against the experiment itself)."""
    from ..experiment.locate import is_experiment_file, is_run_dir, locate

    value = args.experiment
    if is_experiment_file(value) or is_run_dir(value):
        if getattr(args, "data_dir", None) is not None:
            raise ConfigError("--experiment names an experiment file or run folder, which knows its data folder: "
                              "drop --data-dir")  # fmt: skip
        loc = locate(value)
        return Where(Path(loc.settings.data_dir), loc.experiment, loc, _max_grade(loc))
    if Path(value).suffix.lower() in (".yaml", ".yml") or "/" in value:
        raise ConfigError(f"--experiment {value}: no such experiment file or run folder")
    if need_experiment:
        raise ConfigError(
            f"--experiment {value} is a name: this command checks against the experiment itself, so pass its "
            "experiment file (e.g. -e configs/demo.yaml) or its run folder (e.g. -e demo/runs/demo)"
        )
    if getattr(args, "data_dir", None) is None:
        raise ConfigError(
            f"--experiment {value} is a name: give its --data-dir too, or pass the experiment file or run folder"
        )
    return Where(Path(args.data_dir), value)


def _store(where: Where) -> JudgmentStore:
    if not where.path.is_file():
        raise ConfigError(
            f"no judgments for experiment {where.experiment} ({where.path} does not exist); judge in the explorer "
            "first, or check --experiment"
        )
    return JudgmentStore(where.path, max_grade=where.max_grade)


def _catalogued(where: Where) -> set[str]:
    """Every image id in the experiment's catalogue (Redis only: Milvus is not opened, so a running explorer is
    no obstacle)."""
    from ..store.catalog import Catalog
    from ..store.local_redis import LocalRedis, connect_redis

    settings = where.located.settings
    if not settings.redis_url and not (Path(settings.data_dir) / "redis").is_dir():
        raise ConfigError(
            f"experiment {where.experiment} has no catalogue in {settings.data_dir}: run it first "
            "(`onnx-search run EXPERIMENT.yaml`)"
        )
    local = None if settings.redis_url else LocalRedis(settings.data_dir)
    client = local.start() if local else connect_redis(settings.redis_url, settings.data_dir)
    try:
        ids = Catalog(client, settings.namespace).ids()
    finally:
        if local is not None:
            local.release()
    if not ids:
        raise ConfigError(f"experiment {where.experiment}'s catalogue is empty: run it first")
    return {str(i) for i in ids}


def _paths_under(folder: Path) -> dict[str, str]:
    """image id -> path relative to ``folder`` of every image file under it (ids are hashes of resolved paths)."""
    from ..embed.scan import DEFAULT_EXTENSIONS

    if not folder.is_dir():
        raise ConfigError(f"--paths-under {folder}: not a folder; give the dataset root the experiment catalogued")
    root = folder.resolve()
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in DEFAULT_EXTENSIONS}
    out = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in exts and p.is_file() and not any(c.isspace() for c in str(p)):
            out[str(image_id(p))] = str(p.relative_to(root))
    return out


def cmd_export(args) -> int:
    where = _where(args)
    store = _store(where)
    if args.judge is not None:
        judge = check_judge(args.judge)
        qrels: dict[str, dict[str, int]] = {}
        for (q, d), js in store.marks().items():
            if judge in js:
                qrels.setdefault(q, {})[d] = js[judge]
        if not qrels:
            raise ConfigError(f"judge {judge} has no marks in {where.path}; judges: {', '.join(store.judges())}")
    else:
        qrels = store.qrels()
    kept = 0
    if args.paths_under:
        paths = _paths_under(Path(args.paths_under))
        mapped = {paths.get(q, q): {paths.get(d, d): r for d, r in docs.items()} for q, docs in qrels.items()}
        kept = sum(q not in paths for q in qrels) + sum(d not in paths for docs in qrels.values() for d in docs)
        qrels = mapped
    write_qrels(args.out, qrels)
    n = sum(len(d) for d in qrels.values())
    note = f" ({kept} ids not found under {args.paths_under} kept as ids)" if kept else ""
    who = f" of judge {args.judge}" if args.judge else " (the judges' consensus)"
    print(f"wrote {n} judgments{who} of {len(qrels)} queries to {args.out}{note}")
    return 0


def check_import(
    text: str, source: Path, root: Path | None, catalogued: set[str], max_grade: int, base: Path | None = None
) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Every line of a qrels file checked as the explorer checks a mark: (items, errors). An item is
    ``(query_id, doc_id, grade)``; an error is ``file:line: what is wrong``. A query or doc is an image id in
    the catalogue, or the path of a catalogued image under ``root`` (the dataset root; a relative path is taken
    from ``base``, default ``root``); the grade is 0..max_grade; a query is not judged against itself; a pair is
    graded once."""
    base = base or root

    def to_id(value: str) -> tuple[str | None, str | None]:
        if value.isdigit():
            return (value, None) if value in catalogued else (None, f"image id {value} is not in the catalogue")
        if root is None or base is None:
            return None, f"{value} is a path, but the dataset root is not known: give image ids"
        p = Path(value).expanduser()
        p = (p if p.is_absolute() else base / p).resolve()
        if not p.is_relative_to(root):
            return None, f"{value} is outside the dataset root {root}"
        got = str(image_id(p))
        if got not in catalogued:
            return None, f"{value} is not a catalogued image (no such file, or not ingested yet)"
        return got, None

    items, errors, seen = [], [], {}
    for no, line in enumerate(text.splitlines(), 1):
        cols = line.split()
        if not cols or cols[0].startswith("#"):
            continue
        where = f"{source}:{no}"
        if len(cols) != 4:
            errors.append(f"{where}: {len(cols)} columns, expected 4 (query_id 0 doc_id relevance)")
            continue
        q, _, d, rel = cols
        try:
            grade = int(rel)
        except ValueError:
            errors.append(f"{where}: relevance {rel!r} is not a whole number (0 to {max_grade})")
            continue
        (qid, qerr), (did, derr) = to_id(q), to_id(d)
        problems = [e for e in (qerr, derr) if e]
        if not problems:
            problem = judgment_error(qid, did, grade, max_grade)
            if problem is None and seen.get((qid, did), (grade,))[0] != grade:
                first_grade, first_no = seen[qid, did]
                problem = f"{q} {d} graded {grade} here but {first_grade} on line {first_no}; keep one line per pair"
            if problem:
                problems.append(problem)
        if problems:
            errors.append(f"{where}: {'; '.join(problems)}")
            continue
        seen.setdefault((qid, did), (grade, no))
        items.append((qid, did, grade))
    return items, errors


def cmd_import(args) -> int:
    where = _where(args, need_experiment=True)
    judge = check_judge(args.judge)
    text = read_user_text(args.file, f"{args.file} does not exist; give a qrels file (query_id 0 doc_id relevance)",
                          "a qrels file")  # fmt: skip
    base = Path(args.paths_under).expanduser().resolve() if args.paths_under else None
    items, errors = check_import(text, args.file, where.root, _catalogued(where), where.max_grade, base)
    if errors:
        import sys

        for e in errors[:MAX_ERRORS]:
            print(f"error: {e}", file=sys.stderr)
        more = f" ({len(errors) - MAX_ERRORS} more not shown)" if len(errors) > MAX_ERRORS else ""
        print(f"error: {len(errors)} bad lines in {args.file}{more}: nothing was imported", file=sys.stderr)
        return 2
    store = JudgmentStore(where.path, max_grade=where.max_grade)
    new, changed = store.add_many(items, judge=judge)
    print(
        f"imported {len(items)} judgments of judge {judge} into {where.path}: {new} new, {changed} changed, "
        f"{len(items) - new - changed} already there"
    )
    return 0


def cmd_agreement(args) -> int:
    import json

    where = _where(args)
    result = agreement(_store(where))
    if args.json:
        print(json.dumps(result | {"conflict_pairs": JudgmentStore(where.path).conflicts()}, indent=1))
        return 0
    print(format_agreement(result))
    for c in JudgmentStore(where.path).conflicts()[: args.show]:
        marks = ", ".join(f"{j} {g}" for j, g in c["judges"].items())
        print(f"  query {c['query']} doc {c['doc']}: {marks} -> {c['grade']}")
    return 0


def cmd_remove(args) -> int:
    where = _where(args)
    if not (args.all or args.query or args.judge):
        raise ConfigError("say what to remove: --query ID_OR_PATH, --judge NAME (both: that judge on that query), "
                          "or --all --yes")  # fmt: skip
    if args.all and (args.query or args.judge):
        raise ConfigError("--all removes every judgment: drop --query and --judge, or drop --all")
    store = _store(where)
    query = args.query
    if query is not None and not query.isdigit():
        if where.root is None:
            raise ConfigError(f"--query {query} is a path: give the image id, or pass the experiment file with -e")
        query = str(image_id((where.root / query).resolve()))
    judge = check_judge(args.judge) if args.judge else None
    if args.all and not args.yes:
        n = sum(len(js) for js in store.marks().values())
        raise ConfigError(f"--all would remove all {n} marks in {where.path}: add --yes to do it")
    n = store.remove(query=query, judge=judge)
    what = " and ".join(x for x in (f"query {query}" if query else "", f"judge {judge}" if judge else "") if x)
    print(f"removed {n} marks ({what or 'all'}) from {where.path}; {store.count()} judged pairs left")
    return 0


def _where_args(p, name_ok: bool = True) -> None:
    help_ = "the experiment file (YAML) or its run folder"
    p.add_argument(
        "-e",
        "--experiment",
        required=True,
        metavar="FILE_OR_RUN_DIR" + ("_OR_NAME" if name_ok else ""),
        help=help_ + ("; or its name, with --data-dir" if name_ok else ""),
    )
    p.add_argument(  # accepted where a name is not enough too, so that a --data-dir gets the one-line reason why
        "--data-dir",
        default=None,
        help="the experiment's data folder, when --experiment is a name"
        if name_ok
        else "not used: this command checks against the experiment itself, so -e takes its file or run folder",
    )


def register(sub) -> None:
    p = sub.add_parser("judgments", help="export, import, compare judges, or remove relevance judgments")
    jsub = p.add_subparsers(dest="judgments_command", required=True)
    e = jsub.add_parser("export", help="write an experiment's judgments to a TREC qrels file")
    e.add_argument("out", help="the qrels file to write (query_id 0 doc_id relevance)")
    _where_args(e)
    e.add_argument(
        "--paths-under",
        default=None,
        help="write image paths relative to this folder (the dataset root) instead of ids",
    )
    e.add_argument("--judge", default=None, help="one judge's own marks (default: the judges' consensus)")
    e.set_defaults(func=cmd_export)
    i = jsub.add_parser(
        "import",
        help="merge a TREC qrels file into an experiment's judgments, checked first as the explorer checks a mark",
    )
    i.add_argument("file", type=Path, help="qrels file: image ids, or paths (relative ones from the dataset root)")
    _where_args(i, name_ok=False)
    i.add_argument("--judge", default=None, help="whose judgments these are (default: default)")
    i.add_argument(
        "--paths-under", default=None, help="take relative paths from this folder (default: the dataset root)"
    )
    i.set_defaults(func=cmd_import)
    a = jsub.add_parser("agreement", help="Cohen's kappa between judges on the pairs they share, and conflicts")
    _where_args(a)
    a.add_argument("--show", type=int, default=20, help="conflicting pairs listed (default 20)")
    a.add_argument("--json", action="store_true", help="print the figures as JSON")
    a.set_defaults(func=cmd_agreement)
    r = jsub.add_parser("remove", help="remove judgments by query, by judge, or all")
    _where_args(r)
    r.add_argument("--query", default=None, help="remove this query's judgments (an image id, or a path)")
    r.add_argument("--judge", default=None, help="remove this judge's marks")
    r.add_argument("--all", action="store_true", help="remove every judgment (needs --yes)")
    r.add_argument("--yes", action="store_true", help="confirm --all")
    r.set_defaults(func=cmd_remove)
