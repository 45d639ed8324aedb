"""The generated reference pages (docs/reference/...) match the code, describe every configuration field, and the
published JSON Schema accepts the shipped experiment files and refuses what the loader refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, Field

from onnx_search.cli import docsgen
from onnx_search.experiment.config import Experiment
from onnx_search.experiment.loader import _ENV, _interpolate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_generated_pages_are_up_to_date():
    stale = docsgen.stale_pages()
    assert stale == [], f"regenerate with `python -m onnx_search.cli.docsgen`: {stale}"
    assert docsgen.main(["--check"]) == 0
    paths = [rel for rel, _ in docsgen.PAGES]
    assert {
        "docs/reference/cli.md",
        "docs/reference/configuration.md",
        "docs/reference/experiment.schema.json",
        "docs/reference/models.md",
    } <= set(paths)
    assert len(paths) == len(set(paths))


def test_check_names_a_stale_or_missing_page(tmp_path, capsys):
    assert docsgen.write_pages(tmp_path) == [rel for rel, _ in docsgen.PAGES]  # all written into an empty root
    assert docsgen.write_pages(tmp_path) == []  # a rerun rewrites nothing
    assert docsgen.stale_pages(tmp_path) == []
    cli = tmp_path / "docs/reference/cli.md"
    cli.write_text(cli.read_text() + "hand edit\n")
    (tmp_path / "docs/reference/models.md").unlink()
    assert docsgen.stale_pages(tmp_path) == ["docs/reference/cli.md", "docs/reference/models.md"]


def test_pages_are_deterministic(monkeypatch):
    """Nothing from the terminal, the folder or the machine: a narrow terminal elsewhere gives the same text."""
    first = {rel: make() for rel, make in docsgen.PAGES}
    monkeypatch.setenv("COLUMNS", "37")
    monkeypatch.chdir("/")
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert {rel: make() for rel, make in docsgen.PAGES} == first
    text = "".join(first.values())
    assert str(ROOT) not in text and str(Path.home()) not in text
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text)  # no date


def test_cli_page_documents_every_command_and_argument():
    from onnx_search.cli import build_parser

    page = (ROOT / "docs/reference/cli.md").read_text()
    parser = build_parser()
    commands = [a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)][0].choices
    for name, sub in commands.items():
        assert f"## onnx-search {name}\n" in page
        for action in sub._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert f"`{opt}" in page
    assert "#### onnx-search judgments export\n" in page and "#### onnx-search judgments import\n" in page
    assert "- `--top-k TOP_K`: hits per model and query (default: 10)" in page  # the help says the default
    assert "- `--seed SEED` (default: `0`): seed for --weights random" in page  # the page adds it
    assert "- `--index INDEX` (one of `FLAT`, `IVF_FLAT`, `HNSW`): Milvus index type" in page


def _section(page: str, model: str) -> str:
    return page.split(f"\n## {model}\n", 1)[1].split("\n## ", 1)[0]


def test_configuration_reference_names_every_field_with_its_description():
    assert docsgen.undescribed_fields() == []
    page = (ROOT / "docs/reference/configuration.md").read_text()
    sections = docsgen._sections(Experiment)
    assert {m.__name__ for m, _ in sections} >= {"Experiment", "ModelEntry", "Dataset", "Store", "IndexParams"}
    for model, _paths in sections:
        body = _section(page, model.__name__)
        for name, field in model.model_fields.items():
            row = next((line for line in body.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, f"{model.__name__}.{name} is not in configuration.md"
            assert docsgen._md(field.description) in row
    assert "| `top_k` | integer (≥ 1, ≤ 1000) | `10` |" in _section(page, "Experiment")
    assert "At `store.index`, `sweep[]`." in _section(page, "IndexParams")


def test_a_field_without_description_is_named():
    class Inner(BaseModel):
        said: int = Field(1, description="described")
        unsaid: int = 2

    class Outer(BaseModel):
        inner: list[Inner] = Field(default_factory=list, description="nested")
        bare: str = ""

    assert docsgen.undescribed_fields(Outer) == ["Outer.bare", "Inner.unsaid"]


def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "docs/reference/experiment.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_schema_accepts_every_shipped_config(path, monkeypatch):
    text = path.read_text()
    for var in {m.group(1) for m in _ENV.finditer(text)}:
        monkeypatch.delenv(var, raising=False)  # each ${VAR:-default} takes its default
    data = _interpolate(yaml.safe_load(text), [])
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _schema_validator().iter_errors(data)]
    assert errors == []
    Experiment.model_validate(data)  # and the loader's own model agrees


def test_schema_refuses_what_the_loader_refuses():
    validator = _schema_validator()
    good = {"experiment": "x", "dataset": {"root": "photos"}, "models": [{"name": "resnet50"}]}
    assert list(validator.iter_errors(good)) == []
    bad = [
        {**good, "datset": {"root": "photos"}},  # an unknown key
        {**good, "top_k": 0},  # below its minimum
        {**good, "models": []},  # no model
        {**good, "store": {"index": {"type": "ANNOY"}}},  # an unknown index type
        {**good, "dataset": {"root": "photos", "labels": "maybe"}},  # neither a boolean nor auto
        {k: v for k, v in good.items() if k != "dataset"},  # a required section missing
    ]
    for data in bad:
        assert list(validator.iter_errors(data)), data
        with pytest.raises(ValueError):
            Experiment.model_validate(data)


def test_schema_page_is_the_models_schema():
    on_disk = json.loads((ROOT / "docs/reference/experiment.schema.json").read_text())
    assert on_disk["properties"] == Experiment.model_json_schema()["properties"]
    assert (ROOT / "docs/reference/experiment.schema.json").read_text().endswith("}\n")
    assert "yaml-language-server: $schema=" in (ROOT / "docs/reference/configuration.md").read_text()
