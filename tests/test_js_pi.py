"""The JS_π interpolation study: its exact JS_π fit, a tiny run of it, its CLI and the demo."""

import dataclasses
import json
import math

import pytest
import torch

from seqgen.cli import main
from seqgen.data.batch import Vocab
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.demo import demo
from seqgen.errors import UserError
from seqgen.experiments import gaussians, inconsistency, js_pi
from seqgen.experiments.js_pi import fit_exact_js_pi, run_js_pi
from seqgen.experiments.recipes import merge
from seqgen.functional import binary_entropy
from seqgen.metrics.exact import js_pi as exact_js_pi
from seqgen.metrics.exact import (
    js_pi_with_leak,
    model_log_probs,
    support_log_probs,
    toy_metrics,
)
from seqgen.models.configs import RNNConfig
from seqgen.models.rnn import RNNGenerator

# The study's toy: six symbols, x2 nearly a function of x1.
TOY = ToyDistribution(6, 2, "joint", concentration=0.1, seed=3)
# A few steps only: the wiring tests need trained runs, not converged ones.
QUICK = ["train.max_steps=20", "data.synthetic.num_train=500", "adversarial.train.max_steps=4",
         "oracle.train.max_steps=4", "oracle.adversarial.train.max_steps=2"]
QUICK_GAUSSIANS = gaussians.StudySize("tiny", grid_size=40, exact_steps=5, adversarial_steps=20, batch=32,
                                      critic_steps=1, hidden=8)


def small_lstm(seed: int) -> RNNGenerator:
    """The study's generator class (two hidden units) over the toy's fixed vocabulary, freshly drawn."""
    torch.manual_seed(seed)
    vocab = Vocab(size=4 + TOY.vocab_size, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    return RNNGenerator(vocab, RNNConfig(embedding_dim=2, hidden_dim=2, tie_embeddings=False), "lm").eval()


def test_support_log_probs_are_the_exact_metrics_and_carry_gradients():
    model = small_lstm(0)
    log_q = support_log_probs(model, TOY)
    torch.testing.assert_close(log_q.detach(), model_log_probs(model, TOY))
    log_q.sum().backward()
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0


def test_js_pi_with_leak_counts_the_mass_outside_as_one_outcome():
    p = TOY.enumerate()[1]
    log_q = support_log_probs(small_lstm(1), TOY).detach()
    q = log_q.exp()
    p_leak, q_leak = torch.cat([p, torch.zeros(1, dtype=p.dtype)]), torch.cat([q, 1 - q.sum()[None]])
    expected = exact_js_pi(p_leak, q_leak, 0.3)
    assert float(js_pi_with_leak(p, log_q, 0.3)) == pytest.approx(expected, rel=1e-9)
    assert float(js_pi_with_leak(p, p.log(), 0.3)) == pytest.approx(0.0, abs=1e-9)


def test_exact_fits_move_from_mass_covering_to_mode_seeking_as_pi_grows():
    # from a near-maximum-likelihood fit (the study's teacher-forcing model plays that part), as in the study
    start = fit_exact_js_pi(small_lstm(0), TOY, 0.01, steps=150, lr=0.03)
    before = [p.clone() for p in start.parameters()]
    fits = {pi: toy_metrics(fit_exact_js_pi(start, TOY, pi, steps=100, lr=0.01), TOY) for pi in (0.05, 0.95)}
    assert all(torch.equal(a, b) for a, b in zip(before, start.parameters()))  # the start is left alone
    low, high = fits[0.05], fits[0.95]
    # measured: KL[Q‖P] 0.86 -> 0.40 and KL[P‖Q] 0.39 -> 0.96 nats between the two
    assert high["kl_q_p"] < low["kl_q_p"] - 0.2
    assert high["kl_p_q"] > low["kl_p_q"] + 0.2
    with pytest.raises(UserError, match="must be in"):
        fit_exact_js_pi(start, TOY, 1.0, steps=1, lr=0.01)


@pytest.mark.slow
def test_tiny_study_writes_every_file_and_metric(tmp_path):
    out = tmp_path / "study"
    size = dataclasses.replace(js_pi.SIZES["tiny"], continuous=QUICK_GAUSSIANS)
    result = run_js_pi(out, QUICK, size=size, pis=(0.9, 0.1), oracle_pis=(0.5,))

    runs = {r.name: r for r in result.toy.runs}
    assert list(runs) == ["teacher_forcing", "js_pi0.1_seed0", "js_pi0.9_seed0", "js_pi0.1_optimal_seed0",
                          "js_pi0.9_optimal_seed0", "exact_pi0.1", "exact_pi0.9"]
    assert runs["js_pi0.9_seed0"].steps == 4 and runs["teacher_forcing"].steps == 20
    assert runs["exact_pi0.9"].steps == 4  # the exact fits get the adversarial runs' budget
    for name, run in runs.items():
        assert 0 <= run.kl_p_q < 10 and 0 <= run.kl_q_p < 10, name
        assert 0 < run.entropy_q <= math.log(36), name
        if run.method == "teacher_forcing":
            assert run.pi is None and run.js_pi is None
        else:
            # JS_π and its two limits, at the run's own π
            assert run.js_pi_over_pi == pytest.approx(run.js_pi / run.pi)
            assert run.js_pi_over_1mpi == pytest.approx(run.js_pi / (1 - run.pi))
            assert 0 < run.js_pi <= binary_entropy(run.pi)
        learned = run.method == "adversarial"
        assert (run.critic_js_pi is not None) == learned, name
        if learned:  # the learned critic against D*, logged during training
            assert run.critic_error >= 0 and -1 <= run.critic_gradient_cosine <= 1
    assert set(result.toy.spearman) == {"adversarial", "adversarial_optimal", "exact"}
    assert set(result.toy.spearman["adversarial"]) == {"0"} and set(result.toy.spearman["exact"]) == {"-"}
    assert result.toy.spearman_summary["exact"]["kl_p_q"]["min"] == result.toy.spearman["exact"]["-"]["kl_p_q"]
    assert not (tmp_path / "study" / "toy" / "js_pi0.1_optimal_seed0" / "model" / "critic.safetensors").exists()
    assert result.continuous.spearman["exact"].keys() == {"kl_p_q", "kl_q_p"}

    oracle = {r.name: r for r in result.oracle.runs}
    assert list(oracle) == ["teacher_forcing", "js_pi0.5"]
    assert [r["alpha"] for r in result.oracle.sweep] == list(js_pi.ALPHAS)
    # the sweep scores teacher forcing on the runs' own samples and test split: α = 1 is its point
    at_one = next(r for r in result.oracle.sweep if r["alpha"] == 1.0)
    assert at_one["nll_oracle"] == pytest.approx(oracle["teacher_forcing"].nll_oracle)
    assert at_one["nll_test"] == pytest.approx(oracle["teacher_forcing"].nll_test)

    # results.json: the typed rows as dicts, with the keys of their kind of run
    saved = json.loads(result.files["results"].read_text())
    assert [r["name"] for r in saved["toy"]["runs"]] == list(runs)
    assert saved["checks"] == [dataclasses.asdict(c) for c in result.checks]
    by_name = {r["name"]: r for r in saved["toy"]["runs"]}
    assert "critic_error" in by_name["js_pi0.9_optimal_seed0"] and "critic_error" not in by_name["exact_pi0.9"]
    assert by_name["js_pi0.9_seed0"]["kl_q_p"] == runs["js_pi0.9_seed0"].kl_q_p
    assert "js_pi_critic" in saved["continuous"]["fits"][-1] and "js_pi_critic" not in saved["continuous"]["fits"][0]
    assert set(saved["oracle"]["runs"][1]) == {"name", "method", "pi", "nll_oracle", "nll_test", "steps",
                                               "seconds", "run_dir", "nll_test_tf_curve", "distance_to_tf_curve"}
    assert {c["step"] for c in result.checks} == {"continuous", "toy"}
    for name in ("report", "toy_kl_vs_pi", "oracle_nll", "gaussians_fits", "gaussians_kl"):
        assert result.files[name].stat().st_size > 0, name
    report = result.files["report"].read_text()
    assert "| js_pi0.9_seed0 | 0.9 |" in report and "## 3. Oracle LSTM" in report
    assert "](toy_kl_vs_pi.png)" in report and "](continuous/gaussians_kl.png)" in report
    table = result.table()
    assert "adversarial_optimal  0.9" in table and "oracle itself" in table

    # a study folder that holds something is only replaced on request
    with pytest.raises(UserError, match="not empty; pass --overwrite"):
        run_js_pi(out, QUICK[:3], size="tiny", pis=(0.1, 0.9), continuous=False, oracle=False)
    again = run_js_pi(out, QUICK[:3], size="tiny", pis=(0.1, 0.9), continuous=False, oracle=False,
                      overwrite=True)
    assert again.oracle is None and again.continuous is None
    assert json.loads(again.files["results"].read_text())["oracle"] is None


@pytest.mark.parametrize("kwargs, overrides, message", [
    ({"size": "huge"}, [], "unknown study size 'huge'"),
    ({"pis": (0.0, 0.5)}, [], "pi must be in (0, 1), got 0 in pis"),
    ({"pis": (0.5, 1.5)}, [], "got 1.5 in pis"),
    ({"oracle_pis": (1.0,)}, [], "got 1 in oracle pis"),
    ({"pis": (0.5, 0.5)}, [], "at least two values of pi"),
    ({"continuous_pis": (0.5,)}, [], "at least two values of pi"),
    ({"oracle_pis": ()}, [], "the oracle step needs at least one value of pi"),
    ({"continuous": False, "toy": False, "oracle": False}, [], "nothing to run"),
    ({}, ["objective.pi=0.3"], "objective.pi is set by the study"),
    ({}, ["adversarial.train.init_from=x"], "train.init_from is set by the study"),
    ({}, ["oracle.adversarial.objective=x"], "objective is set by the study"),
    ({}, ["oracle.output_dir=x"], "output_dir is set by the study"),
    ({"oracle": False}, ["oracle.train.lr=0.1"], "the oracle step is skipped"),
    ({"toy": False}, ["adversarial.train.lr=0.1"], "the sequence step is skipped"),
    ({}, ["adversarial.objective.critic.kind=mlp"], "is not one of cnn, rnn, transformer"),
    ({}, ["model.hidden_dimension=4"], "unknown config key model.hidden_dimension"),
    ({}, ["oracle.data.synthetic.num_test=0"], "num_test must be at least 1"),
    ({}, ["oracle.data.synthetic.weights=missing.npz"], "oracle weights not found: missing.npz"),
])
def test_bad_input_is_a_user_error_before_anything_runs(tmp_path, kwargs, overrides, message):
    out = tmp_path / "study"
    with pytest.raises(UserError) as error:
        run_js_pi(out, overrides, **{"size": "tiny", **kwargs})
    assert message in str(error.value)
    assert not out.exists()


def test_a_file_in_place_of_the_folder_is_a_user_error(tmp_path):
    out = tmp_path / "study"
    out.write_text("")
    with pytest.raises(UserError, match="is a file, not a folder"):
        run_js_pi(out, size="tiny")


@pytest.mark.parametrize("argv, message", [
    (["--pis", "0.1,x"], "--pis must be comma-separated numbers"),
    (["--oracle-pis", "2"], "got 2 in oracle pis"),
    (["--no-continuous", "--no-toy", "--no-oracle"], "nothing to run"),
    (["adversarial.objective.pi=0.5"], "objective.pi is set by the study"),
])
def test_cli_bad_input_exits_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "js-pi", "--out", str(tmp_path / "study"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_sizes_are_the_shared_size_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "js-pi", "--out", str(tmp_path / "study"), "--size", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge' (choose from 'tiny', 'demo', 'full')" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_runs_the_study_and_lists_its_files(tmp_path, capsys):
    out = tmp_path / "study"
    main(["experiment", "js-pi", "--out", str(out), "--size", "tiny", "--pis", "0.2,0.8", "--no-continuous",
          "--no-oracle", *QUICK[:3]])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("adversarial") and " 0.8 " in line for line in lines)
    assert f"report         {out / 'report.md'}" in lines
    assert f"toy_kl_vs_pi   {out / 'toy_kl_vs_pi.png'}" in lines


@pytest.mark.slow
def test_demo_runs_both_studies_into_their_own_folders(tmp_path, capsys, monkeypatch):
    small = inconsistency.SIZES["tiny"]
    inconsistency_size = inconsistency.StudySize("demo", toy=merge(small.toy, {"train": {"max_steps": 10, "warmup_steps": 0}}),
                                                 oracle=merge(small.oracle, {"train": {"max_steps": 5,
                                                                                       "warmup_steps": 0}}))
    tiny = js_pi.SIZES["tiny"]
    js_pi_size = dataclasses.replace(tiny, name="demo", continuous=QUICK_GAUSSIANS,
                                     toy=merge(tiny.toy, {"train": {"max_steps": 10, "warmup_steps": 0}}),
                                     toy_adversarial=merge(tiny.toy_adversarial, {"train": {"max_steps": 2}}))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave the test process's setting alone
    out = tmp_path / "demo"
    (out / "js_pi" / "toy").mkdir(parents=True)  # an earlier demo's folder is replaced
    demo(out, inconsistency_size=inconsistency_size, js_pi_size=js_pi_size)
    lines = capsys.readouterr().out.strip().splitlines()
    for study in ("inconsistency", "js_pi"):
        assert f"report:  {out / study / 'report.md'}" in lines
        assert (out / study / "results.json").is_file()
    assert any(line.startswith("ss_eps0.75") for line in lines)
    assert any(line.startswith("adversarial_optimal  0.9") for line in lines)
    study = out / "js_pi"
    assert lines[-1] == (f"figures: {study / 'continuous' / 'gaussians_fits.png'}, "
                         f"{study / 'continuous' / 'gaussians_kl.png'}, {study / 'toy_kl_vs_pi.png'}")
    assert json.loads((out / "js_pi" / "results.json").read_text())["oracle"] is None


@pytest.mark.slow
def test_tiny_sequence_step_seeks_modes_more_at_the_largest_pi(tmp_path):
    # Measured at this recipe: from π = 0.05 to 0.95, KL[Q‖P] falls by 0.28 nats and KL[P‖Q] rises by 0.10
    # with the optimal critic; by 0.56 and 0.16 for exact descent. (The tiny learned critic, 40 steps wide
    # 8, is too weak to show it: 0.04 and -0.09; the demo and full sizes measure it.)
    result = run_js_pi(tmp_path / "study", size="tiny", pis=(0.05, 0.95), continuous=False, oracle=False)
    runs = {r.name: r for r in result.toy.runs}
    for low, high in (("js_pi0.05_optimal_seed0", "js_pi0.95_optimal_seed0"), ("exact_pi0.05", "exact_pi0.95")):
        assert runs[high].kl_q_p < runs[low].kl_q_p - 0.1, (low, high)
        assert runs[high].kl_p_q > runs[low].kl_p_q + 0.03, (low, high)
