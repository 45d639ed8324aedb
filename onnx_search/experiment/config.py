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
    """One model to compare: a registry model, a .onnx file, or your own model (``source``). Paths in your own
    model's entry (file, weights, reads, a bare name.onnx) are taken from the YAML file's folder."""

    source: Literal["torch", "keras", "onnx"] | None = Field(
        None,
        description="your own model (no registry line): torch (factory + weights), keras (file) or onnx (file); "
        "empty for a registry model or a .onnx path in name",
    )
    name: str = Field(description="a registry name, a path ending .onnx, or the name of your own model (with source)")
    weights: str = Field(
        "auto",
        description="imagenet, random, auto (imagenet when it can be had, else random, said in the output) or a "
        "weights file; your own torch model: its state dict",
    )
    seed: int = Field(0, description="seed of the weights when they are random")
    providers: list[str] = Field(
        default_factory=lambda: ["auto"],
        description="onnxruntime execution providers, in order of preference: auto, tensorrt, cuda, cpu",
    )
    strict: bool = Field(False, description="fail when a requested provider does not load (else fall back to CPU)")
    batch_size: int = Field(32, ge=1, le=4096, description="images per inference batch")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0: one per core)")
    variants: list[Literal["fp32", "fp16", "int8", "optimized"]] = Field(
        default_factory=lambda: ["fp32"],
        min_length=1,
        description="deployment variants compared as models of their own: NAME (fp32), NAME.fp16, NAME.int8, "
        "NAME.optimized (registry models only)",
    )
    int8_target: Literal["auto", "avx2", "vnni"] = Field(
        "auto",
        description="the CPU an int8 variant is made for, whose kernels decide its recipe: auto (the CPU that "
        "runs the experiment), avx2 (x86 without VNNI) or vnni",
    )
    factory: str | None = Field(None, description='torch: "package.module:callable" returning the module')
    file: str | None = Field(None, description="keras: the .keras or .h5 file; onnx: the .onnx file")
    layer: str | None = Field(None, description="the layer whose output is the vector (default: the model's output)")
    recipe: dict | None = Field(
        None,
        description="your own model's preprocessing: input_size, preprocess, resize, interpolation, layout, "
        "crop_pct, mean, std",
    )
    reads: list[str] | None = Field(
        None,
        description="torch: files the factory itself reads (checkpoints), hashed so that a change converts again",
    )
    base: str | None = Field(
        None, exclude=True, description="set by the loader to the YAML file's folder; not written in a file"
    )

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
    """The images searched: every image file under one folder."""

    root: Path = Field(description="the folder of images (searched recursively)")
    extensions: list[str] = Field(
        default_factory=lambda: [e.lstrip(".") for e in DEFAULT_EXTENSIONS],
        description="image file extensions catalogued (case-insensitive)",
    )
    # decided by experiment.survey.folder_labels when the run starts
    labels: bool | Literal["auto"] = Field(
        "auto",
        description="label each image by its parent folder's name (true), or not (false); auto: only when the "
        "folders look like classes (leaf folders of 2+ images, none named like a camera, app or date)",
    )


class MilvusSection(_Strict):
    """The Milvus that holds the vectors: a server, or Milvus Lite under data_dir."""

    uri: str | None = Field(
        None, description="a Milvus server, e.g. http://host:19530; empty: Milvus Lite under data_dir"
    )
    token: str | None = Field(None, description="the server's token (or user:password)")
    user: str | None = Field(None, description="the server's user name")
    password: str | None = Field(None, description="the server's password (use ${VAR} to keep it out of the file)")


class Store(_Strict):
    """Where the vectors (Milvus, one collection per model) and the catalogue (Redis) live."""

    milvus: MilvusSection = Field(default_factory=MilvusSection, description="the Milvus that holds the vectors")
    redis_url: str | None = Field(
        None, description="redis:// or rediss:// URL of the catalogue; empty: a local redis-server under data_dir"
    )
    namespace: str | None = Field(
        None, description="Redis key prefix and Milvus collection prefix (default: one of the experiment's own)"
    )
    metric: Metric = Field(Metric.COSINE, description="vector distance of the collections")
    index: IndexParams = Field(
        default_factory=IndexParams, description="the index the results come from (default: FLAT, exact search)"
    )

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

    sample: int = Field(50, ge=1, description="originals sampled (seeded) from the catalogued images")
    under: Path | None = Field(
        None, description="only originals under this subfolder of dataset.root (e.g. the real photos)"
    )
    seed: int = Field(0, description="seed of the sample and of the perturbations")
    transforms: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRANSFORMS),
        min_length=1,
        description=f"the perturbations, one copy each per original; known: {', '.join(TRANSFORMS)}",
    )

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

    sample: Annotated[int, Field(ge=1)] | Literal["all"] | None = Field(
        None, description=f"N dataset images sampled with the seed, or all (default: {DEFAULT_QUERY_SAMPLE})"
    )
    folder: Path | None = Field(None, description="query with every image in this folder")
    paths: list[Path] | None = Field(None, description="query with these image files")
    exclude_self: bool = Field(True, description="leave a query image that is in the dataset out of its own hits")
    augment: Augment | None = Field(None, description="robustness queries (perturbed copies), beside the ones above")

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

    type: Literal["local", "ray"] = Field("local", description="where embedding runs")
    address: str | None = Field(
        None, description='ray: empty starts a local cluster on 127.0.0.1; "auto"; "ray://host:10001"'
    )
    actors: int = Field(1, ge=1, description="ray: actors per model")
    gpus_per_actor: float = Field(0.0, ge=0, description="ray: GPUs each actor reserves")

    def ray(self):
        from ..embed.ray_engine import RaySettings

        return RaySettings(self.address, self.actors, self.gpus_per_actor) if self.type == "ray" else None


class CostSection(_Strict):
    """How the cost phase measures speed: on a sample of the dataset, interleaved over models, median of repeats."""

    images: int = Field(16, ge=1, le=4096, description="dataset images timed per model")
    repeats: int = Field(2, ge=1, le=20, description="timed passes per model; the median is reported")


class GroundTruth(_Strict):
    """Judged relevance: a TREC qrels file (``query_id 0 doc_id relevance``, ids or paths)."""

    qrels: Path = Field(description="the qrels file; a relative path is taken from the YAML file's folder")


class JudgingSection(_Strict):
    """How relevance is judged in the explorer and checked on import: the grades a judge may give."""

    max_grade: int = Field(
        1,
        ge=1,
        le=3,
        description="the highest grade: 1 = binary (0 not relevant, 1 relevant); 2 or 3 = graded 0..max_grade, "
        "nDCG's gain is the grade",
    )


class VerdictSection(_Strict):
    """The verdict at the top of summary.md: the primary quality metric and the cost that picks within the top
    group."""

    metric: Literal["auto", "p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k", "recall_at_1", "mrr_at_k"] = Field(
        "auto",
        description="the primary quality metric; auto: nDCG@k on judgments (ground_truth.qrels), else P@k on "
        "folder labels, else MRR@k on copies (queries.augment)",
    )
    cost: Literal["img_per_s", "query_p50", "file_mb"] = Field(
        "img_per_s",
        description="the cost that picks within the top group (the models no other model beats significantly): "
        "model-only images/s, query embedding p50, or file MB",
    )


class Experiment(_Strict):
    """One experiment file: the images, the models compared, the stores, the queries and how to judge them."""

    experiment: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the experiment's name: it names the run folder, the data folder and the store namespace",
    )
    output: Path = Field(Path("runs"), description="the run folder is <output>/<experiment>")
    data_dir: Path | None = Field(None, description="where the embedded stores live (default: data/<experiment>)")
    models_dir: Path = Field(Path("models"), description="where converted .onnx models are kept")
    seed: int = Field(0, description="seed of the run's random choices: query sample, calibration images, resampling")
    top_k: int = Field(10, ge=1, le=1000, description="hits per query and model: the k of every @k metric")
    judged_depth: int = Field(
        100,
        ge=0,
        le=10000,
        description="each query's ranking is kept this deep (top_k if larger) in results.json: judged metrics fill "
        "their top k from judged images found below rank k (trec_eval -J over a deep run), and `compare --qrels` "
        "scores later judgments on it; 0: keep the top k only",
    )
    dataset: Dataset = Field(description="the images searched")
    models: list[ModelEntry] = Field(min_length=1, description="the models compared")
    store: Store = Field(default_factory=Store, description="where the vectors and the catalogue live")
    queries: Queries = Field(default_factory=Queries, description="where the queries come from")
    sweep: list[IndexParams] = Field(
        default_factory=list, description="extra indexes (IVF_FLAT, HNSW) to compare with exact search"
    )
    grid_queries: int = Field(8, ge=0, description="queries shown in the report's result grid")
    cost: CostSection | None = Field(
        default_factory=CostSection, description="how speed is measured; null: no speed measurements"
    )
    engine: EngineSection = Field(default_factory=EngineSection, description="where embedding runs")
    ground_truth: GroundTruth | None = Field(None, description="judged relevance instead of folder labels")
    judging: JudgingSection = Field(
        default_factory=JudgingSection, description="how judgments are made: binary or graded relevance"
    )
    verdict: VerdictSection = Field(default_factory=VerdictSection, description="how the verdict is reached")

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
