"""Comparison across families: each model's family is read from its recipe metadata (source, builder, pooling),
and a run's summary and HTML model table group the models by family with dimension, vector source and cost."""

import json
import re
import textwrap

from onnx_search.models.convert import convert_model
from onnx_search.models.family import family
from onnx_search.models.zoo import get_spec
from tests.helpers import foreign_model

RECIPE = {"input_size": 32, "preprocess": "raw", "layout": "NHWC"}


def _meta(name: str, pooling: str | None = None) -> dict:
    spec = get_spec(name)
    return spec.recipe_metadata(name, spec.source, "random") | ({"pooling": pooling} if pooling else {})


def test_registry_models_fall_into_their_families():
    expected = {
        "resnet50": "CNN", "torchvision/vgg16": "CNN", "efficientnet-lite0": "CNN", "convnext-tiny": "CNN",
        "dinov2-vits14": "ViT self-supervised", "clip-vitb16": "CLIP/SigLIP contrastive",
        "siglip-vitb16": "CLIP/SigLIP contrastive", "timm/vit_base_patch16_224": "ViT supervised",
    }  # fmt: skip
    # the pooling as the conversion records it (timm reads it from the model as created)
    pooling = {"dinov2-vits14": "token", "clip-vitb16": "token", "siglip-vitb16": "map"}
    assert {n: family(_meta(n, pooling.get(n))) for n in expected} == expected
    assert family({"source": "user-torch", "builder": "my.vit:make", "pooling": "output"}) == "user model"
    assert family({}) == "unknown"


def test_a_run_groups_its_models_by_family_with_dim_vector_and_cost(tmp_path, labelled_set, redis_url):
    models = tmp_path / "models"
    vit = convert_model("timm/test_vit", models, weights="random", seed=1).path
    cnn = convert_model("timm/test_efficientnet", models, weights="random", seed=1).path
    bare = foreign_model(tmp_path / "bare.onnx", 32)
    cfg = tmp_path / "families.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        experiment: fam
        output: {tmp_path / "runs"}
        data_dir: {tmp_path / "data"}
        models_dir: {models}
        top_k: 3
        dataset: {{root: {labelled_set}}}
        models:
          - {{name: {bare}, recipe: {json.dumps(RECIPE)}, providers: [cpu]}}
          - {{name: {vit}, providers: [cpu]}}
          - {{name: {cnn}, providers: [cpu]}}
        store: {{redis_url: "{redis_url}", namespace: fam}}
        queries: {{sample: 2}}
        cost: {{images: 4, repeats: 1}}
        """)
    )
    from onnx_search.experiment.run import run_experiment

    run_experiment(cfg, progress=False)
    run = tmp_path / "runs" / "fam"
    fams = json.loads((run / "results.json").read_text())["families"]
    assert {n: (f["family"], f["vector"]) for n, f in fams.items()} == {
        "bare": ("user model", "the model's output"),
        "test_vit": ("ViT supervised", "CLS token"),
        "test_efficientnet": ("CNN", "global average pool"),
    }
    md = (run / "summary.md").read_text()
    table = md.split("## Models by family")[1].split("\n## ")[0]
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in table.strip().splitlines()[2:]]
    # grouped CNN, ViT, user model (not in the config's order), each with its dim and a measured speed
    assert [(r[0], r[1]) for r in rows] == [("CNN", "test_efficientnet"), ("ViT supervised", "test_vit"),
                                            ("user model", "bare")]  # fmt: skip
    assert [int(r[2]) for r in rows] == [fams[r[1]]["dim"] for r in rows] and rows[2][2] == "3"
    assert all(float(r[6]) > 0 for r in rows)
    html = (run / "report.html").read_text()
    models_table = html.split("<h2>Models</h2>")[1].split("</table>")[0]
    assert "<th>family</th><th>dim</th><th>vector</th>" in models_table
    cells = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", models_table)
    assert cells == [("test_efficientnet", "CNN"), ("test_vit", "ViT supervised"), ("bare", "user model")]
