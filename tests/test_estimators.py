"""Generator gradient estimators against exact references on the enumerable toy: the optimal critic,
the score-function estimators' unbiasedness, straight-through's documented bias, REBAR's pieces, and
each estimator through the training loop and the command line."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from seqgen.cli import main
from seqgen.config import load_config
from seqgen.data.batch import Batch, Vocab
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments.estimators import EstimatorRow, measure, recommend, run_estimators
from seqgen.experiments.js_pi import fit_exact_js_pi
from seqgen.metrics.exact import model_log_probs, support_tokens
from seqgen.models.configs import RNNConfig
from seqgen.models.rnn import RNNGenerator
from seqgen.objectives import AdversarialConfig, estimators
from seqgen.objectives.adversarial import GeneratorPlayer
from seqgen.objectives.optimal_critic import (
    OracleCritic,
    critic_error,
    exact_js_pi_gradient,
    implied_gradient,
    optimal_logits,
)
from seqgen.tracking import read_log
from seqgen.train import train

ROOT = Path(__file__).resolve().parents[1]
TOY = ToyDistribution(6, 2, "joint", concentration=0.1, seed=3)
VOCAB = Vocab(size=4 + TOY.vocab_size, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def small_lstm(seed: int) -> RNNGenerator:
    torch.manual_seed(seed)
    return RNNGenerator(VOCAB, RNNConfig(embedding_dim=2, hidden_dim=2, tie_embeddings=False), "lm").eval()


@pytest.fixture(scope="module")
def near_ml() -> RNNGenerator:
    """A model near the maximum-likelihood fit of the toy (what teacher forcing gives), gradients on."""
    return fit_exact_js_pi(small_lstm(0), TOY, 0.01, steps=300, lr=0.03).requires_grad_(True)


def real_batches(count: int, size: int, seed: int) -> list[Batch]:
    tokens, _ = support_tokens(VOCAB, TOY)
    generator = torch.Generator().manual_seed(seed)
    p = TOY.enumerate()[1].float()
    out = []
    for _ in range(count):
        chosen = tokens[torch.multinomial(p, size, replacement=True, generator=generator)]
        out.append(Batch(tokens=chosen, mask=chosen != VOCAB.pad_id))
    return out


def estimate(model, pi, count=200, size=64, **changes):
    """The harness's measurement of one estimator with the optimal critic at `model`."""
    cfg = dataclasses.replace(AdversarialConfig(), pi=pi, tau_schedule="constant", tau=1.0, **changes)
    critic = OracleCritic(TOY, VOCAB, pi)
    critic.track(model)
    exact = exact_js_pi_gradient(model, TOY, pi)
    return measure(GeneratorPlayer(model, critic, cfg, 1), real_batches(count, size, 1), exact,
                   torch.Generator().manual_seed(2))


# ---------------------------------------------------------------------------------------------------
# The optimal critic and the exact references


def test_optimal_critic_is_d_star_on_sequences_and_multilinear_between_them(near_ml):
    critic = OracleCritic(TOY, VOCAB, 0.3)
    critic.track(near_ml)
    tokens, _lengths = support_tokens(VOCAB, TOY)
    targets, mask = tokens[:, 1:], tokens[:, 1:] != VOCAB.pad_id
    expected = optimal_logits(TOY.enumerate()[1].log(), model_log_probs(near_ml, TOY), 0.3)
    torch.testing.assert_close(critic(targets, mask), expected, rtol=1e-9, atol=1e-9)
    # outside the support: a wrong symbol count, or EOS first, has D = 0 (the floor logit)
    outside = torch.tensor([[4, 4, 4], [2, 0, 0]])
    assert (critic(outside, torch.tensor([[True, True, True], [True, False, False]])) < -60).all()
    # half of one sequence and half of another at the first position: D is the average of both D*
    a, b = targets[0], targets[TOY.vocab_size]  # same second symbol, different first one
    assert torch.equal(a[1:], b[1:]) and a[0] != b[0]
    mixed = (F.one_hot(a, VOCAB.size).float() + F.one_hot(b, VOCAB.size).float()) / 2
    d = critic(mixed[None], mask[:1]).sigmoid()
    d_star = expected[[0, TOY.vocab_size]].sigmoid()
    torch.testing.assert_close(d, d_star.mean()[None], rtol=1e-9, atol=1e-12)


def test_minimax_gradient_at_the_optimal_critic_is_the_gradient_of_js_pi(near_ml):
    for pi in (0.05, 0.5, 0.95):
        critic = OracleCritic(TOY, VOCAB, pi)
        critic.track(near_ml)
        implied = torch.cat([g.reshape(-1) for g in implied_gradient(critic, near_ml, TOY, pi, "minimax")])
        exact = torch.cat([g.reshape(-1) for g in exact_js_pi_gradient(near_ml, TOY, pi)])
        assert exact.norm() > 0
        torch.testing.assert_close(implied.double(), exact.double(), rtol=1e-5, atol=1e-5 * float(exact.norm()))
        assert critic_error(critic, near_ml, TOY, pi) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------------
# The estimators at the optimal critic


@pytest.mark.parametrize("pi", [0.05, 0.5, 0.95])
def test_reinforce_at_the_optimal_critic_is_unbiased(near_ml, pi):
    result = estimate(near_ml, pi, estimator="reinforce", baseline="none")
    assert result["averaged_cosine"] > 0.8, result
    assert 0.5 < result["norm_ratio"] < 2, result


def test_straight_through_at_the_optimal_critic_is_biased_at_small_pi(near_ml):
    result = estimate(near_ml, 0.05, estimator="straight_through")
    assert result["averaged_cosine"] < 0.3, result
    assert result["norm_ratio"] > 5, result  # the bias dwarfs the exact gradient, which is small near ML


def test_leave_one_out_baselines_keep_reinforce_unbiased(near_ml):
    for changes in ({"baseline": "batch"}, {"baseline": "rloo", "rollouts_per_context": 4}):
        result = estimate(near_ml, 0.5, count=200, size=64 // changes.get("rollouts_per_context", 1),
                          estimator="reinforce", **changes)
        assert result["averaged_cosine"] > 0.8, (changes, result)


def test_prefix_rewards_at_discount_one_keep_reinforce_unbiased(near_ml):
    result = estimate(near_ml, 0.5, estimator="reinforce", reward="prefix", baseline="none")
    assert result["averaged_cosine"] > 0.8, result


def test_leave_one_out_and_discounted_returns():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    torch.testing.assert_close(estimators.leave_one_out(values, 3), torch.tensor([2.5, 2, 1.5, 25, 20, 15]))
    torch.testing.assert_close(estimators.baseline(values, "batch", 3), (values.sum() - values) / 5)
    assert torch.equal(estimators.baseline(values, "none", 3), torch.zeros(6))
    returns = estimators.discounted_returns(torch.tensor([[1.0, 2.0, 4.0]]), 0.5)
    torch.testing.assert_close(returns, torch.tensor([[1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0]]))


def test_conditional_gumbel_matches_gumbels_conditioned_on_their_argmax():
    torch.manual_seed(0)
    log_probs = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    n = 200_000
    z = log_probs + -torch.log(-torch.log(torch.rand(n, 4).clamp(min=1e-12)))
    ids = z.argmax(-1)
    z_tilde = estimators.conditional_gumbel(log_probs.expand(n, 4), ids, torch.rand(n, 4))
    assert torch.equal(z_tilde.argmax(-1), ids)
    for k in range(4):  # the same conditional distribution: compare the means and spreads per category
        chosen = ids == k
        torch.testing.assert_close(z_tilde[chosen].mean(0), z[chosen].mean(0), atol=0.03, rtol=0)
        torch.testing.assert_close(z_tilde[chosen].std(0), z[chosen].std(0), atol=0.03, rtol=0)


def test_rebar_is_unbiased_for_one_categorical_and_lowers_the_variance():
    """One position: REBAR's control variate has mean zero whatever the relaxed score."""
    torch.manual_seed(0)
    vocab = 5
    logits = torch.randn(vocab, requires_grad=True)
    weights = torch.randn(vocab, vocab)

    def score(y):  # (B, 1, V) -> (B,): any smooth function of the relaxed token
        y = y[:, 0]
        return ((y @ weights) * y).sum(-1) + y @ torch.arange(vocab).float()

    exact = torch.autograd.grad((logits.softmax(-1) * score(torch.eye(vocab)[:, None])).sum(), logits)[0]
    generator = torch.Generator().manual_seed(0)
    n = 100_000
    log_probs = logits.log_softmax(-1).expand(n, 1, vocab)
    ids = torch.multinomial(logits.softmax(-1).detach(), n, replacement=True, generator=generator)[:, None]
    f = score(F.one_hot(ids, vocab).float())
    log_q = log_probs.gather(-1, ids[..., None]).squeeze(-1).sum(-1)
    per_sample = {}
    for eta in (0.0, 1.0):
        f_tilde, control = estimators.rebar_control(log_probs, ids, torch.ones_like(ids, dtype=torch.bool), score,
                                                    0.5, eta, generator)
        surrogate = ((f - eta * f_tilde) * log_q).mean() + control
        grad = torch.autograd.grad(surrogate, logits, retain_graph=True)[0]
        torch.testing.assert_close(grad, exact, atol=0.01, rtol=0)
        # the variance of single-sample estimates, from the per-sample score-function coefficients
        per_sample[eta] = (f - eta * f_tilde).var()
    assert per_sample[1.0] < per_sample[0.0]


# ---------------------------------------------------------------------------------------------------
# Settings, the harness, and the estimators in the loop


@pytest.mark.parametrize("changes, message", [
    ({"estimator": "reinforce", "baseline": "rloo", "rollouts_per_context": 1},
     "baseline=rloo needs objective.rollouts_per_context >= 2"),
    ({"rollouts_per_context": 0}, "rollouts_per_context must be >= 1"),
    ({"discount": 0.0}, "discount must be in (0, 1]"),
    ({"cv_weight": -1.0}, "cv_weight must be >= 0"),
    ({"critic_warmup_steps": -1}, "critic_warmup_steps must be >= 0"),
    ({"estimator": "rebar", "reward": "prefix"}, "reward=prefix works with"),
])
def test_bad_estimator_settings_are_refused(changes, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        AdversarialConfig(**changes)


def test_rloo_with_one_rollout_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(ROOT / "recipes/debug/lm_adv.yaml"), f"output_dir={tmp_path}",
              "objective.estimator=reinforce", "objective.baseline=rloo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rollouts_per_context >= 2" in err[0]


def test_oracle_critic_needs_a_toy_source(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(ROOT / "recipes/debug/lm_adv.yaml"), f"output_dir={tmp_path}",
              "objective.critic.kind=oracle"])
    assert exit_info.value.code == 2
    assert "needs data.source=toy" in capsys.readouterr().err


def test_harness_tiny_writes_its_table_and_recommends_from_the_optimal_critic(tmp_path):
    result = run_estimators(tmp_path, size="tiny", pis=(0.5,), estimators=("straight_through", "reinforce"))
    assert {(r.critic, r.estimator) for r in result.rows} == {
        (c, e) for c in ("optimal", "learned") for e in ("straight_through", "reinforce")}
    learned = [r for r in result.rows if r.critic == "learned"]
    assert all(r.critic_error >= 0 and -1 <= r.critic_gradient_cosine <= 1 for r in learned)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["recommended"] == result.recommended and len(saved["rows"]) == 4
    # only the learned critic's rows carry its error
    assert [("critic_error" in r) for r in saved["rows"]] == [r.critic == "learned" for r in result.rows]
    assert (tmp_path / "estimators.png").stat().st_size > 0 and "## Critic: optimal" in (tmp_path / "report.md").read_text()
    rows = [EstimatorRow("optimal", 0.5, name, cos, 0.0, 1.0, variance, 0.0, 1.0)
            for name, cos, variance in (("a", 0.9, 5.0), ("b", 0.95, 2.0), ("c", 0.5, 0.1))]
    assert recommend(rows) == "b" and recommend(rows[2:]) is None


TOY_RUN = ["task=lm", "data.source=toy", "tokenizer.kind=fixed", "data.batch_size=32",
           "data.synthetic.kind=joint", "data.synthetic.vocab_size=6", "data.synthetic.length=2",
           "data.synthetic.concentration=0.1", "data.synthetic.seed=3", "data.synthetic.num_train=256",
           "data.synthetic.num_validation=64", "data.synthetic.num_test=0", "model.embedding_dim=4",
           "model.hidden_dim=4", "objective.name=adversarial", "objective.critic.embedding_dim=8",
           "objective.critic.hidden_dim=8", "train.max_steps=3", "train.log_every=1",
           "train.eval_every=100", "train.save_every=100", "train.num_samples=0", "train.tensorboard=false"]


def test_oracle_critic_trains_the_generator_alone(tmp_path):
    train(load_config(None, [*TOY_RUN, "objective.critic.kind=oracle",
                             "objective.estimator=reinforce", f"output_dir={tmp_path}"]))
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert not (tmp_path / "model" / "critic.safetensors").exists()  # nothing learned, nothing to export
    records = read_log(tmp_path / "logs" / "metrics.jsonl")
    assert not any(k.startswith("critic/") for r in records for k in r)
    assert all("train/generator_loss" in r for r in records if "train/lr" in r)


def test_learned_critic_on_a_toy_logs_its_error_and_warms_up_first(tmp_path):
    train(load_config(None, [*TOY_RUN, "objective.critic_warmup_steps=4", "train.max_steps=2",
                             "train.save_every=1", f"output_dir={tmp_path}"]))
    records = [r for r in read_log(tmp_path / "logs" / "metrics.jsonl") if "train/critic_error" in r]
    assert records and all(r["train/critic_error"] >= 0 and -1 <= r["train/critic_gradient_cosine"] <= 1
                           for r in records)
    # the critic took 4 warm-up updates and its one update of step 1, then one more at step 2
    steps = []
    for name in ("step-0000001", "step-0000002"):  # optimizer.bin: the critic's (its player is prepared first)
        state = torch.load(tmp_path / "checkpoints" / name / "optimizer.bin", weights_only=True)
        steps.append(int(next(iter(state["state"].values()))["step"]))
    assert steps == [5, 6]


# The whole model section is replaced: an RNN recipe's keys are not a Transformer's.
SMALL_TRANSFORMER = ["model={family: transformer, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, "
                     "max_positions: 80}"]
TASK_MODELS = {
    "lm-lstm": ("recipes/debug/lm_adv.yaml", []),
    "translation-lstm": ("recipes/debug/translation.yaml", []),
    "captioning-lstm": ("recipes/debug/captioning.yaml", []),
    "lm-gpt2": ("recipes/debug/lm_transformer.yaml", []),
    "translation-bart": ("recipes/debug/translation.yaml", [*SMALL_TRANSFORMER, "model.arch=bart"]),
    "captioning-gpt2": ("recipes/debug/captioning.yaml", [*SMALL_TRANSFORMER, "model.arch=gpt2"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["reinforce", "rebar"])
@pytest.mark.parametrize("task_model", list(TASK_MODELS))
def test_each_estimator_trains_each_task_and_family_through_the_cli(tmp_path, task_model, estimator):
    recipe, model = TASK_MODELS[task_model]
    main(["train", str(ROOT / recipe), f"output_dir={tmp_path}", *model, "objective.name=adversarial",
          f"objective.estimator={estimator}", "objective.baseline=rloo",
          "objective.rollouts_per_context=2", "objective.critic.embedding_dim=8",
          "objective.critic.hidden_dim=8", "train.max_steps=2", "train.log_every=1",
          "train.eval_every=2", "train.save_every=2", "train.num_samples=0", "train.tensorboard=false",
          "train.max_grad_norm=1000"])
    records = [r for r in read_log(tmp_path / "logs" / "metrics.jsonl") if "train/generator_loss" in r]
    assert len(records) == 2
    assert all(torch.isfinite(torch.tensor(r["train/generator_loss"])) for r in records)
    assert all(r["train/grad_norm"] > 0 for r in records)  # the estimator's gradient reached the generator
    assert load_file(tmp_path / "model" / "critic.safetensors")
