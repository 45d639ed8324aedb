"""The quality/speed Pareto frontier (experiment/cost.py) on points whose frontier is known."""

from onnx_search.experiment.cost import pareto


def test_a_point_beaten_on_both_axes_is_off_the_frontier():
    assert pareto({"slow_bad": (1.0, 0.5), "fast_good": (2.0, 0.9)}) == ["fast_good"]


def test_a_trade_off_keeps_both_and_drops_what_either_beats():
    pts = {"fast": (100.0, 0.6), "accurate": (10.0, 0.9), "middle": (50.0, 0.7), "worse": (40.0, 0.65)}
    assert pareto(pts) == ["accurate", "fast", "middle"]  # worse: middle is faster and better


def test_equal_on_one_axis_and_better_on_the_other_dominates():
    assert pareto({"a": (5.0, 0.8), "b": (5.0, 0.7)}) == ["a"]  # same speed, a better
    assert pareto({"a": (5.0, 0.8), "b": (4.0, 0.8)}) == ["a"]  # same quality, a faster


def test_identical_points_are_both_on_the_frontier():
    assert pareto({"x": (3.0, 0.5), "y": (3.0, 0.5), "z": (1.0, 0.4)}) == ["x", "y"]


def test_one_point_and_no_points():
    assert pareto({"only": (0.0, 0.0)}) == ["only"] and pareto({}) == []
