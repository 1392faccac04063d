"""The objectives study: a tiny run of it through the command line, the frontier and dominated areas it
scores curves by, and its recipes and overrides."""

import json
import math

import pytest

from seqgen.cli import main
from seqgen.errors import UserError
from seqgen.experiments import objectives
from seqgen.experiments.objectives import METHODS, ORACLE, SIZES, _Plan, run_objectives
from seqgen.experiments.recipes import group_overrides
from seqgen.metrics.frontier import dominated_beyond, lower_envelope


def test_tiny_study_measures_every_method_against_tempered_teacher_forcing(tmp_path, capsys):
    out = tmp_path / "objectives"
    main(["experiment", "objectives", "--out", str(out), "--size", "tiny"])
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert (out / "objectives.png").stat().st_size > 0
    names = {m.name for m in METHODS}
    assert {"teacher_forcing_continued", "scheduled_sampling", "js_pi_adversarial", "dft", "mixce", "tailr", "teacher_js_pi0.1",
            "teacher_js_pi0.5", "teacher_js_pi0.9"} == names
    assert [m["method"] for m in results["methods"]] == [m.name for m in METHODS]
    runs = [results["teacher_forcing"], *results["runs"]]
    assert {r["method"] for r in results["runs"]} == names
    assert len(results["runs"]) == len(METHODS) * len(SIZES["tiny"].seeds)
    for r in runs:
        for key in ("kl_p_q", "kl_q_p", "tv_p_q", "js_half"):
            assert math.isfinite(r[key]) and r[key] >= -1e-9, (r["name"], key, r[key])
        assert r["js_half"] <= math.log(2) + 1e-9 and r["tv_p_q"] <= 1 + 1e-9
        distance = r["distance_to_tf_curve"]
        assert r["beats_tempering"] == (distance is None or distance < -objectives.TOLERANCE)
        assert (out / "toy" / r["name"] / "model").is_dir()
        assert r["area_gain"] >= 0 and r["area_loss"] >= 0
        (own,) = [c for c in r["curve"] if c["alpha"] == 1.0]  # each model's curve passes through its point
        assert own["kl_p_q"] == pytest.approx(r["kl_p_q"], abs=1e-6)
    # each method's run started from teacher forcing's model
    for r in results["runs"]:
        recipe = (out / "toy" / r["name"] / "recipe.yaml").read_text(encoding="utf-8")
        assert str(out / "toy" / "teacher_forcing") in recipe
    # tempering by α = 1 is teacher forcing itself, which is on its own curve
    tf = results["teacher_forcing"]
    (one,) = [c for c in results["tf_curve"] if c["alpha"] == 1.0]
    for key in ("kl_p_q", "kl_q_p", "tv_p_q", "js_half"):
        assert one[key] == pytest.approx(tf[key], abs=1e-6)
    # teacher forcing is never below its own curve (tempering it slightly may improve both KLs, though), and
    # its curve dominates nothing beyond itself
    assert tf["distance_to_tf_curve"] >= -objectives.TOLERANCE and not tf["beats_tempering"]
    assert tf["area_gain"] == 0 and tf["area_loss"] == 0
    # the oracle step: every method once, each swept, teacher forcing's point on its own curve
    oracle = results["oracle"]
    assert [r["method"] for r in oracle["runs"]] == [m.name for m in METHODS]
    for r in [oracle["teacher_forcing"], *oracle["runs"]]:
        assert [c["alpha"] for c in r["curve"]] == list(objectives.ORACLE_ALPHAS)
        assert math.isfinite(r["nll_oracle"]) and math.isfinite(r["nll_test"])
        assert (out / "oracle" / r["name"] / "model").is_dir()
    assert oracle["teacher_forcing"]["distance_to_tf_curve"] >= -objectives.TOLERANCE
    assert oracle["teacher_forcing"]["area_gain"] == oracle["teacher_forcing"]["area_loss"] == 0
    assert (out / "objectives_oracle.png").stat().st_size > 0
    # the verdict is computed from the numbers: it names the methods below the curve in every seed, or none
    beating = [m for m in results["methods"] if m["beats_tempering"]]
    verdict = results["verdict"]
    if beating:
        assert verdict.startswith("Beating tempered teacher forcing")
        assert all(f"`{m['method']}`" in verdict.split(": no inverse temperature")[0] for m in beating)
    else:
        assert verdict.startswith("No method beats tempering")
    report = (out / "report.md").read_text(encoding="utf-8")
    assert verdict in report and verdict in printed
    assert "![objectives](objectives.png)" in report and "(objectives_oracle.png)" in report
    assert "## The oracle LSTM" in report
    for m in METHODS:
        assert f"(`{m.name}`)" in report
    # the folder is not overwritten without --overwrite
    with pytest.raises(UserError, match="not empty"):
        run_objectives(out, size="tiny")


def test_lower_envelope_is_the_best_coverage_a_curve_reaches_at_no_worse_quality():
    curve = [(3.0, 1.0), (2.0, 0.5), (1.0, 2.0)]  # (quality cost, coverage cost) in α order
    assert lower_envelope(curve, 0.5) is None  # no temperature is that good in quality
    assert lower_envelope(curve, 1.0) == pytest.approx(2.0)
    assert lower_envelope(curve, 1.5) == pytest.approx(1.25)  # on the segment from α = 2 to α = 1
    assert lower_envelope(curve, 2.0) == pytest.approx(0.5)
    assert lower_envelope(curve, 2.5) == pytest.approx(0.5)  # α = 1 is better on both than the segment's points


def test_dominated_areas_by_hand():
    box = (2.0, 2.0)
    # a point dominates the rectangle up to the corner: (0, 0) the whole 2 × 2 box, (1, 1) a 1 × 1 corner
    assert dominated_beyond([(0.0, 0.0)], [(1.0, 1.0)], box) == pytest.approx((3.0, 0.0), abs=1e-3)
    assert dominated_beyond([(1.0, 1.0)], [(0.0, 0.0)], box) == pytest.approx((0.0, 3.0), abs=1e-3)
    # the segment from (0, 1) to (1, 0) dominates 4 - 1/2 of the box, the point (1, 1) 1 of it, inside the segment's
    assert dominated_beyond([(0.0, 1.0), (1.0, 0.0)], [(1.0, 1.0)], box) == pytest.approx((2.5, 0.0), abs=1e-3)
    # crossing curves, the segment (0, 1.5)-(1.5, 0) against the point (0.5, 0.5): the segment gains
    # ∫_0^0.5 (0.5 + x) + ∫_1^1.5 (x - 1) + 0.5 × 0.5 = 0.375 + 0.125 + 0.25 and loses ∫_0.5^1 (1 - x) = 0.125;
    # the net is the difference of the dominated areas, 2.875 - 2.25
    gain, loss = dominated_beyond([(0.0, 1.5), (1.5, 0.0)], [(0.5, 0.5)], box)
    assert (gain, loss) == pytest.approx((0.75, 0.125), abs=1e-3)
    # identical curves: nothing either way
    assert dominated_beyond([(0.0, 1.0), (1.0, 0.0)], [(0.0, 1.0), (1.0, 0.0)], box) == (0.0, 0.0)


def test_recipes_share_one_budget_and_start_from_teacher_forcing(tmp_path):
    spec = SIZES["tiny"]
    groups = group_overrides(["train.lr=0.02", "tailr.objective.gamma=0.3"], [m.name + "." for m in METHODS],
                             objectives.STUDY_KEYS)
    plan = _Plan(spec.toy, groups, "", tmp_path)
    teacher = plan.config(None)
    assert teacher.objective.name == "teacher_forcing" and teacher.model.hidden_dim == 2
    configs = {m.name: plan.config(m, 0) for m in METHODS}
    assert {(c.train.max_steps, c.train.lr, c.train.lr_schedule, c.data.batch_size) for c in configs.values()} == {
        (spec.toy.budget["train"]["max_steps"], 0.02, spec.toy.budget["train"]["lr_schedule"],
         spec.toy.budget["data"]["batch_size"])}
    assert all(c.train.init_from == str(tmp_path / "teacher_forcing") for c in configs.values())
    assert configs["tailr"].objective.gamma == 0.3 and configs["tailr"].objective.min_weight == 0.1
    assert configs["js_pi_adversarial"].objective.pi == 0.5
    assert configs["js_pi_adversarial"].objective.estimator == "reinforce"
    assert configs["js_pi_adversarial"].objective.critic.kind == "cnn"
    assert configs["scheduled_sampling"].objective.epsilon == 0.5
    assert configs["teacher_js_pi0.9"].objective.teacher == "data"
    assert configs["teacher_js_pi0.9"].objective.pi == 0.9
    assert configs["mixce"].objective.eta == 0.5


def test_study_keys_and_unknown_sizes_are_refused(tmp_path):
    with pytest.raises(UserError, match="set by the study"):
        run_objectives(tmp_path / "a", ["train.init_from=elsewhere"], size="tiny")
    with pytest.raises(UserError, match="set by the study"):
        run_objectives(tmp_path / "a", ["dft.objective.name=teacher_forcing"], size="tiny")
    with pytest.raises(UserError, match="unknown study size"):
        run_objectives(tmp_path / "a", size="huge")
    assert not (tmp_path / "a").exists()
