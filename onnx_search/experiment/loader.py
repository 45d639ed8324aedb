"""Reading an experiment file: text checks, YAML with file:line:column errors, ${VAR} interpolation, validation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ..textfile import read_user_text
from .config import Experiment
from .qrels import read_qrels

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, where: list) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise ConfigError(f"{'.'.join(map(str, where))}: environment variable {var} is not set")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, [*where, k]) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, [*where, i]) for i, v in enumerate(value)]
    return value


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or the deepest existing parent)."""
    line = node.start_mark.line + 1 if node else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, v in node.value if k.value == part), None)
            if nxt is None:
                return line
            line = (key or nxt).start_mark.line + 1
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def read_config_text(path: str | Path) -> str:
    """The file's text, or a one-line ConfigError for a missing, unreadable, binary or non-UTF-8 file."""
    path = Path(path)
    text = read_user_text(path, f"config file {path} does not exist", "the YAML config")
    if "\x00" in text:
        raise ConfigError(f"{path}: holds NUL bytes, so it is a binary file, not a YAML config")
    return text


def _parse_yaml(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    try:
        return yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        raise ConfigError(f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")) from None


def raw_config(path: str | Path) -> dict:
    """The YAML as written (``${VAR}`` references kept, so secrets never reach results)."""
    return _parse_yaml(read_config_text(path), Path(path))[1] or {}


def load_experiment(path: str | Path, base: Path | None = None, check_files: bool = True) -> Experiment:
    """Parse, interpolate ``${ENV}`` and validate; relative paths are taken from ``base`` (default: cwd).

    ``check_files=False`` skips checking that the dataset, queries and model files exist (the explorer reads a
    finished run's config for its stores, and serves what is still there)."""
    path = Path(path)
    node, data = _parse_yaml(read_config_text(path), path)
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        data = _interpolate(data, [])
        exp = Experiment.model_validate(data, context={"base": path.resolve().parent})  # a user model's paths
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            where = ".".join(map(str, loc)) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see configs/ for the allowed keys)"
            lines.append(f"{path}:{_line_of(node, loc)}: {where}: {msg}")
        if len(lines) == 1:  # one problem, one line
            raise ConfigError(f"invalid experiment config: {lines[0]}") from None
        raise ConfigError("invalid experiment config\n  " + "\n  ".join(lines)) from None
    return _check_files(exp, path) if check_files else exp


def _check_files(exp: Experiment, path: Path) -> Experiment:
    problems = []
    if not exp.dataset.root.is_dir():
        hint = " (make it with `onnx-search demo`, or set PHOTOS)" if exp.dataset.root == Path("demo/images") else ""
        problems.append(f"dataset.root: folder {exp.dataset.root} does not exist{hint}")
    aug = exp.queries.augment
    if aug and aug.under and exp.dataset.root.is_dir() and not (exp.dataset.root / aug.under).is_dir():
        problems.append(f"queries.augment.under: folder {exp.dataset.root / aug.under} does not exist")
    if exp.queries.folder and not exp.queries.folder.is_dir():
        problems.append(f"queries.folder: folder {exp.queries.folder} does not exist")
    for p in exp.queries.paths or []:
        if not p.exists():
            problems.append(f"queries.paths: {p} does not exist")
    for m in exp.models:
        if m.name.endswith(".onnx") and not Path(m.name).is_file():
            problems.append(f"models: {m.name} does not exist")
        if m.weights not in ("imagenet", "random", "auto") and not Path(m.weights).is_file():
            problems.append(f"models.{m.key}.weights: {m.weights} is neither imagenet/random/auto nor a file")
    if exp.ground_truth is not None:  # from the YAML's folder; a malformed judgment fails before any store opens
        exp.ground_truth.qrels = path.resolve().parent / exp.ground_truth.qrels.expanduser()
        try:
            read_qrels(exp.ground_truth.qrels)
        except ConfigError as exc:
            problems.append(f"ground_truth.qrels: {exc}")
    if problems:
        raise ConfigError(f"{path}:\n  " + "\n  ".join(problems))
    return exp
