"""result_grid.png: every text it draws (full model names, labels only when the run has them), and a render."""

from __future__ import annotations

from PIL import Image

from onnx_search.experiment.report.grid import hit_title, layout, query_title, result_grid, wrap_name

MODELS = ["efficientnet-lite0", "efficientnet-lite0_int8", "torchvision/resnet50"]


def _hits(queries: list[str], labelled: bool) -> list[dict]:
    out = []
    for q in queries:
        for m in MODELS:
            for rank in (1, 2):
                label = ("cats" if rank == 1 else "") if labelled else ""
                out.append({"query": q, "model": m, "rank": rank, "id": rank, "path": f"/p/{m}-{rank}.jpg",
                            "label": label, "cosine": 0.9 - rank / 10})  # fmt: skip
    return out


def _texts(labels: bool, labelled_hits: bool, width_per_char: float = 6.0) -> list[str]:
    queries = ["/p/Camera/IMG_0001.jpg", "/p/WhatsApp Images/IMG-2.jpg"]
    _, _, texts, thumbs = layout(
        _hits(queries, labelled_hits), queries, MODELS, 1, "/p", labels, {queries[0]: "Camera", queries[1]: ""},
        lambda s: len(s) * width_per_char,
    )  # fmt: skip
    assert len(thumbs) == 2 * (1 + len(MODELS))  # top_k = 1: one hit per model per query
    return [t.text for t in texts]


def test_wrap_name_keeps_the_whole_name_in_lines_that_fit():
    assert wrap_name("efficientnet-lite0_int8", 13, len) == ["efficientnet-", "lite0_int8"]
    assert wrap_name("tv/resnet50", 40, len) == ["tv/resnet50"]
    assert wrap_name("abcdefghijk", 4, len) == ["abcd", "efgh", "ijk"]  # no break point: cut where it must be
    for width in (5, 9, 17):
        lines = wrap_name("torchvision/efficientnet_b0.int8", width, len)
        assert "".join(lines) == "torchvision/efficientnet_b0.int8" and all(len(line) <= width for line in lines)


def test_the_grid_names_every_model_in_full_and_shows_no_labels_when_the_run_has_none():
    texts = _texts(labels=False, labelled_hits=False)
    heading = "".join(t for t in texts if not t.startswith(("#", "Q ", "…")))
    for m in MODELS:  # each name whole, in order, wrapped over lines
        assert m in heading
    assert "efficientnet-l #1" not in texts and not any("tv/" in t for t in texts)
    assert not any("[" in t or "]" in t for t in texts)
    assert "Camera" not in texts and "cats" not in texts  # folders are not labels here
    assert texts.count("#1 cos 0.800") == 2 * len(MODELS)
    assert "…Camera/IMG_0001.jpg" in texts and "…pp Images/IMG-2.jpg" in texts  # the end of a long path


def test_labels_appear_only_where_there_is_one_and_never_as_brackets():
    texts = _texts(labels=True, labelled_hits=True)
    assert texts.count("cats") == 2 * len(MODELS)  # every rank-1 hit, labelled
    assert texts.count("Camera") == 1  # the first query's label; the second has none
    assert not any("[" in t or "]" in t for t in texts) and "" not in texts
    assert hit_title({"rank": 2, "cosine": 0.5, "label": ""}, True) == ["#2 cos 0.500"]
    assert hit_title({"rank": 1, "cosine": 0.5, "label": "cats"}, False) == ["#1 cos 0.500"]
    assert query_title("/p/a/b.jpg", "/p", "a", True) == ["Q a/b.jpg", "a"]
    assert query_title("/p/a/b.jpg", "/p", "a", False) == ["Q a/b.jpg"]


def test_result_grid_renders_at_the_size_its_layout_gives(tmp_path):
    img_path = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(img_path)
    queries = [str(img_path)]
    hits = [{"query": str(img_path), "model": m, "rank": r, "id": r, "path": str(img_path), "label": "",
             "cosine": 0.5} for m in MODELS for r in (1, 2)]  # fmt: skip
    out = result_grid(hits, queries, MODELS, 2, tmp_path / "grid.png", str(tmp_path))
    with Image.open(out) as png:
        assert png.size == (112 + 3 * (8 + 2 * 112), png.size[1]) and png.size[1] > 112
