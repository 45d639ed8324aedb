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


def test_with_a_test_a_model_is_dominated_only_by_a_faster_and_significantly_better_one():
    pts = {"lite0": (100.0, 0.95), "int8": (350.0, 0.93), "resnet": (40.0, 0.60), "noise": (90.0, 0.94)}
    wins = {("lite0", "resnet"), ("int8", "resnet"), ("noise", "resnet")}  # the paired tests' significant wins

    def better(a, b):
        return (a, b) in wins

    assert pareto(pts) == ["int8", "lite0"]  # point-wise: int8 is faster, lite0 better, noise beaten by lite0
    # with the test: lite0's 0.01 over noise and int8's speed over a tie dominate nothing; resnet is beaten
    assert pareto(pts, better) == ["int8", "lite0", "noise"]
    assert pareto({"a": (5.0, 0.9), "b": (5.0, 0.5)}, lambda x, y: (x, y) == ("a", "b")) == ["a"]  # same speed
    assert pareto({"slow": (1.0, 0.9), "fast": (9.0, 0.5)}, lambda x, y: (x, y) == ("slow", "fast")) == [
        "fast", "slow"]  # fmt: skip
