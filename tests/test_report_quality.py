"""The report's robustness and variant sections show the run's own figures (hand-made results)."""

import re

from onnx_search.experiment.report.html_quality import robustness_html, variants_html


def _cell(value) -> dict:
    return {"recall_at_1": value, "mrr_at_k": value}


def test_robustness_table_has_each_models_recall_per_transform_and_marks_random_weights():
    results = {
        "random_weights": ["rand"],
        "robustness": {
            "transforms": ["crop", "hflip"],
            "originals": 3,
            "seed": 0,
            "per_model": {
                "trained": {"transforms": {"crop": _cell(1.0), "hflip": _cell(0.667)}, "mean": _cell(0.8333)},
                "rand": {"transforms": {"crop": _cell(0.333), "hflip": _cell(0.0)}, "mean": _cell(0.1667)},
            },
        },
    }
    html = robustness_html(results)
    rows = {r.split("</td>")[0]: r for r in re.findall(r"<tr><td>(.*?)</tr>", html)}
    assert re.findall(r">([0-9.]+)<", rows["trained"])[:3] == ["1.00", "0.67", "0.833"]
    assert "random weights" in rows["rand <span class='meta'>(random weights)</span>"]
    assert "3 originals × 2 transforms" in html
    assert robustness_html({"robustness": None}) == ""


def test_variant_rows_give_agreement_and_speed_and_size_against_the_parent():
    results = {"variants": {"m.int8": {"parent": "m", "overlap_at_k": 0.9, "rbo": 0.85, "mean_parent_cosine": 0.98,
                                        "min_parent_cosine": 0.9}}}  # fmt: skip
    comparison = {
        "cost": {"models": {"m": {"img_per_s_model_only": 20.0, "file_mb": 12.0},
                            "m.int8": {"img_per_s_model_only": 50.0, "file_mb": 3.0}}},
        "summary": {"models": {"m": {"p_at_k": 0.95}, "m.int8": {"p_at_k": 0.9}}},
    }  # fmt: skip
    html = variants_html(results, comparison)
    assert "×2.50" in html and "3.0 / 12.0 MB" in html and "<td>0.900</td><td>0.950</td>" in html and "0.9800" in html
    assert variants_html({"variants": {}}, comparison) == ""
