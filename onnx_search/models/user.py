"""The user's own model as a ModelSpec: a torch factory + state dict, a Keras file, or a bare .onnx, with the
recipe the user gives (no registry line). The convert flow then treats it like any other source.

Sources: ``user-torch`` (builder = ``package.module:callable``), ``user-keras`` (builder = the .keras/.h5 path),
``user-onnx`` (builder = the .onnx path); ``pooling`` records the vector: ``output`` or ``layer:<name>``.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from ..errors import ConfigError, ModelFileError, WeightsUnavailableError
from .recipe import LAYOUTS, PREPROCESS_MODES, RESIZE_POLICIES, Recipe
from .weights import WeightsChoice
from .zoo import ModelSpec

USER_SOURCES = {"torch": "user-torch", "keras": "user-keras", "onnx": "user-onnx"}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
RECIPE_FIELDS = {
    "input_size": "int, square side in pixels (required)",
    "preprocess": f"{'|'.join(PREPROCESS_MODES)} (required)",
    "resize": f"{'|'.join(RESIZE_POLICIES)} (default squash)",
    "interpolation": f"{'|'.join(INTERPOLATIONS)} (default bilinear)",
    "layout": f"{'|'.join(LAYOUTS)} (default: torch NCHW, keras NHWC, onnx from the graph)",
    "crop_pct": "float, 0 = the resize policy's own (default 0)",
    "mean": "[r, g, b] on 0..1 pixels (preprocess meanstd)",
    "std": "[r, g, b] (preprocess meanstd)",
}
FILE_SUFFIXES = {"user-keras": (".keras", ".h5"), "user-onnx": (".onnx",)}


def recipe_help() -> str:
    """The recipe fields a user fills, on one line."""
    return "recipe: {" + "; ".join(f"{k}: {v}" for k, v in RECIPE_FIELDS.items()) + "}"


def is_user(spec: ModelSpec) -> bool:
    return spec.source.startswith("user-")


def parse_recipe(recipe: dict, name: str, default_layout: str | None) -> Recipe:
    """The user's recipe dict as a Recipe, or one ConfigError naming every field to fix."""
    if not isinstance(recipe, dict):
        raise ConfigError(f"{name}: the recipe must be a mapping; {recipe_help()}")
    problems = [f"unknown field {k!r}" for k in recipe if k not in RECIPE_FIELDS]
    for k in ("input_size", "preprocess"):
        if k not in recipe:
            problems.append(f"{k} is missing")
    choices = {"preprocess": PREPROCESS_MODES, "resize": RESIZE_POLICIES, "interpolation": INTERPOLATIONS}
    choices["layout"] = LAYOUTS
    for k, allowed in choices.items():
        if k in recipe and recipe[k] not in allowed:
            problems.append(f"{k} {recipe[k]!r} is not one of {', '.join(allowed)}")
    layout = recipe.get("layout", default_layout)
    if layout is None and not problems:
        problems.append("layout is missing (NHWC or NCHW)")
    if not problems:
        try:
            size = int(recipe["input_size"])
            if size < 8:
                raise ValueError(f"input_size {size} is too small")
            mean, std = recipe.get("mean"), recipe.get("std")
            return Recipe(
                size, recipe["preprocess"], recipe.get("resize", "squash"), recipe.get("interpolation", "bilinear"),
                layout, float(recipe.get("crop_pct", 0.0)),
                tuple(float(v) for v in mean) if mean is not None else None,
                tuple(float(v) for v in std) if std is not None else None,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
    raise ConfigError(f"{name}: recipe: {'; '.join(problems)}; {recipe_help()}")


def user_spec(
    name: str,
    source: str,
    recipe: dict | None = None,
    factory: str | None = None,
    file: str | None = None,
    layer: str | None = None,
) -> ModelSpec:
    """The spec of a user's model; checks what can be checked without a framework (paths, factory, recipe)."""
    if source not in USER_SOURCES:
        raise ConfigError(f"{name}: source {source!r} is not one of {', '.join(USER_SOURCES)}")
    kind = USER_SOURCES[source]
    if kind == "user-torch":
        if file:
            raise ConfigError(f"{name}: a torch model is built by its factory; give factory (and weights), not file")
        builder = _check_factory(name, factory)
    else:
        if factory:
            raise ConfigError(f"{name}: factory is for source torch; a {source} model is read from its file")
        builder = str(_check_file(name, kind, file))
    if recipe is None and kind == "user-onnx":
        recipe = _recipe_in_file(Path(builder), name)
    if recipe is None:
        raise ConfigError(f"{name}: a {source} model needs its recipe; {recipe_help()}")
    default_layout = {"user-torch": "NCHW", "user-keras": "NHWC"}.get(kind) or _onnx_layout(Path(builder))
    r = parse_recipe(recipe, name, default_layout)
    if "/" in name or name.startswith(".") or not name:
        raise ConfigError(f"{name!r}: a user model's name must be a plain file name (no '/')")
    pooling = f"layer:{layer}" if layer else "output"
    return ModelSpec(
        name, kind, builder, r.input_size, r.preprocess, pooling, 0, "", r.resize, r.interpolation, r.layout,
        None, r.crop_pct, r.mean, r.std,
    )  # fmt: skip


def _check_factory(name: str, factory: str | None) -> str:
    """``package.module:callable`` whose module can be found (imported later, in the conversion child)."""
    if not factory or ":" not in factory:
        raise ConfigError(f"{name}: factory must be 'package.module:callable', got {factory!r}")
    module, _, attr = factory.partition(":")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not attr.isidentifier():
        raise ConfigError(
            f"{name}: factory {factory!r} cannot be imported (module {module!r} not found on the Python path; "
            "run from the folder that holds it or add it to PYTHONPATH)"
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


def _recipe_in_file(path: Path, name: str) -> dict:
    """A .onnx file's own recipe (a file onnx-search already annotated), or the error listing the fields."""
    from .recipe import read_metadata_file

    meta = read_metadata_file(path)
    if not meta:
        raise ModelFileError(
            f"{name}: {path} has no onnx-search metadata, so give its recipe in the YAML (or --recipe); {recipe_help()}"
        )
    return {k: meta[k] for k in RECIPE_FIELDS if k in meta}


def _onnx_layout(path: Path) -> str | None:
    """NCHW or NHWC from a .onnx file's input shape when its channel axis (3) tells, else None."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = [d.dim_value or None for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) == 4 and dims[1] == 3 and dims[3] != 3:
        return "NCHW"
    if len(dims) == 4 and dims[3] == 3 and dims[1] != 3:
        return "NHWC"
    return None


def user_weights(spec: ModelSpec, weights: str, seed: int) -> WeightsChoice:
    """A torch model's state dict file, or its factory's own init under a seed; keras/onnx carry their weights."""
    if spec.source != "user-torch":
        return WeightsChoice.from_file(Path(spec.builder))  # the weights are in the model's own file
    if weights in ("random", "auto"):
        return WeightsChoice.random(seed)
    p = Path(weights).expanduser()
    if not p.is_file():
        raise WeightsUnavailableError(
            f"{spec.name}: weights {weights!r} is no file; give the state dict (.pth/.pt/.safetensors) or 'random'"
        )
    return WeightsChoice.from_file(p.resolve())


def input_hashes(spec: ModelSpec, choice: WeightsChoice) -> dict:
    """Hashes of the files a user model is made from (model file, state dict, factory's module): a changed file
    makes the converted one stale even at the same path."""
    files = [spec.builder] if spec.source != "user-torch" else []
    if choice.pretrained:
        files.append(choice.pretrained)
    if spec.source == "user-torch":
        origin = importlib.util.find_spec(spec.builder.partition(":")[0]).origin
        files += [origin] if origin else []
    return {f: hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16] for f in files}


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
