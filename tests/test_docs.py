"""The docs say only what is true of the code: every `onnx-search ...` command in README.md and docs/**/*.md parses
with the project's own parser, every YAML block loads with the experiment loader, every `make` target, repository
path and `tests/...::test` they name exists, the README stays short, and the user docs carry no development history
(issue numbers, commit hashes, "today", "UTC")."""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import io
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from onnx_search.cli import build_parser
from onnx_search.errors import OnnxSearchError
from onnx_search.experiment.loader import load_experiment
from tests.docs_blocks import REPO, Block, code_blocks, doc_files, prose
from tests.helpers import foreign_model

README_MAX_LINES = 150
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "text"}
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _inline_code(path: Path) -> list[str]:
    return INLINE.findall(prose(path))


# --- commands ----------------------------------------------------------------------------------------------------


def command_lines(path: Path) -> list[tuple[str, str]]:
    """(where, command) for each `onnx-search ...` line of a shell-like code block, and each inline code span that
    is a whole command. Lines holding `...` (an elided argument list) are left out; placeholders such as FOLDER
    are ordinary argument values and are parsed."""
    found = []
    for b in code_blocks(path):
        if b.lang not in SHELL_LANGS:
            continue
        for i, line in enumerate(b.text.splitlines(), start=1):
            s = line.strip()
            if b.lang == "console":  # a console block: commands follow "$ ", the rest is their output
                if not s.startswith("$ "):
                    continue
                s = s[2:]
            if s.startswith("onnx-search ") and "..." not in s:
                found.append((f"{b.where}+{i}", s))
    for span in _inline_code(path):
        if span.startswith("onnx-search ") and not any(c in span for c in ("...", "[", "|")):
            found.append((f"{_rel(path)} (inline)", span))
    return found


def inline_error(span: str) -> str | None:
    """An inline span that only names a command (`onnx-search run`) must name one that exists; one with arguments
    must parse whole."""
    words = shlex.split(span)
    if len(words) == 2 or words[1:2] == ["judgments"] and len(words) == 3:
        return parse_error(span + " --help")
    return parse_error(span)


def parse_error(command: str) -> str | None:
    """None when the project's parser accepts the command line, else argparse's message."""
    argv = shlex.split(command, comments=True)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def test_the_parse_check_refuses_a_wrong_command():
    assert parse_error("onnx-search init photos") is None
    assert parse_error("onnx-search judgments export -e configs/demo.yaml pool.qrels") is None
    assert "unrecognized arguments" in parse_error("onnx-search init photos --labels yes")
    assert "invalid choice" in parse_error("onnx-search initialise photos")
    assert "required" in parse_error("onnx-search judgments export pool.qrels")  # -e/--experiment is required
    assert inline_error("onnx-search run") is None and inline_error("onnx-search judgments export") is None
    assert "invalid choice" in inline_error("onnx-search initialise")
    assert "required" in inline_error("onnx-search run --rebuild")


def test_every_command_in_the_docs_parses():
    lines = [wc for p in doc_files() for wc in command_lines(p)]
    assert len(lines) >= 20, "the docs show commands; the collector found too few"
    check = {True: inline_error, False: parse_error}
    bad = [f"{where}: {cmd}\n    {err}" for where, cmd in lines if (err := check[where.endswith("(inline)")](cmd))]
    assert not bad, "commands the parser refuses:\n" + "\n".join(bad)


# --- YAML --------------------------------------------------------------------------------------------------------

ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
BASE = {"experiment": "docs-check", "dataset": {"root": "photos"}, "models": [{"name": "efficientnet-lite0"}]}


def as_experiment(data) -> dict:
    """A whole experiment as written, or a fragment made whole: a mapping of sections is laid over a minimal
    experiment, a list is its `models:`."""
    if isinstance(data, list):
        return {**BASE, "models": data}
    if isinstance(data, dict) and "experiment" in data:
        return data
    if isinstance(data, dict):
        return {**copy.deepcopy(BASE), **data}
    raise AssertionError(f"a YAML block must be a mapping or a list, not {type(data).__name__}")


def _touch(path: Path, folder: bool = False) -> None:
    if folder:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def load_block(text: str, work: Path) -> None:
    """Load one YAML block with the experiment loader in an empty folder where the files it names exist:
    the dataset root, model files, weights files and the qrels file are made first (empty; a bare `.onnx` is a tiny
    real model of the recipe's input size, a factory's module an empty file where the loader looks for it)."""
    data = as_experiment(yaml.safe_load(text))
    cfg = work / "cfg"
    cfg.mkdir(parents=True, exist_ok=True)
    path = cfg / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    root = ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), str(data["dataset"].get("root", "")))
    _touch(Path(root), folder=True)
    q = data.get("queries") or {}
    if isinstance(q, dict) and q.get("folder"):
        _touch(Path(q["folder"]), folder=True)
    if isinstance(q, dict) and isinstance(q.get("augment"), dict) and q["augment"].get("under") and root:
        _touch(Path(root) / q["augment"]["under"], folder=True)
    for m in data.get("models") or []:
        here = cfg if (m.get("source") or m.get("recipe")) else Path(".")
        for key in ("file", "weights"):
            v = m.get(key)
            if isinstance(v, str) and v not in ("imagenet", "random", "auto", "pretrained"):
                _touch(here / v)
        for r in m.get("reads") or []:
            _touch(here / r)
        if str(m.get("name", "")).endswith(".onnx"):
            _touch(here / m["name"])
            if m.get("recipe"):  # a bare file is read when its recipe is checked: a real (tiny) ONNX model
                foreign_model(here / m["name"], m["recipe"].get("input_size", 224))
        if m.get("factory"):
            parts = m["factory"].split(":")[0].split(".")
            for i in range(1, len(parts)):
                _touch(cfg.joinpath(*parts[:i], "__init__.py"))
            _touch(cfg.joinpath(*parts[:-1], parts[-1] + ".py"))
    gt = data.get("ground_truth") or {}
    if gt.get("qrels"):
        _touch(cfg / gt["qrels"])
    load_experiment(path)


def yaml_blocks() -> list[Block]:
    return [b for p in doc_files() for b in code_blocks(p) if b.lang in ("yaml", "yml")]


def test_the_yaml_check_refuses_what_the_loader_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_block("top_k: 5\nqueries: {sample: 50}\n", tmp_path / "a")
    with pytest.raises(yaml.YAMLError):  # the old README example: a ${VAR} inside a flow mapping
        load_block("dataset: {root: ${PHOTOS}, labels: true}\n", tmp_path / "b")
    with pytest.raises(OnnxSearchError, match="unknown key"):
        load_block("queries: {samples: 50}\n", tmp_path / "c")
    with pytest.raises(OnnxSearchError, match="Unknown model|unknown model"):
        load_block("- {name: resnet-50}\n", tmp_path / "d")


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.where)
def test_every_yaml_block_loads_with_the_experiment_loader(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PHOTOS", str(tmp_path / "photos"))
    try:
        load_block(block.text, tmp_path)
    except (yaml.YAMLError, OnnxSearchError, AssertionError) as exc:
        pytest.fail(f"{block.where}: {exc}")


def test_the_docs_have_yaml_blocks():
    assert len(yaml_blocks()) >= 5


# --- names that must exist ---------------------------------------------------------------------------------------


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", (REPO / "Makefile").read_text(), re.M))


def _code_text(path: Path) -> str:
    """Inline code spans and code blocks: where commands and paths are written."""
    return "\n".join([*_inline_code(path), *(b.text for b in code_blocks(path))])


MAKE = re.compile(r"(?:^|[\s`(])make ([a-z][\w*-]*)", re.M)  # `make bench-*`: a pattern some target must match
REPO_PATH = re.compile(r"^(?:\.\./)?((?:configs|onnx_search|tests|docs|notebooks|bench)/[\w./-]*[\w/])(?:::(\w+))?$")
TEST_REF = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")


def test_every_make_target_named_exists():
    targets = make_targets()
    assert {"demo", "test", "setup"} <= targets
    bad = [
        f"{_rel(p)}: make {t}"
        for p in doc_files()
        for t in MAKE.findall(_code_text(p))
        if not fnmatch.filter(targets, t)
    ]
    assert not bad, "make targets the Makefile lacks:\n" + "\n".join(bad)


def repo_path_problems(path: Path) -> list[str]:
    problems = []
    for span in _inline_code(path):
        m = REPO_PATH.match(span.strip())
        if not m or any(c in span for c in "<>*{}$"):
            continue
        target = (path.parent / span) if span.startswith("../") else REPO / m.group(1)
        if not target.exists():
            problems.append(f"{_rel(path)}: `{span}` does not exist")
    for file, name in TEST_REF.findall(path.read_text(encoding="utf-8")):
        f = REPO / file
        if not f.is_file() or not re.search(rf"^\s*(?:async )?def {name}\(", f.read_text(), re.M):
            problems.append(f"{_rel(path)}: {file}::{name} does not exist")
    for link in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", prose(path)):
        if not re.match(r"^[a-z]+:", link) and not (path.parent / link).exists():
            problems.append(f"{_rel(path)}: link {link} does not exist")
    return problems


def test_every_repo_path_and_test_named_exists():
    bad = [p for f in doc_files() for p in repo_path_problems(f)]
    assert not bad, "\n".join(bad)


def test_the_path_check_sees_a_missing_path_and_test(tmp_path):
    page = tmp_path / "probe.md"
    page.write_text(
        "`configs/demo.yaml` `configs/nope.yaml` tests/test_init.py::test_query_plan_aims_at_the_target_difference_"
        "within_the_folder tests/test_init.py::test_nope [x](nope.md)\n"
    )
    problems = repo_path_problems(page)
    assert len(problems) == 3 and "configs/nope.yaml" in problems[0] and "test_nope" in problems[1], problems


# --- the README's length and no development history ---------------------------------------------------------------


def test_the_readme_is_at_most_150_lines():
    n = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; the manual belongs in docs/"


HISTORY = {
    "an issue number": re.compile(r"\bissues?\s*#?\d+|(?<![\w&/])#\d+\b", re.I),
    # a file name's digest (resnet50.int8.<12 hex>.onnx) is a name, not history: not after a dot
    "a commit hash": re.compile(r"(?<![.\w])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"),
    '"today"': re.compile(r"\btoday\b", re.I),
    '"UTC"': re.compile(r"\bUTC\b"),
}


def history_problems(path: Path) -> list[str]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for what, rx in HISTORY.items():
            if m := rx.search(line):
                out.append(f"{_rel(path)}:{i}: {what} ({m.group(0)!r})")
    return out


def test_the_user_docs_carry_no_development_history():
    bad = [p for f in doc_files() for p in history_problems(f)]
    assert not bad, "the docs speak of the product as it is:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "line",
    ["fixed in issue 24", "see #31", "from commit 934b224", "the same run today", "at 18:00 UTC"],
)
def test_the_history_check_sees_each_kind(line, tmp_path):
    page = tmp_path / "probe.md"
    page.write_text(f"ok line\n{line}\n")
    assert history_problems(page), line


def test_the_history_check_leaves_ordinary_text_alone(tmp_path):
    page = tmp_path / "probe.md"
    page.write_text(
        "an id such as 4812034981237, a facade, `efficientnet-lite0`, [a link](#section), 2^16, "
        "models/resnet50.int8.e08bf27c5812.onnx\n"
    )
    assert history_problems(page) == []


# --- the notebook page ---------------------------------------------------------------------------------------------


def test_the_notebook_page_shows_the_notebook_as_it_is():
    """docs/notebook.md is the notebook executed and rendered: each of its cells must be the notebook's current
    text (re-render the page when the notebook changes)."""
    import json

    nb = json.loads((REPO / "notebooks" / "compare_distances.ipynb").read_text())
    page = (REPO / "docs" / "notebook.md").read_text(encoding="utf-8")
    stale = [
        "".join(c["source"]).strip().splitlines()[0]
        for c in nb["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).strip() not in page
    ]
    assert not stale, f"docs/notebook.md does not show these notebook cells as they are now: {stale}"
    images = re.findall(r"!\[[^]]*\]\((notebook/[\w.-]+\.png)\)", page)
    assert images and all((REPO / "docs" / i).is_file() for i in images)
