"""The recipe a user gives for their own model, validated once (pydantic, bounds) for every route: the
``convert --recipe`` flag, a YAML ``recipe:`` and the recipe read back from an annotated .onnx file.

Rules: ``input_size`` an integer side in 16..2048 pixels; ``crop_pct`` 0 (the resize policy's own) or in (0, 1];
``mean`` and ``std`` lists of exactly 3 numbers (no broadcasting of one value), every ``std`` > 0, and given only
with ``preprocess: meanstd`` (the other modes carry their own constants, so a mean/std there would be ignored).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from .recipe import Recipe

MIN_SIZE, MAX_SIZE = 16, 2048
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
BOUNDS = {"input_size": f"a whole number {MIN_SIZE}..{MAX_SIZE}", "crop_pct": "0 (the policy's own) or in (0, 1]"}
RECIPE_FIELDS = {
    "input_size": f"int {MIN_SIZE}..{MAX_SIZE}, square side in pixels (required)",
    "preprocess": "caffe|torch|tf|raw|meanstd (required)",
    "resize": "squash|center_crop (default squash)",
    "interpolation": f"{'|'.join(INTERPOLATIONS)} (default bilinear)",
    "layout": "NHWC|NCHW (default: torch NCHW, keras NHWC, onnx from the graph)",
    "crop_pct": "0 (the resize policy's own, default) or a number in (0, 1]",
    "mean": "[r, g, b] on 0..1 pixels (preprocess meanstd only)",
    "std": "[r, g, b], each > 0 (preprocess meanstd only)",
}


def recipe_help() -> str:
    """The recipe fields a user fills, on one line."""
    return "recipe: {" + "; ".join(f"{k}: {v}" for k, v in RECIPE_FIELDS.items()) + "}"


def _three_numbers(v: object, what: str) -> tuple[float, float, float] | None:
    if v is None:
        return None
    ok = isinstance(v, list | tuple) and len(v) == 3
    ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
    if not ok:
        raise ValueError(f"{what} must be a list of 3 numbers (one per channel), e.g. [0.5, 0.5, 0.5]; got {v!r}")
    return tuple(float(x) for x in v)


class UserRecipe(BaseModel):
    """The user's recipe fields with their bounds; ``to_recipe`` gives the Recipe the flow uses."""

    model_config = ConfigDict(extra="forbid")

    input_size: Annotated[int, Field(strict=True, ge=MIN_SIZE, le=MAX_SIZE)]
    preprocess: Literal["caffe", "torch", "tf", "raw", "meanstd"]
    resize: Literal["squash", "center_crop"] = "squash"
    interpolation: Literal[INTERPOLATIONS] = "bilinear"  # type: ignore[valid-type]
    layout: Literal["NHWC", "NCHW"] | None = None
    crop_pct: float = Field(0.0, ge=0.0, le=1.0)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @field_validator("crop_pct", mode="before")
    @classmethod
    def _number(cls, v: object) -> object:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"crop_pct must be a number (0, or in (0, 1]); got {v!r}")
        return v

    @field_validator("mean", "std", mode="before")
    @classmethod
    def _channels(cls, v: object, info) -> object:
        return _three_numbers(v, info.field_name)

    @field_validator("std")
    @classmethod
    def _positive(cls, v: tuple | None) -> tuple | None:
        if v is not None and min(v) <= 0:
            raise ValueError(f"std must be > 0 for every channel (it divides); got {list(v)}")
        return v

    @model_validator(mode="after")
    def _mean_std_fit_the_mode(self):
        given = [k for k in ("mean", "std") if getattr(self, k) is not None]
        if self.preprocess == "meanstd" and len(given) != 2:
            raise ValueError("preprocess meanstd needs both mean and std")
        if self.preprocess != "meanstd" and given:
            raise ValueError(
                f"{' and '.join(given)} would be ignored by preprocess {self.preprocess} (it has its own constants); "
                "use preprocess meanstd to normalise with your mean/std, or drop them"
            )
        return self

    def to_recipe(self, layout: str) -> Recipe:
        return Recipe(
            self.input_size, self.preprocess, self.resize, self.interpolation, layout, self.crop_pct,
            self.mean, self.std,
        )  # fmt: skip


def _problem(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown field {loc!r}"
    if err["type"] == "missing":
        return f"{loc} is missing"
    if err["type"] in ("int_type", "int_from_float", "int_parsing"):
        return f"{loc} must be a whole number of pixels ({MIN_SIZE}..{MAX_SIZE}); got {err.get('input')!r}"
    if err["type"] in ("greater_than_equal", "less_than_equal"):
        return f"{loc} {err.get('input')!r} is out of range: {BOUNDS.get(loc, msg)}"
    if err["type"] == "literal_error":
        return f"{loc} {err.get('input')!r} is not one of {msg.removeprefix('Input should be ')}"
    return f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg


def parse_recipe(recipe: object, name: str, default_layout: str | None, where: str = "recipe") -> Recipe:
    """The user's recipe as a Recipe, or one ConfigError (one line) naming every field to fix."""
    if not isinstance(recipe, dict):
        raise ConfigError(f"{name}: the {where} must be a mapping of fields, got {recipe!r}; {recipe_help()}")
    try:
        r = UserRecipe.model_validate(recipe)
    except ValidationError as exc:
        problems = "; ".join(dict.fromkeys(_problem(e) for e in exc.errors()))
        fields = any(e["type"] in ("missing", "extra_forbidden") for e in exc.errors())
        raise ConfigError(f"{name}: {where}: {problems}" + (f"; {recipe_help()}" if fields else "")) from None
    layout = r.layout or default_layout
    if layout is None:
        raise ConfigError(f"{name}: {where}: layout is missing (NHWC or NCHW); {recipe_help()}")
    return r.to_recipe(layout)
