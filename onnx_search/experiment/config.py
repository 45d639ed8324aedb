"""The experiment schema: what a YAML config may say, validated once (pydantic, unknown keys refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..embed.scan import DEFAULT_EXTENSIONS
from ..errors import OnnxSearchError, UnknownModelError
from ..models.user import user_spec
from ..models.zoo import REGISTRY, get_spec, variant_name
from ..store.index import IndexParams, Metric
from ..store.stores import StoreSettings
from .augment import DEFAULT_TRANSFORMS, TRANSFORMS

DEFAULT_QUERY_SAMPLE = 50  # at most this many queries sampled (seeded) when the config names no source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=True)


class ModelEntry(_Strict):
    # the user's own model (no registry line): torch (factory + weights), keras (file) or onnx (a bare file);
    # paths in a user model's entry (file, weights, reads, a bare name.onnx) are taken from the YAML file's folder
    source: Literal["torch", "keras", "onnx"] | None = None
    name: str  # registry name, a path ending .onnx, or the name of the user's own model (with source)
    weights: str = "auto"  # imagenet | random | auto | a weights file; a user torch model: its state dict
    seed: int = 0
    providers: list[str] = Field(default_factory=lambda: ["auto"])
    strict: bool = False
    batch_size: int = Field(32, ge=1, le=4096)
    threads: int = Field(0, ge=0)
    variants: list[Literal["fp32", "fp16", "int8", "optimized"]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    factory: str | None = None  # torch: "package.module:callable" returning the module
    file: str | None = None  # keras: .keras / .h5; onnx: .onnx
    layer: str | None = None  # the layer whose output is the vector (default: the model's output)
    recipe: dict | None = None  # input_size, preprocess, resize, interpolation, layout, crop_pct, mean, std
    reads: list[str] | None = None  # torch: files the factory itself reads (checkpoints), tracked for staleness
    base: str | None = Field(None, exclude=True)  # the YAML file's folder (set by the loader, not written)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        if "source" not in info.data:  # the source itself is wrong: its own error says so, no unrelated one here
            return v
        if info.data["source"] is None and not v.endswith(".onnx"):
            try:
                get_spec(v)
            except UnknownModelError as exc:
                raise ValueError(str(exc)) from None
        return v.lower() if v.lower() in REGISTRY and info.data["source"] is None else v

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_folder(cls, data, info: ValidationInfo):
        """A user model's relative paths are taken from the experiment file's folder (the loader says which)."""
        base = (info.context or {}).get("base")
        if not isinstance(data, dict) or base is None or data.get("source") is None and not data.get("recipe"):
            return data
        data = dict(data, base=str(base))
        here = Path(base)

        def at(v):
            return str(here / Path(v).expanduser()) if isinstance(v, str) and v else v

        if data.get("file"):
            data["file"] = at(data["file"])
        if str(data.get("name", "")).endswith(".onnx"):
            data["name"] = at(data["name"])
        w = data.get("weights")
        if isinstance(w, str) and w not in ("imagenet", "random", "auto", "pretrained"):
            data["weights"] = at(w)
        if isinstance(data.get("reads"), list):
            data["reads"] = [at(r) for r in data["reads"]]
        return data

    @model_validator(mode="after")
    def _registry_or_user(self):
        if self.source is None and self.recipe is not None and self.name.endswith(".onnx"):
            self.source, self.file, self.name = "onnx", self.name, Path(self.name).stem  # a bare file + its recipe
        if self.source is None:
            given = [k for k in ("factory", "file", "layer", "recipe", "reads") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for the user's own model; add source: torch|keras|onnx")
        else:
            if self.source != "torch" and self.weights != "auto":
                raise ValueError(
                    f"{self.name}: weights is for source torch (a state dict); a {self.source} model's weights are "
                    "in its file: drop weights"
                )
            try:
                user_spec(self.name, **self.user)
            except OnnxSearchError as exc:
                raise ValueError(str(exc)) from None
        if (self.name.endswith(".onnx") or self.source) and self.variants != ["fp32"]:
            raise ValueError("variants are made from registry models; convert a variant of a file yourself")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"a variant is listed twice: {self.variants}")
        return self

    @property
    def user(self) -> dict | None:
        """What ``convert_model(user=...)`` needs for the user's own model; None for a registry model or file."""
        if self.source is None:
            return None
        return {"source": self.source, "recipe": self.recipe, "factory": self.factory, "file": self.file,
                "layer": self.layer, "base": self.base, "reads": self.reads}  # fmt: skip

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
    # label = parent folder name; auto: only when the folders look like classes (experiment.survey.folder_labels:
    # leaf folders of 2+ images, none named like a camera, app or date), decided when the run starts
    labels: bool | Literal["auto"] = "auto"


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


class Augment(_Strict):
    """Perturbed copies of sampled dataset images as queries; each copy's original is its one right answer."""

    sample: int = Field(50, ge=1)  # originals sampled (seeded) from the catalogued images
    under: Path | None = None  # only originals under this subfolder of dataset.root (e.g. the real photos)
    seed: int = 0
    transforms: list[str] = Field(default_factory=lambda: list(DEFAULT_TRANSFORMS), min_length=1)

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown transforms {unknown}; known: {', '.join(TRANSFORMS)}")
        if len(set(v)) != len(v):
            raise ValueError(f"a transform is listed twice: {v}")
        return v


class Queries(_Strict):
    """Where queries come from: exactly one source; none given means a seeded sample of the dataset."""

    sample: Annotated[int, Field(ge=1)] | Literal["all"] | None = None  # N images sampled with the seed, or all
    folder: Path | None = None
    paths: list[Path] | None = None
    exclude_self: bool = True
    augment: Augment | None = None  # robustness queries, beside the ones above

    @field_validator("sample", mode="before")
    @classmethod
    def _sample_number_or_all(cls, v):
        if isinstance(v, str) and v != "all":
            raise ValueError(f"{v!r} is neither a number of images nor all; give e.g. 50, or all")
        return v

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


class EngineSection(_Strict):
    """Where embedding runs: ``local`` (threads + one session per model) or ``ray`` (Ray Data actor pools)."""

    type: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: None starts a local cluster on 127.0.0.1; "auto"; "ray://host:10001"
    actors: int = Field(1, ge=1)
    gpus_per_actor: float = Field(0.0, ge=0)

    def ray(self):
        from ..embed.ray_engine import RaySettings

        return RaySettings(self.address, self.actors, self.gpus_per_actor) if self.type == "ray" else None


class CostSection(_Strict):
    """How the cost phase measures speed: on a sample of the dataset, interleaved over models, median of repeats."""

    images: int = Field(16, ge=1, le=4096)
    repeats: int = Field(2, ge=1, le=20)


class GroundTruth(_Strict):
    """Judged relevance: a TREC qrels file (``query_id 0 doc_id relevance``, ids or paths)."""

    qrels: Path  # the loader takes a relative path from the YAML file's folder


class VerdictSection(_Strict):
    """The verdict at the top of summary.md: the primary quality metric and the cost that picks among ties."""

    # auto: nDCG@k on judgments (ground_truth.qrels), P@k on folder labels, MRR@k on copies (queries.augment)
    metric: Literal["auto", "p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k", "recall_at_1", "mrr_at_k"] = "auto"
    cost: Literal["img_per_s", "query_p50", "file_mb"] = "img_per_s"  # model-only img/s, query embed p50, file MB


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
    engine: EngineSection = Field(default_factory=EngineSection)
    ground_truth: GroundTruth | None = None  # judged relevance instead of folder labels
    verdict: VerdictSection = Field(default_factory=VerdictSection)

    @model_validator(mode="after")
    def _verdict_has_ground_truth(self):
        m = self.verdict.metric
        if m in ("recall_at_1", "mrr_at_k") and self.queries.augment is None:
            raise ValueError(f"verdict.metric {m} is measured on copies: add queries.augment, or use metric: auto")
        if m in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k") and not (self.dataset.labels or self.ground_truth):
            raise ValueError(
                f"verdict.metric {m} needs folder labels (dataset.labels: true) or ground_truth.qrels; "
                "or use metric: auto"
            )
        return self

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
