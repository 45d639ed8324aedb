"""Experiment YAML -> validated objects, with errors that name the bad key and its line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..embed.scan import DEFAULT_EXTENSIONS
from ..errors import ConfigError, UnknownModelError
from ..models.zoo import REGISTRY, get_spec, variant_name
from ..store.index import IndexParams, Metric
from ..store.stores import StoreSettings

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_QUERY_SAMPLE = 20  # at most this many queries sampled (seeded) when the config names no source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=True)


class ModelEntry(_Strict):
    name: str  # registry name or a path ending .onnx
    weights: str = "auto"  # imagenet | random | auto | path to .h5 (used when the model must be converted)
    seed: int = 0
    providers: list[str] = Field(default_factory=lambda: ["auto"])
    strict: bool = False
    batch_size: int = Field(32, ge=1, le=4096)
    threads: int = Field(0, ge=0)
    variants: list[Literal["fp32", "fp16", "int8", "optimized"]] = Field(default_factory=lambda: ["fp32"], min_length=1)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if not v.endswith(".onnx"):
            try:
                get_spec(v)
            except UnknownModelError as exc:
                raise ValueError(str(exc)) from None
        return v.lower() if v.lower() in REGISTRY else v

    @model_validator(mode="after")
    def _variants_of_registry_models(self):
        if self.name.endswith(".onnx") and self.variants != ["fp32"]:
            raise ValueError("variants are made from registry models; convert a variant of a file yourself")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"a variant is listed twice: {self.variants}")
        return self

    @property
    def key(self) -> str:
        return Path(self.name).stem if self.name.endswith(".onnx") else self.name

    @property
    def keys(self) -> list[str]:
        """One model per variant: ``resnet50`` (fp32), ``resnet50.int8``, ..."""
        return [variant_name(self.key, v) for v in self.variants]


class Dataset(_Strict):
    root: Path
    extensions: list[str] = Field(default_factory=lambda: [e.lstrip(".") for e in DEFAULT_EXTENSIONS])
    labels: bool = True  # label = parent folder name


class MilvusSection(_Strict):
    uri: str | None = None  # empty: Milvus Lite under data_dir
    token: str | None = None
    user: str | None = None
    password: str | None = None


class Store(_Strict):
    milvus: MilvusSection = Field(default_factory=MilvusSection)
    redis_url: str | None = None  # empty: a local redis-server under data_dir
    namespace: str | None = None
    metric: Metric = Metric.COSINE
    index: IndexParams = Field(default_factory=IndexParams)

    def settings(self, data_dir: Path, experiment: str) -> StoreSettings:
        """The stores this experiment uses (namespace defaults to one of its own)."""
        from ..store.naming import default_namespace

        return StoreSettings(
            data_dir=data_dir,
            milvus_uri=self.milvus.uri,
            milvus_token=self.milvus.token,
            milvus_user=self.milvus.user,
            milvus_password=self.milvus.password,
            redis_url=self.redis_url,
            namespace=self.namespace or default_namespace(experiment),
            metric=Metric(self.metric).value,
            index=self.index,
        )


class Queries(_Strict):
    """Where queries come from: exactly one source; none given means a seeded sample of the dataset."""

    sample: int | None = Field(None, ge=1)  # N catalogued images sampled with the seed
    folder: Path | None = None
    paths: list[Path] | None = None
    exclude_self: bool = True

    @model_validator(mode="after")
    def _one_source(self):
        given = [n for n in ("sample", "folder", "paths") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give only one of sample, folder, paths (got {given})")
        return self

    @property
    def sampled(self) -> bool:
        """Queries are a sample of the dataset (given, or by default when no folder or paths are named)."""
        return not (self.folder or self.paths)


class CostSection(_Strict):
    """How the cost phase measures speed: on a sample of the dataset, interleaved over models, median of repeats."""

    images: int = Field(16, ge=1, le=4096)
    repeats: int = Field(2, ge=1, le=20)


class Experiment(_Strict):
    experiment: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output: Path = Path("runs")
    data_dir: Path | None = None  # embedded stores; default data/<experiment>
    models_dir: Path = Path("models")
    seed: int = 0
    top_k: int = Field(10, ge=1, le=1000)
    dataset: Dataset
    models: list[ModelEntry] = Field(min_length=1)
    store: Store = Field(default_factory=Store)
    queries: Queries = Field(default_factory=Queries)
    sweep: list[IndexParams] = Field(default_factory=list)  # extra index variants to compare with exact search
    grid_queries: int = Field(8, ge=0)  # queries shown in the result grid
    cost: CostSection | None = Field(default_factory=CostSection)  # null: no speed measurements

    @model_validator(mode="after")
    def _unique_models(self):
        keys = [k for m in self.models for k in m.keys]
        if len(set(keys)) != len(keys):
            raise ValueError(f"models are listed twice: {keys}")
        return self

    @property
    def run_dir(self) -> Path:
        return self.output / self.experiment

    @property
    def stores_dir(self) -> Path:
        return self.data_dir or Path("data") / self.experiment


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
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); is it the YAML config?") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
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


def load_experiment(path: str | Path, base: Path | None = None) -> Experiment:
    """Parse, interpolate ``${ENV}`` and validate; relative paths are taken from ``base`` (default: cwd)."""
    path = Path(path)
    node, data = _parse_yaml(read_config_text(path), path)
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        data = _interpolate(data, [])
        exp = Experiment.model_validate(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            where = ".".join(map(str, loc)) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see configs/ for the allowed keys)"
            lines.append(f"{path}:{_line_of(node, loc)}: {where}: {msg}")
        raise ConfigError("invalid experiment config\n  " + "\n  ".join(lines)) from None
    return _check_files(exp, path)


def _check_files(exp: Experiment, path: Path) -> Experiment:
    problems = []
    if not exp.dataset.root.is_dir():
        hint = " (make it with `onnx-search demo`, or set PHOTOS)" if exp.dataset.root == Path("demo/images") else ""
        problems.append(f"dataset.root: folder {exp.dataset.root} does not exist{hint}")
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
    if problems:
        raise ConfigError(f"{path}:\n  " + "\n  ".join(problems))
    return exp
