"""The user's own model as a ModelSpec: a torch factory + state dict, a Keras file, or a bare .onnx, with the
recipe the user gives (no registry line). The convert flow then treats it like any other source.

Sources: ``user-torch`` (builder = ``package.module:callable``), ``user-keras`` (builder = the .keras/.h5 path),
``user-onnx`` (builder = the .onnx path); ``pooling`` records the vector: ``output`` or ``layer:<name>``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, ModelFileError, WeightsUnavailableError
from .user_recipe import RECIPE_FIELDS, parse_recipe, recipe_help
from .weights import WeightsChoice
from .zoo import REGISTRY, TIMM_PREFIX, ModelSpec, split_variant

USER_SOURCES = {"torch": "user-torch", "keras": "user-keras", "onnx": "user-onnx"}
FILE_SUFFIXES = {"user-keras": (".keras", ".h5"), "user-onnx": (".onnx",)}
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
FACTORY_LABEL = "factory:"  # the weights a torch factory builds or loads itself, seeded: "factory:<seed>"


def is_user(spec: ModelSpec) -> bool:
    return spec.source.startswith("user-")


def import_dirs(base: str | Path | None) -> list[str]:
    """Where a factory's module is looked for, in order: the current folder, then ``base`` (the experiment file's
    folder), then the usual Python path."""
    dirs = [str(Path.cwd())]
    if base is not None and str(Path(base).resolve()) not in dirs:
        dirs.append(str(Path(base).resolve()))
    return dirs


@contextmanager
def factory_import_path(spec: ModelSpec) -> Iterator[None]:
    """The folder the factory's module was found in (at spec time) in front of ``sys.path`` while it is
    imported (the conversion child)."""
    root = dict(spec.build_kwargs).get("import_root")
    added = [root] if root and root not in sys.path else []
    sys.path[:0] = added
    try:
        yield
    finally:
        for d in added:
            if d in sys.path:
                sys.path.remove(d)


def locate_module(module: str, base: str | Path | None) -> importlib.machinery.ModuleSpec | None:
    """The module's spec by the import rule above, found without importing anything (no parent package runs)."""
    search: list[str] | None = import_dirs(base) + [p for p in sys.path if p not in import_dirs(base)]
    found = None
    parts = module.split(".")
    for i in range(len(parts)):
        try:
            found = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
        except (ImportError, ValueError):
            return None
        if found is None:
            return None
        search = list(found.submodule_search_locations or [])
        if i < len(parts) - 1 and not search:
            return None
    return found


def user_spec(
    name: str,
    source: str,
    recipe: dict | None = None,
    factory: str | None = None,
    file: str | None = None,
    layer: str | None = None,
    base: str | None = None,
    reads: list[str] | None = None,
) -> ModelSpec:
    """The spec of a user's model; checks what can be checked without a framework (name, paths, factory, recipe).

    ``base``: the experiment file's folder (factory modules are looked for in the current folder, then there);
    ``reads``: files a self-loading factory reads (hashed into the request, see ``input_hashes``)."""
    if source not in USER_SOURCES:
        raise ConfigError(f"{name}: source {source!r} is not one of {', '.join(USER_SOURCES)}")
    _check_name(name)
    kind = USER_SOURCES[source]
    if kind == "user-torch":
        if file:
            raise ConfigError(
                f"{name}: a torch model is built by its factory; give factory (and its state dict as weights), "
                "not file (file is the model file of source keras or onnx)"
            )
        builder = _check_factory(name, factory, base)
    else:
        if factory:
            raise ConfigError(f"{name}: factory is for source torch; a {source} model is read from its file")
        if reads:
            raise ConfigError(f"{name}: reads is for a torch factory; a {source} model's file is tracked already")
        builder = str(_check_file(name, kind, file))
    for f in reads or []:
        if not Path(f).is_file():
            raise ConfigError(f"{name}: reads: {f} is no file; list the files the factory reads (checkpoints)")
    if recipe is None and kind == "user-onnx":
        recipe = _recipe_in_file(Path(builder), name)
    if recipe is None:
        raise ConfigError(f"{name}: a {source} model needs its recipe; {recipe_help()}")
    default_layout = {"user-torch": "NCHW", "user-keras": "NHWC"}.get(kind) or _onnx_layout(Path(builder), name)
    r = parse_recipe(recipe, name, default_layout)
    pooling = f"layer:{layer}" if layer else "output"
    extra: tuple = ()
    if kind == "user-torch":  # where its module is imported from, and the files it reads (tracked)
        extra = (("import_root", _import_root(builder, base)),)
        extra += (("reads", tuple(sorted(str(Path(f).resolve()) for f in reads))),) if reads else ()
    return ModelSpec(
        name, kind, builder, r.input_size, r.preprocess, pooling, 0, "", r.resize, r.interpolation, r.layout,
        None, r.crop_pct, r.mean, r.std, build_kwargs=extra,
    )  # fmt: skip


def _import_root(factory: str, base: str | None) -> str:
    """The folder that holds the factory's top-level package or module (found, by the rule, not imported)."""
    top = locate_module(factory.partition(":")[0].split(".")[0], base)
    if top is None:  # checked before; kept for type checkers
        raise ConfigError(f"factory {factory!r} cannot be found")
    if top.origin and top.origin != "namespace" and not top.submodule_search_locations:
        return str(Path(top.origin).resolve().parent)
    return str(Path(list(top.submodule_search_locations)[0]).resolve().parent)


def _check_name(name: str) -> None:
    """A plain file name that is no registry model's (it would overwrite ``models_dir/<name>.onnx``)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"{name!r}: a user model's name must be a plain file name (no '/', not starting '.')")
    parent = split_variant(name)[0].lower()
    if parent in REGISTRY or name.lower().startswith(TIMM_PREFIX):
        raise ConfigError(
            f"{name}: is a registry model's name, and your model would overwrite its models_dir/{name}.onnx; "
            f"give your model a name of its own (e.g. my-{parent})"
        )


def _check_factory(name: str, factory: str | None, base: str | None) -> str:
    """``package.module:callable`` whose module can be found (imported later, in the conversion child)."""
    if not factory or ":" not in factory:
        raise ConfigError(f"{name}: factory must be 'package.module:callable', got {factory!r}")
    module, _, attr = factory.partition(":")
    if not attr.isidentifier() or locate_module(module, base) is None:
        where = " or ".join(import_dirs(base))
        raise ConfigError(
            f"{name}: factory {factory!r} cannot be imported: module {module!r} is not in {where} nor on "
            "PYTHONPATH; put it in the current folder or beside the experiment file"
        )
    return factory


def _check_file(name: str, kind: str, file: str | None) -> Path:
    suffixes = FILE_SUFFIXES[kind]
    if not file:
        raise ConfigError(f"{name}: give the model's file ({' or '.join(suffixes)})")
    p = Path(file).expanduser()
    if p.suffix.lower() not in suffixes:
        raise ConfigError(f"{name}: {p} is not a {' or '.join(suffixes)} file")
    if not p.is_file():
        raise ModelFileError(f"{name}: model file {p} does not exist")
    return p.resolve()


def _onnx_model(path: Path, name: str):
    """The ModelProto of a user's .onnx file (weights not loaded), or one line saying it is no ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends: the file is not ONNX
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ModelFileError(
            f"{name}: {path} is not an ONNX model (garbage or truncated: {why}); give the file torch.onnx.export "
            "or onnx.save wrote, copied whole"
        ) from None
    if not model.graph.input or not model.graph.output or not model.graph.node:
        raise ModelFileError(
            f"{name}: {path} is not an ONNX model (no graph, inputs or outputs; garbage or truncated?); give the "
            "file torch.onnx.export or onnx.save wrote, copied whole"
        )
    return model


def _recipe_in_file(path: Path, name: str) -> dict:
    """A .onnx file's own recipe (a file onnx-search already annotated), or the error listing the fields."""
    import json

    from .recipe import METADATA_KEY

    model = _onnx_model(path, name)
    raw = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    meta = json.loads(raw) if raw else None
    if not meta:
        raise ModelFileError(
            f"{name}: {path} has no onnx-search metadata, so give its recipe in the YAML (or --recipe); {recipe_help()}"
        )
    return {k: meta[k] for k in RECIPE_FIELDS if k in meta}


def _onnx_layout(path: Path, name: str) -> str | None:
    """NCHW or NHWC from a .onnx file's input shape when its channel axis (3) tells, else None."""
    graph = _onnx_model(path, name).graph
    dims = [d.dim_value or None for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) == 4 and dims[1] == 3 and dims[3] != 3:
        return "NCHW"
    if len(dims) == 4 and dims[3] == 3 and dims[1] != 3:
        return "NHWC"
    return None


def user_weights(spec: ModelSpec, weights: str | None, seed: int) -> WeightsChoice:
    """A torch model's state dict file, ``random`` (its init under the seed) or, by default, the factory's own
    weights (whatever it builds or loads, seeded); a keras/onnx model's weights are in its file."""
    if spec.source != "user-torch":  # (the Python API's default "random" means nothing here and passes)
        if weights not in (None, "auto", "random"):
            raise ConfigError(
                f"{spec.name}: weights {weights!r} is for source torch (a state dict); a {spec.source[5:]} model's "
                "weights are in its file: drop weights (--weights)"
            )
        return WeightsChoice.from_file(Path(spec.builder))  # the weights are in the model's own file
    if weights == "random":
        return WeightsChoice.random(seed)
    if weights in (None, "auto"):
        return WeightsChoice(None, f"{FACTORY_LABEL}{seed}", seed)
    p = Path(weights).expanduser()
    if not p.is_file():
        raise WeightsUnavailableError(
            f"{spec.name}: weights {weights!r} is no file; give the state dict "
            f"({'/'.join(STATE_DICT_SUFFIXES)}) or 'random'"
        )
    return WeightsChoice.from_file(p.resolve())


def input_hashes(spec: ModelSpec, choice: WeightsChoice) -> dict:
    """Hashes of the files a user model is made from (model file, state dict, factory's module, the files the
    factory reads, ``reads``): a changed file makes the converted one stale even at the same path."""
    files = [spec.builder] if spec.source != "user-torch" else []
    if choice.pretrained:
        files.append(choice.pretrained)
    if spec.source == "user-torch":
        kwargs = dict(spec.build_kwargs)
        found = locate_module(spec.builder.partition(":")[0], kwargs.get("import_root"))
        files += [found.origin] if found is not None and found.origin not in (None, "namespace") else []
        files += list(kwargs.get("reads") or [])
    return {f: hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16] for f in files}


def untracked_note(spec: ModelSpec, choice: WeightsChoice) -> str | None:
    """The line that says a factory's own weights are not tracked (None when nothing is left untracked)."""
    reads = dict(spec.build_kwargs).get("reads")
    if spec.source != "user-torch" or not choice.label.startswith(FACTORY_LABEL) or reads:
        return None
    return (
        f"{spec.name}: the weights are the factory's own ({spec.builder}, seed {choice.seed}); files it reads are "
        "NOT tracked, so a changed checkpoint does not reconvert: name them with --reads FILE (YAML: reads: [...])"
    )


def vector_dim(shape: tuple, name: str, where: str) -> int:
    """The dimension of an output batch that is one vector per image ((N, D) or (N, D, 1, 1)), else an error."""
    rest = [int(d) for d in shape[1:]]
    big = [d for d in rest if d != 1]
    if len(big) > 1 or not rest:
        raise ModelFileError(
            f"{name}: {where} gives shape {tuple(shape)} per batch, not one vector per image; pool it or name "
            "a layer whose output is (N, D)"
        )
    return big[0] if big else 1
