"""JS_π adversarial training in the training loop: the players' updates stay apart, runs resume
exactly, init_from starts from a teacher-forcing model, the CLI logs the critic's view, and a NaN stops
the run."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqgen.checkpoints import Checkpoints
from seqgen.config import load_config
from seqgen.data import load_data
from seqgen.errors import UserError
from seqgen.models import build_generator
from seqgen.objectives import RunInfo, adversarial, build_objective
from seqgen.randomness import RowNoise
from seqgen.tracking import read_log
from seqgen.train import TrainingDiverged, train

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ["data.source=oracle", "tokenizer.kind=fixed", "data.batch_size=8",
          "data.synthetic.num_train=48", "data.synthetic.num_validation=8", "data.synthetic.num_test=8",
          "data.synthetic.vocab_size=12", "data.synthetic.length=5", "data.synthetic.hidden_dim=8",
          "model.embedding_dim=8", "model.hidden_dim=8", "train.num_samples=0", "train.tensorboard=false"]
ADVERSARIAL = ["objective.name=adversarial", "objective.critic.embedding_dim=8", "objective.critic.hidden_dim=8",
               "objective.critic_lr=0.01", "train.lr=0.01"]


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_each_phase_moves_only_its_player(tmp_path):
    cfg = load_config(None, [*ORACLE, *ADVERSARIAL, "objective.critic_steps=2", "objective.critic_warmup_steps=3",
                             f"output_dir={tmp_path}"])
    data = load_data(cfg)
    generator = build_generator(cfg.model, data.vocab, cfg.task)
    objective = build_objective(cfg.objective, generator, RunInfo("lm", 10, 6.0, data.distribution))
    critic_player, generator_player = objective.players()
    assert (critic_player.namespace, critic_player.lr, critic_player.repeats, critic_player.warmup) == \
        ("critic", 0.01, 2, 3)
    assert (generator_player.namespace, generator_player.lr, generator_player.repeats) == ("train", None, 1)
    assert generator_player.module is objective.generator_player and critic_player.module is objective.critic_player
    # Each player's module holds its own parameters only (what the loop gives its optimizer).
    assert {id(p) for p in critic_player.module.parameters()} == {id(p) for p in objective.critic.parameters()}
    assert {id(p) for p in generator_player.module.parameters()} == {id(p) for p in generator.parameters()}
    assert objective.exports() == {"critic": objective.critic}
    batch = next(iter(data.splits["train"].loader(cfg.data, shuffle=False, seed=0)))
    assert objective.weight(batch) == len(batch)  # both losses are means over sequences

    def update(player):
        optimizer = torch.optim.AdamW(player.module.parameters(), lr=0.01)
        loss, metrics = player.module(batch, 0, RowNoise("update", None, len(batch)))
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss) and all(v.ndim == 0 and not v.requires_grad for v in metrics.values())
        return metrics

    g0, c0 = snapshot(objective.generator), snapshot(objective.critic)
    metrics = update(critic_player)
    g1, c1 = snapshot(objective.generator), snapshot(objective.critic)
    assert same(g0, g1), "the critic's update moved the generator"
    assert not same(c0, c1), "the critic's update did not move the critic"
    assert {"loss", "acc_real", "acc_fake", "js_pi"} <= set(metrics)
    assert all(p.grad is None for p in generator.parameters()), "the critic's loss reached the generator"
    objective.critic.zero_grad(set_to_none=True)

    metrics = update(generator_player)
    g2, c2 = snapshot(objective.generator), snapshot(objective.critic)
    assert same(c1, c2), "the generator's update moved the critic"
    assert not same(g1, g2), "the generator's update did not move the generator"
    assert {"loss", "tau", "generator_loss", "d_fake"} <= set(metrics)
    # The frozen critic received no gradient and is trainable again afterwards.
    assert all(p.grad is None and p.requires_grad for p in objective.critic.parameters())


@pytest.mark.parametrize("estimator", ["straight_through", "reinforce", "rebar"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, monkeypatch, estimator):
    overrides = [*ORACLE, *ADVERSARIAL, f"objective.estimator={estimator}", "train.max_steps=4",
                 "train.save_every=2", "train.eval_every=100", "train.log_every=1", "model.dropout=0.2",
                 "objective.critic.dropout=0.2", "objective.critic_steps=2", "objective.tf_weight=0.5",
                 "objective.tau_schedule=linear"]
    train(load_config(None, [*overrides, f"output_dir={tmp_path / 'full'}"]))

    real_save = Checkpoints.save

    def save_then_die(self, accelerator, state):
        path = real_save(self, accelerator, state)
        if state.step == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Checkpoints, "save", save_then_die)
    cfg = load_config(None, [*overrides, f"output_dir={tmp_path / 'cut'}"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(Checkpoints, "save", real_save)
    train(cfg, resume=True)

    for name in ("model.safetensors", "critic.safetensors"):
        a, b = (load_file(tmp_path / run / "model" / name) for run in ("full", "cut"))
        assert a.keys() == b.keys() and a
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"
    full, cut = ([r["critic/loss"] for r in read_log(tmp_path / run / "logs" / "metrics.jsonl")
                  if "critic/loss" in r] for run in ("full", "cut"))
    assert full[-1] == cut[-1] and len(full) == 4


def seqgen(*args):
    proc = subprocess.run([sys.executable, "-m", "seqgen", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_init_from_a_teacher_forcing_run_and_the_cli_logs(tmp_path, monkeypatch):
    small = ["data.synthetic.num_train=64", "train.num_samples=0", "train.tensorboard=false",
             "train.eval_every=100", "train.save_every=100"]
    tf_generator, _ = train(load_config(ROOT / "recipes/debug/lm.yaml",
                                        [f"output_dir={tmp_path / 'tf'}", "train.max_steps=2", *small]))

    # The generator the first adversarial step starts from is the teacher-forcing model.
    real_forward, started = adversarial.GeneratorPlayer.forward, []

    def capture(self, batch, step, noise=None):
        started.append(snapshot(self.generator))
        return real_forward(self, batch, step, noise)

    monkeypatch.setattr(adversarial.GeneratorPlayer, "forward", capture)
    train(load_config(ROOT / "recipes/debug/lm_adv.yaml", [f"output_dir={tmp_path / 'first'}", "train.max_steps=1",
                                                           f"train.init_from={tmp_path / 'tf'}", *small]))
    assert len(started) == 1 and same(snapshot(tf_generator), started[0])
    monkeypatch.undo()

    seqgen("train", "recipes/debug/lm_adv.yaml", f"output_dir={tmp_path / 'adv'}", "train.max_steps=3",
           "train.log_every=1", f"train.init_from={tmp_path / 'tf' / 'model'}", *small)
    assert (tmp_path / "tf" / "tokenizer.json").read_text() == (tmp_path / "adv" / "tokenizer.json").read_text()
    critic = load_file(tmp_path / "adv" / "model" / "critic.safetensors")
    assert critic and any("conv" in k for k in critic)
    logs = [r for r in read_log(tmp_path / "adv" / "logs" / "metrics.jsonl") if "critic/js_pi" in r]
    assert [r["step"] for r in logs] == [1, 2, 3]
    for r in logs:
        assert 0 <= r["critic/acc_real"] <= 1 and 0 <= r["critic/acc_fake"] <= 1
        assert r["critic/js_pi_over_pi"] == pytest.approx(2 * r["critic/js_pi"])
    # Exponential schedule with beta_max 10 over N = 3 steps: τ_n = 10^(-n/3), n = 0, 1, 2.
    assert [r["train/tau"] for r in logs] == pytest.approx([10 ** (-n / 3) for n in range(3)])


def test_init_from_must_fit_the_recipe(tmp_path):
    with pytest.raises(UserError, match="train.init_from .* neither an exported model folder nor a run folder"):
        train(load_config(None, [*ORACLE, *ADVERSARIAL, f"output_dir={tmp_path / 'a'}",
                                 f"train.init_from={tmp_path}"]))


def test_cli_translation(tmp_path):
    seqgen("train", "recipes/debug/translation.yaml", f"output_dir={tmp_path}", "train.max_steps=2",
           "train.log_every=1", "train.eval_every=100", "train.save_every=100", "train.num_samples=0",
           "train.tensorboard=false", "objective.name=adversarial", "objective.critic.kind=rnn",
           "objective.critic.hidden_dim=8", "objective.critic_loss=ratio", "objective.gradient_penalty=1.0",
           "objective.pi=0.25", "objective.estimator=straight_through", "objective.feed=gumbel")
    logs = [r for r in read_log(tmp_path / "logs" / "metrics.jsonl") if "critic/js_pi" in r]
    assert len(logs) == 2
    assert all(r["critic/gradient_penalty"] >= 0 and r["critic/js_pi_over_1mpi"] == pytest.approx(
        r["critic/js_pi"] / 0.75) for r in logs)
    critic = load_file(tmp_path / "model" / "critic.safetensors")
    assert any(k.startswith("context_encoder") for k in critic)


def test_nan_in_the_critic_loss_stops_the_run(tmp_path, monkeypatch):
    real_loss, calls = adversarial.critic_loss, []

    def nan_from_the_third_call(*args, **kw):
        calls.append(1)
        loss = real_loss(*args, **kw)
        return loss * float("nan") if len(calls) >= 3 else loss

    monkeypatch.setattr(adversarial, "critic_loss", nan_from_the_third_call)
    cfg = load_config(None, [*ORACLE, *ADVERSARIAL, f"output_dir={tmp_path}", "train.max_steps=10",
                             "train.save_every=2", "train.log_every=100", "train.eval_every=100"])
    with pytest.raises(TrainingDiverged, match="NaN or infinite before step 4.*step-0000002"):
        train(cfg)
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-0000002"
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("override, message", [
    ("objective.pi=1.0", r"objective.pi must be in \(0, 1\)"),
    ("objective.critic_steps=0", "objective.critic_steps must be >= 1"),
    ("objective.critic_lr=0", "objective.critic_lr must be positive"),
    ("objective.tau_min=-1", "objective.tau_min must be positive"),
    ("objective.critic.hidden_dim=0", "objective.critic.hidden_dim must be >= 1"),
    ("objective.feed=gumbel", "objective.feed and objective.hard shape straight-through rollouts only"),
    ("objective.hard=false", "objective.feed and objective.hard shape straight-through rollouts only"),
])
def test_a_bad_adversarial_setting_is_named_when_the_recipe_is_read(override, message):
    from seqgen.recipes import check_recipe

    check_recipe(load_config(None, [*ORACLE, *ADVERSARIAL]))
    with pytest.raises(UserError, match=message):
        load_config(None, [*ORACLE, *ADVERSARIAL, override])


@pytest.mark.parametrize("overrides, message", [
    (["objective.critic.kind=oracle"], "objective.critic.kind=oracle needs data.source=toy"),
])
def test_check_recipe_names_a_setting_that_does_not_fit_the_run(overrides, message):
    from seqgen.recipes import check_recipe

    with pytest.raises(UserError, match=message):
        check_recipe(load_config(None, [*ORACLE, *ADVERSARIAL, *overrides]))
