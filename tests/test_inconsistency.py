"""The scheduled-sampling inconsistency study: its closed form, a small run of it, its CLI and the demo."""

import dataclasses
import itertools
import json
from pathlib import Path

import pytest
import torch

from seqgen.cli import main
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments.inconsistency import closed_form_optimum, run_inconsistency
from seqgen.metrics.exact import kl, product_of_marginals

# A few steps only: the wiring tests need trained runs, not converged ones.
QUICK = ["train.max_steps=10", "train.warmup_steps=0", "data.synthetic.num_train=500"]


def test_closed_form_optimum_interpolates_between_p_and_the_product_of_marginals():
    toy = ToyDistribution(3, 2, "joint", concentration=0.5, seed=4)
    seqs, p = toy.enumerate()
    marginals = product_of_marginals(seqs, p)
    torch.testing.assert_close(closed_form_optimum(toy, 1.0), p)
    torch.testing.assert_close(closed_form_optimum(toy, 0.0), marginals)
    q = closed_form_optimum(toy, 0.3)
    torch.testing.assert_close(q.sum(), torch.tensor(1.0, dtype=torch.float64))
    # the first token keeps P's marginal, the second is the ε-mixture of conditional and marginal
    table, p_table = q.view(3, 3), p.view(3, 3)
    torch.testing.assert_close(table.sum(1), p_table.sum(1))
    expected = 0.3 * p_table / p_table.sum(1, keepdim=True) + 0.7 * p_table.sum(0)
    torch.testing.assert_close(table / table.sum(1, keepdim=True), expected)
    assert kl(p, closed_form_optimum(toy, 0.0)) == pytest.approx(toy.multi_information(), rel=1e-9)
    # the closed-form curve KL[P‖Q*_ε] falls from the multi-information to 0 as ε grows
    curve = [kl(p, closed_form_optimum(toy, e)) for e in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(a > b for a, b in itertools.pairwise(curve)) and curve[-1] == pytest.approx(0.0, abs=1e-12)


def test_closed_form_optimum_needs_a_two_token_joint_toy():
    with pytest.raises(UserError, match="two-token joint"):
        closed_form_optimum(ToyDistribution(3, 3, "joint", seed=0), 0.5)
    with pytest.raises(UserError, match="epsilon must be in"):
        closed_form_optimum(ToyDistribution(3, 2, "joint", seed=0), 1.5)


@pytest.mark.slow
def test_small_study_converges_to_the_closed_form_optimum(tmp_path):
    # two tokens, three symbols, the notebook's size: seconds per run
    result = run_inconsistency(tmp_path / "study", size="tiny", epsilons=(0.0, 0.5), oracle=False)
    runs = {r.name: r for r in result.runs}
    assert list(runs) == ["teacher_forcing", "ss_eps0", "ss_eps0.5", "ss_annealed"]
    mi = result.toy["multi_information_p"]
    assert mi > 0.1  # a toy with real dependence, so that ignoring x1 costs something
    assert runs["teacher_forcing"].kl_p_q < 0.02
    for name in ("ss_eps0", "ss_eps0.5", "ss_annealed"):
        assert runs[name].kl_q_closed_form < 0.02, name
    for name in ("ss_eps0", "ss_annealed"):
        assert runs[name].kl_q_prod_marginals < 0.02, name
        assert runs[name].kl_p_q == pytest.approx(mi, rel=0.1), name
    # scheduled sampling at ε = 0.5 is inconsistent: it lands on Q*_0.5, far from P
    half = runs["ss_eps0.5"]
    assert half.kl_p_closed_form > 0.05
    assert half.kl_p_q == pytest.approx(half.kl_p_closed_form, abs=0.02)
    assert all(c.passed for c in result.checks)

    # results.json: the typed rows as dicts
    saved = json.loads(result.files["results"].read_text())
    assert saved["runs"] == [dataclasses.asdict(r) for r in result.runs]
    assert saved["checks"] == [dataclasses.asdict(c) for c in result.checks]
    assert saved["runs"][2]["epsilon"] == 0.5 and saved["runs"][2]["method"] == "scheduled_sampling"
    assert saved["oracle"] is None
    for name in ("report", "kl_vs_epsilon", "heatmaps"):
        assert result.files[name].stat().st_size > 0
    report = result.files["report"].read_text()
    assert "| ss_eps0.5 |" in report and "Every expected outcome is met." in report


@pytest.mark.parametrize("overrides, kwargs, message", [
    (["objective.name=teacher_forcing"], {}, "objective.name is set by the study"),
    (["oracle.output_dir=x"], {}, "output_dir is set by the study"),
    (["objective=x"], {}, "objective is set by the study"),
    ([], {"epsilons": (0.5, -0.1)}, r"epsilon must be in \[0, 1\]"),
    ([], {"size": "huge"}, "unknown study size"),
    (["data.synthetic.kind=markov"], {}, "fixed-length toy"),
    (["data.synthetic.vocab_size=40"], {}, "vocab_size must be in"),
    (["train.mx_steps=3"], {}, "did you mean train.max_steps"),
    (["oracle.train.max_steps=3"], {"oracle": False}, "oracle runs are skipped"),
    (["oracle.data.synthetic.num_test=0"], {}, "num_test must be at least 1"),
    (["oracle.data.synthetic.weights=missing.npz"], {}, "oracle weights not found"),
])
def test_bad_input_is_a_user_error_before_any_training(tmp_path, overrides, kwargs, message):
    with pytest.raises(UserError, match=message):
        run_inconsistency(tmp_path / "study", overrides, **{"size": "tiny", **kwargs})
    assert not (tmp_path / "study" / "toy").exists()


def test_a_folder_that_holds_something_is_not_overwritten_unless_asked(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        run_inconsistency(tmp_path, QUICK, size="tiny", epsilons=(), oracle=False)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "toy").exists()


@pytest.mark.slow
def test_cli_runs_the_study_with_overrides_of_both_sides(tmp_path, capsys):
    out = tmp_path / "study"
    main(["experiment", "inconsistency", "--out", str(out), "--size", "small", "--epsilons", "0",
          *QUICK, "oracle.train.max_steps=5", "oracle.train.warmup_steps=0", "oracle.data.synthetic.num_train=100"])
    printed = capsys.readouterr().out
    assert "ss_annealed" in printed and "NLL_oracle" in printed and str(out / "report.md") in printed
    saved = json.loads((out / "results.json").read_text())
    assert [r["steps"] for r in saved["runs"]] == [10, 10, 10]
    assert [r["steps"] for r in saved["oracle"]["runs"]] == [5, 5]
    assert saved["toy"]["num_train"] == 500
    # the oracle's own samples set the floor of NLL_test
    floor = saved["oracle"]["oracle"]["nll_oracle_own_samples"]
    assert all(r["nll_test"] > floor for r in saved["oracle"]["runs"])


@pytest.mark.slow
def test_the_oracle_runs_read_the_seqgan_weights(tmp_path):
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    weights = shared / "seqgan_oracle" / "oracle_lstm.npz"
    if not weights.is_file():
        pytest.skip(f"the SeqGAN oracle weights are not at {weights}")
    oracle = [f"oracle.data.synthetic.weights={weights}", "oracle.data.synthetic.length=20",
              "oracle.data.synthetic.num_train=64", "oracle.data.synthetic.num_test=32",
              "oracle.train.max_steps=2", "oracle.train.warmup_steps=0"]
    result = run_inconsistency(tmp_path, [*QUICK, *oracle], size="tiny", epsilons=())
    info = result.oracle.oracle
    assert (info["vocab_size"], info["length"], info["weights"]) == (5000, 20, str(weights))
    # the oracle's entropy rate is 5.75 nats per token; two steps leave the model near uniform, log 5000 = 8.5
    assert 4.5 < info["nll_oracle_own_samples"] < 7.0
    for run in result.oracle.runs:
        assert run.nll_test > 8.0 and run.nll_oracle > info["nll_oracle_own_samples"]


def test_cli_sizes_are_the_shared_size_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "inconsistency", "--out", str(tmp_path / "study"), "--size", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge' (choose from 'tiny', 'demo', 'full')" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--epsilons", "0,x"], "--epsilons must be comma-separated numbers"),
    (["objective.name=teacher_forcing"], "objective.name is set by the study"),
])
def test_cli_bad_input_exits_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "inconsistency", "--out", str(tmp_path / "study"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
