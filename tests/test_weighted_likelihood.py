"""The weighted-likelihood family: its identities, each preset's loss and gradient by hand, and training
through the command line."""

import json
import math

import pytest
import torch

from seqgen.data.batch import Batch, Vocab
from seqgen.errors import UserError
from seqgen.models.configs import RNNConfig
from seqgen.models import build_generator
from seqgen.objectives import (
    TeacherForcing,
    WeightedLikelihood,
    WeightedLikelihoodConfig,
    build_objective,
)
from seqgen.objectives.weighted_likelihood import token_weights

VOCAB = Vocab(size=9, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def _batch() -> Batch:
    tokens = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 4, 2, 0, 0], [1, 4, 4, 4, 5, 2]])
    return Batch(tokens=tokens, mask=tokens != 0)


def _generator(seed: int = 0):
    torch.manual_seed(seed)
    return build_generator(RNNConfig(embedding_dim=8, hidden_dim=8), VOCAB, "lm")


def test_the_presets_meet_where_the_papers_say():
    p = torch.rand(1000, dtype=torch.float64)
    w = lambda **kw: token_weights(p, WeightedLikelihoodConfig(**kw))  # noqa: E731
    torch.testing.assert_close(w(preset="tailr", gamma=1.0), w(preset="dft"))
    torch.testing.assert_close(w(preset="mixce", eta=0.0), w(preset="dft"))
    torch.testing.assert_close(w(preset="tailr", gamma=0.0), w(preset="mle"))
    torch.testing.assert_close(w(preset="mixce", eta=1.0), w(preset="mle"))
    assert torch.equal(w(preset="mle"), torch.ones_like(p))
    # TaiLr's weight is the clamp of p / (γ + (1 - γ) p): never above 1, never below min_weight
    tailr = w(preset="tailr", gamma=0.3, min_weight=0.2)
    assert tailr.max() <= 1 and tailr.min() >= 0.2


@pytest.mark.parametrize("cfg, weight_of", [
    (WeightedLikelihoodConfig(preset="mle"), lambda p: 1.0),
    (WeightedLikelihoodConfig(preset="dft"), lambda p: p),
    (WeightedLikelihoodConfig(preset="mixce", eta=0.3), lambda p: 0.3 + 0.7 * p),
    (WeightedLikelihoodConfig(preset="tailr", gamma=0.25, min_weight=0.05),
     lambda p: min(1.0, max(0.05, p / (0.25 + 0.75 * p)))),
], ids=["mle", "dft", "mixce", "tailr"])
def test_loss_and_gradient_are_the_papers_formula_by_hand(cfg, weight_of):
    generator, batch = _generator(), _batch()
    loss, metrics = WeightedLikelihood(generator, cfg)(batch, 0)
    loss.backward()
    got = {name: p.grad.clone() for name, p in generator.named_parameters()}

    # by hand: one token at a time, its weight a plain number from the model's own probability
    generator.zero_grad()
    logits = generator(batch.inputs, None)
    terms, count = [], 0
    for b in range(len(batch)):
        for t in range(batch.targets.shape[1]):
            if not batch.target_mask[b, t]:
                continue
            log_p = logits[b, t].log_softmax(-1)[batch.targets[b, t]]
            terms.append(-weight_of(math.exp(log_p.item())) * log_p)
            count += 1
    expected = torch.stack(terms).sum() / count
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for name, p in generator.named_parameters():
        torch.testing.assert_close(got[name], p.grad, msg=f"gradient of {name}")
    assert 0 < metrics["weight"] <= 1


def test_mle_preset_is_teacher_forcing():
    batch = _batch()
    a, _ = WeightedLikelihood(_generator(), WeightedLikelihoodConfig(preset="mle"))(batch, 0)
    b, _ = TeacherForcing(_generator())(batch, 0)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("key", ["eta", "gamma", "min_weight"])
def test_settings_out_of_range_are_refused(key):
    with pytest.raises(UserError, match=f"objective.{key} must be in \\[0, 1\\]"):
        WeightedLikelihoodConfig(**{key: 1.5})


def test_it_is_registered_and_weights_tokens_like_teacher_forcing():
    objective = build_objective(WeightedLikelihoodConfig(), _generator())
    batch = _batch()
    assert objective.weight(batch) == batch.num_target_tokens
    assert [p.namespace for p in objective.players()] == ["train"] and not objective.exports()


@pytest.mark.parametrize("recipe", ["recipes/debug/lm.yaml", "recipes/debug/translation.yaml",
                                    "recipes/debug/captioning.yaml"])
def test_each_preset_trains_through_the_cli_and_resumes_exactly(recipe, tmp_path, seqgen, monkeypatch):
    from pathlib import Path

    from safetensors.torch import load_file

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    common = [recipe, "objective.name=weighted_likelihood", "objective.preset=mixce", "objective.eta=0.5",
              "train.max_steps=4", "train.save_every=2", "train.eval_every=4", "train.log_every=1",
              "train.num_samples=0"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert seqgen("train", *common, f"output_dir={whole}").returncode == 0
    assert seqgen("train", *common, f"output_dir={cut}", "train.max_steps=2").returncode == 0
    assert seqgen("train", *common, f"output_dir={cut}", "--resume").returncode == 0
    a, b = load_file(whole / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(line) for line in (whole / "logs" / "metrics.jsonl").read_text().splitlines()]
    weights = [r["train/weight"] for r in logged if "train/weight" in r]
    assert len(weights) == 4 and all(0.5 <= w <= 1 for w in weights)  # mixce at η = 0.5: w in [0.5, 1]
