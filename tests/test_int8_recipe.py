"""The INT8 recipe chosen for the CPU that will run it: the choice rule with stubbed CPU flags and stubbed
measurements, the file's identity, and the warning a run gives when a variant's agreement is low."""

import numpy as np
import pytest

from onnx_search.cli import build_parser
from onnx_search.errors import ConfigError
from onnx_search.experiment.lineage import agreement_warnings
from onnx_search.models import int8_recipe as ir
from onnx_search.models import variants
from onnx_search.models.int8_recipe import Candidate, Trial, choose, low_agreement, record, search
from onnx_search.models.variants import _plan, int8_request, variant_file
from onnx_search.photos import available_photos

VNNI = "processor: 0\nmodel name: Intel Xeon Platinum 8375C\nflags: fpu sse avx2 avx512f avx512_vnni\n\n"
AVX2 = "processor: 0\nmodel name: AMD EPYC 7571\nflags: fpu sse avx2 fma\n\n"
THIS_CPU = ir.this_cpu
ARM = "processor: 0\nCPU implementer: 0x41\nCPU part: 0xd0c\nFeatures: fp asimd asimddp\n\n"


def _trial(name: str, mean: float | None, speed: float | None = 2.0) -> Trial:
    a = None if mean is None else {"mean_cosine": mean, "min_cosine": mean - 0.1, "top5_overlap": 0.9, "images": 8}
    return Trial(Candidate(name), a, speed, None if a else "not measured here")


def test_the_fastest_candidate_that_reaches_the_target_is_chosen():
    trials = [_trial("a", 0.96, 2.5), _trial("b", 0.975, 1.8), _trial("c", 0.99, 2.0), _trial("d", 0.99, None)]
    chosen, reached, reason = choose(trials, 0.97)
    assert (chosen.candidate.name, reached, reason) == ("c", True, None)
    # the speed floor: agreement alone does not reach when measured slower than FP32; unmeasured speed passes
    assert not _trial("slow", 0.99, 0.99).reaches(0.97) and _trial("slow", 0.99, 1.0).reaches(0.97)
    assert _trial("x", 0.97, None).reaches(0.97) and not _trial("x", 0.9699, None).reaches(0.97)
    assert choose([_trial("a", 0.96, 2.5), _trial("d", 0.98, None)], 0.97)[0].candidate.name == "d"


def test_when_none_reaches_the_closest_to_fp32_is_kept_with_the_reason():
    trials = [_trial("u8s8", 0.87, 2.2), _trial("rr", 0.936, 2.0), _trial("u8u8", 0.976, 0.5), _trial("s8s8", None)]
    chosen, reached, reason = choose(trials, 0.97)
    assert chosen.candidate.name == "u8u8" and reached is False
    assert "0.97" in reason and "u8s8 0.8700, x2.20" in reason and "kept the closest to FP32, u8u8" in reason
    rec = record(trials, 0.97, "avx2", ir.this_cpu(AVX2, {}), "calibration images")
    assert rec["recipe"] == "u8u8" and rec["reached"] is False and rec["reason"] == reason
    assert rec["agreement"] | {"measured": True, "target": 0.97, "mean_cosine": 0.976} == rec["agreement"]
    assert [c["recipe"] for c in rec["candidates"]] == ["u8s8", "rr", "u8u8", "s8s8"]
    assert rec["chosen_on"]["isa_summary"] == "AVX2, no VNNI" and rec["target_isa"] == "avx2"
    # nothing measured (a target no figure here holds for): the first candidate, unmeasured, with why
    chosen, reached, reason = choose([_trial("u8s8", None), _trial("pct", None)], 0.97)
    assert chosen.candidate.name == "u8s8" and not reached and "not measured here" in reason
    assert record([_trial("u8s8", None)], 0.97, "vnni", ir.this_cpu(AVX2, {}), "x")["agreement"]["measured"] is False


def test_the_search_stops_at_the_first_candidate_that_reaches_the_target():
    seen = []
    figures = {"a": 0.9, "b": 0.98, "c": 0.99}

    def try_one(c):
        seen.append(c.name)
        return _trial(c.name, figures[c.name])

    trials = search(tuple(Candidate(n) for n in figures), try_one, 0.97)
    assert seen == ["a", "b"] and [t.candidate.name for t in trials] == ["a", "b"]


@pytest.mark.parametrize(
    "cpuinfo, features, target",
    [(VNNI, {}, "vnni"), (AVX2, {}, "avx2"), (ARM, {}, "dotprod"),
     # an emulated Haswell on a VNNI host: /proc/cpuinfo shows the host, CPUID the emulated CPU
     (VNNI.replace("avx512_vnni", "avx512_vnni avx_vnni"), {"AVX2": True, "AVX512F": False, "AVX512VNNI": False},
      "avx2")],
)  # fmt: skip
def test_this_cpu_is_read_from_its_flags_and_cpuid(cpuinfo, features, target):
    cpu = ir.this_cpu(cpuinfo, features)
    assert cpu["target_isa"] == target == ir.resolve_target("auto", cpu)
    assert ir.resolve_target("avx2", cpu) == "avx2"
    with pytest.raises(ConfigError, match="unknown INT8 target 'neon'"):
        ir.resolve_target("neon", cpu)


def test_vnni_and_avx2_cpus_choose_different_recipes_where_the_measurements_differ():
    """u8s8 saturates on AVX2 (measured there: mean cosine 0.87), not on VNNI (0.98); the rest do not differ."""
    measured = {"u8s8": {"vnni": 0.981, "avx2": 0.869, "dotprod": 0.98}, "u8s8-reduce-range": 0.936,
                "u8s8-reduce-range-percentile": 0.95, "u8s8-reduce-range-float8": 0.94, "s8s8": 0.96,
                "u8u8": 0.976}  # fmt: skip
    picks = {}
    for text in (VNNI, AVX2, ARM):
        isa = ir.resolve_target("auto", ir.this_cpu(text, {}))

        def try_one(c, isa=isa):
            m = measured[c.name]
            return _trial(c.name, m[isa] if isinstance(m, dict) else m, 1.5)

        cands = ir.candidates("conv", isa)
        picks[isa] = choose(search(cands, try_one, ir.TARGET["conv"]), ir.TARGET["conv"])[0].candidate.name
    assert picks == {"vnni": "u8s8", "avx2": "u8u8", "dotprod": "u8s8"}
    assert ir.candidates("matmul", "avx2")[1].reduce_range and len(ir.candidates("matmul", "vnni")) < 3


def test_only_recipes_that_cannot_saturate_are_exact():
    exact = {c.name for c in ir.candidates("conv", "avx2") if c.exact}
    assert exact == {"u8s8-reduce-range", "u8s8-reduce-range-float8", "u8u8"}


def test_the_identity_changes_with_each_input_of_the_recipe_and_not_with_an_unrelated_one(monkeypatch, tmp_path):
    plain = tmp_path / "efficientnet-lite0.int8.onnx"
    base = {"parent_identity": "p", "variant": "int8", "method": {"int8": "static", "graph": "conv"}}
    listed = ir.CANDIDATES["conv/vnni"]

    def name(isa: str = "vnni", **extra) -> str:
        monkeypatch.setitem(ir.CANDIDATES, "conv/avx2", listed)  # one list for both ISAs: the ISA alone differs
        return variant_file(plain, base | {"int8": int8_request("conv", isa)} | extra).name

    same = name()
    assert name("avx2") != same
    changes = {
        "target": lambda: monkeypatch.setitem(ir.TARGET, "conv", 0.98),
        "speed floor": lambda: monkeypatch.setattr(variants, "MIN_SPEEDUP", 1.2),
        "images measured": lambda: monkeypatch.setattr(variants, "MEASURE_IMAGES", 8),
        "fewer candidates": lambda: monkeypatch.setitem(ir.CANDIDATES, "conv/vnni", listed[:2]),
        "one option": lambda: monkeypatch.setitem(
            ir.CANDIDATES, "conv/vnni", (Candidate("u8s8", calibration="Entropy"), *listed[1:])
        ),
    }
    for what, change in changes.items():
        change()
        assert name() != same, what
        monkeypatch.undo()
    assert name(code="another") == same  # the code fingerprint is not part of the name (it is of the request)


def test_auto_names_the_file_for_this_cpus_isa_and_not_for_the_machine(monkeypatch, trained_dir, tmp_path):
    """The real plan of an INT8 file: auto on a VNNI CPU is the vnni file, whichever VNNI CPU; on AVX2 the avx2 one."""
    photos = [p for _, p in available_photos()][:4]

    def planned(target: str, cpuinfo: str) -> str:
        monkeypatch.setattr(ir, "this_cpu", lambda: THIS_CPU(cpuinfo, {}))
        return _plan("efficientnet-lite0", "int8", trained_dir, photos, 0, None, target)[4].name

    vnni = planned("vnni", VNNI)
    assert planned("auto", VNNI) == vnni == planned("auto", VNNI.replace("Platinum 8375C", "Gold 6338"))
    assert planned("auto", AVX2) == planned("avx2", AVX2) != vnni


def test_agreement_measures_cosine_and_neighbours():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 16)).astype(np.float32)
    same = ir.agreement(a, a * 3.0)
    assert same["mean_cosine"] == pytest.approx(1.0) and same["top5_overlap"] == 1.0 and same["images"] == 12
    b = a.copy()
    b[0] = -b[0]
    moved = ir.agreement(a, b)
    assert moved["min_cosine"] == pytest.approx(-1.0) and moved["mean_cosine"] < 0.9 and moved["top5_overlap"] < 1
    from onnx_search.bench.int8_methods import top_k_agreement

    # the bench's overlap@10 is the same neighbour overlap at k=10: by hand, image by image
    def nn(v, k):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:k]) for row in sim]

    by_hand = np.mean([len(x & y) / 10 for x, y in zip(nn(a, 10), nn(b, 10), strict=True)])
    assert top_k_agreement(a, b) == pytest.approx(by_hand) and top_k_agreement(a, a * 2) == 1.0
    assert top_k_agreement(a, b) != pytest.approx(moved["top5_overlap"])  # k counts: 10, not the agreement's 5


def test_a_run_warns_when_an_int8_variants_agreement_is_below_its_target():
    rec = {"recipe": "u8s8", "target_isa": "vnni", "agreement": {"target": 0.97}}
    line = low_agreement("lite0.int8", 0.9204, rec, 200)
    assert "lite0.int8" in line and "0.9204" in line and "200" in line and "0.97" in line and "vnni" in line
    assert low_agreement("lite0.int8", 0.97, rec, 200) is None
    variants = {"lite0.int8": {"mean_parent_cosine": 0.9, "images": 8, "int8_recipe": rec},
                "lite0.fp16": {"mean_parent_cosine": 0.5, "images": 8},
                "b.int8": {"mean_parent_cosine": 0.99, "images": 8, "int8_recipe": rec}}  # fmt: skip
    assert [w.split(":")[0] for w in agreement_warnings(variants)] == ["lite0.int8"]


def test_convert_takes_an_int8_target():
    parser = build_parser()
    args = parser.parse_args(["convert", "--model", "efficientnet-lite0", "--variant", "int8", "--target", "avx2"])
    assert args.target == "avx2" and parser.parse_args(["convert"]).target == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", "--target", "sse2"])


def test_every_candidate_of_one_build_is_really_made_and_measured_and_calibration_runs_once(monkeypatch, tmp_path):
    """A real search on a small CNN with a target nothing reaches: every candidate for this CPU is quantised by
    onnxruntime and measured, the closest is kept with the reason, and the activation ranges are computed once
    for the whole build (onnxruntime's calibration cache), not once per candidate and per float-node pass."""
    import importlib

    from onnx_search.models.convert import convert_model
    from tests.helpers import photo

    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")  # the module, not its function
    calibrations = []
    real = ort_quantize.create_calibrator
    monkeypatch.setattr(ort_quantize, "create_calibrator", lambda *a, **k: calibrations.append(1) or real(*a, **k))
    monkeypatch.setitem(variants.TARGET, "conv", 1.01)  # out of reach: the whole list is tried
    calib = []
    for i in range(8):
        photo(i, (96, 96)).save(tmp_path / f"c{i}.png")
        calib.append(tmp_path / f"c{i}.png")
    convert_model("timm/test_efficientnet", tmp_path / "m", weights="random", seed=0)
    r = variants.make_variant("timm/test_efficientnet", "int8", tmp_path / "m", calibration=calib)
    rec = r.metadata["int8_recipe"]
    tried = [c["recipe"] for c in rec["candidates"]]
    assert tried == [c.name for c in ir.candidates("conv", THIS_CPU()["target_isa"])]
    assert all(c["agreement"]["mean_cosine"] > 0 and c["speedup"] > 0 for c in rec["candidates"]), rec
    best = max(rec["candidates"], key=lambda c: c["agreement"]["mean_cosine"])
    assert (rec["recipe"], rec["reached"]) == (best["recipe"], False) and "no candidate reaches" in rec["reason"]
    assert len(calibrations) == 1, f"calibrated {len(calibrations)} times for {len(tried)} candidates"
    assert sorted(p.name for p in r.path.parent.iterdir() if "int8" in p.name) == [r.path.name]  # no leftovers


def test_the_int8_bench_shows_every_recipe_and_marks_the_one_the_tool_keeps(monkeypatch, tmp_path):
    """bench int8_methods: a row per candidate of both methods (static, dynamic) for this CPU beside FP32, each
    with its agreement on the images; `chosen` is the recipe the tool's own search keeps; no speed when emulated."""
    from onnx_search.bench.int8_methods import BAR, compare_int8_methods
    from onnx_search.models.convert import convert_model
    from tests.helpers import photo

    images = []
    for i in range(10):
        photo(i, (96, 96)).save(tmp_path / f"c{i}.png")
        images.append(tmp_path / f"c{i}.png")
    convert_model("timm/test_efficientnet", tmp_path / "m", weights="random", seed=0)
    isa = THIS_CPU()["target_isa"]
    r = compare_int8_methods(tmp_path / "m", "timm/test_efficientnet", images, tmp_path / "w", reps=1, timed=False)
    rows = r["recipes"]
    assert [(x["quantisation"], x["recipe"]) for x in rows] == [("fp32", "fp32")] + [
        (m, c.name) for m, kind in (("static", "conv"), ("dynamic", "matmul")) for c in ir.candidates(kind, isa)
    ]
    assert rows[0]["mean_cosine"] == pytest.approx(1.0) and rows[0]["meets_bar"] is None
    for method in ("static", "dynamic"):  # one row kept per method: the search's pick, recorded in the summary
        kept = [x["recipe"] for x in rows if x["quantisation"] == method and x["chosen"]]
        searched = r["summary"]["chosen"][method]["recipe"]
        assert kept == [searched], (method, kept, searched)
    assert all(x["img_per_s"] is None and x["speedup_over_fp32"] is x["speedup_95ci"] is None for x in rows)
    assert rows[0]["mean_cosine_95ci"] is rows[0]["top5_overlap_95ci"] is rows[0]["meets_bar_at_95_lower_bounds"]
    for x in rows[1:]:  # every agreement figure has its interval over the images, around the figure
        for fig, ci in (("mean_cosine", "mean_cosine_95ci"), ("top5_overlap", "top5_overlap_95ci")):
            assert len(x[ci]) == 2 and x[ci][0] <= x[fig] <= x[ci][1], (fig, x)
        sure = x["mean_cosine_95ci"][0] >= BAR["mean_cosine"] and x["top5_overlap_95ci"][0] >= BAR["top5_overlap"]
        assert x["meets_bar_at_95_lower_bounds"] is (None if sure else False), x
    assert any(x["top5_overlap_95ci"][0] < x["top5_overlap_95ci"][1] for x in rows[1:])  # not all zero-width
    from onnx_search.bench.int8_methods import _speed
    from onnx_search.models.session import ModelSession, SessionConfig

    parent = ModelSession(tmp_path / "m" / "timm" / "test_efficientnet.onnx", SessionConfig(["cpu"]))
    timed = _speed({"fp32": parent, "same": parent}, np.zeros((2, 3, 160, 160), np.float32) + 0.1, reps=3)
    low, high = timed["same"]["speedup_95ci"]
    assert low <= timed["same"]["speedup_over_fp32"] <= high and timed["fp32"]["speedup_95ci"] is None
    for x in rows[1:]:  # quality below the bar is False whatever the speed; above it, unknown without a speed
        good = x["mean_cosine"] >= BAR["mean_cosine"] and x["top5_overlap"] >= BAR["top5_overlap"]
        assert x["meets_bar"] is (None if good else False), x


def test_the_int8_bar_needs_each_of_cosine_top5_and_speed():
    """The bench's bar: each of its three parts alone can fail a recipe; without a timed speed the answer is open."""
    from onnx_search.bench.int8_methods import BAR, _bar

    cos, top5, fast = BAR["mean_cosine"], BAR["top5_overlap"], BAR["speedup_over_fp32"]
    assert _bar(cos, top5, fast) is True  # the bar itself is met (>=)
    assert _bar(cos - 1e-4, top5, fast) is False
    assert _bar(cos, top5 - 1e-3, fast) is False
    assert _bar(cos, top5, fast - 1e-3) is False
    assert _bar(cos, top5, None) is None and _bar(cos - 1e-4, top5, None) is False
