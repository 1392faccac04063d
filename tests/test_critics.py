"""Critics over relaxed sequences: masking, id/one-hot equivalence, gradients, context, spectral norm,
gradient penalty."""

from __future__ import annotations

import copy
import dataclasses
import inspect

import pytest
import torch
from torch import nn

from seqgen.config import load_config
from seqgen.data.batch import Context
from seqgen.errors import UserError
from seqgen.models.critics import Critic, CriticConfig, build_critic, gradient_penalty

V, B, T = 11, 4, 7
LENGTHS = torch.tensor([7, 3, 1, 5])
SMALL = {"embedding_dim": 8, "hidden_dim": 8}
# name -> build_critic keywords
KINDS = {
    "cnn": {"kind": "cnn"},
    "cnn_two_representations": {"kind": "cnn", "num_representations": 2, "window_sizes": (1, 3)},
    "rnn_lstm_last": {"kind": "rnn", "cell": "lstm", "pooling": "last", "num_layers": 2},
    "rnn_gru_mean": {"kind": "rnn", "cell": "gru", "pooling": "mean"},
    "transformer": {"kind": "transformer", "num_attention_heads": 2, "max_positions": 16, "embedding_dim": 6},
}
TASKS = ["lm", "translation", "captioning"]


def _critic(name: str, task: str = "lm", **overrides) -> Critic:
    torch.manual_seed(0)
    return build_critic(vocab_size=V, task=task, **{**SMALL, **KINDS[name], **overrides}).eval()


def _mask(lengths: torch.Tensor = LENGTHS, width: int = T) -> torch.Tensor:
    return torch.arange(width)[None, :] < lengths[:, None]


def _probs(seed: int, width: int = T) -> torch.Tensor:
    return torch.randn(B, width, V, generator=torch.Generator().manual_seed(seed)).softmax(-1)


def _context(task: str, seed: int = 3) -> Context | None:
    g = torch.Generator().manual_seed(seed)
    if task == "translation":
        mask = _mask(torch.tensor([4, 2, 5, 1]), 5)
        source = torch.randint(4, V, (B, 5), generator=g).masked_fill(~mask, 0)
        return Context(source=source, source_mask=mask)
    if task == "captioning":
        return Context(pixels=torch.randn(B, 3, 16, 16, generator=g))
    return None


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list(KINDS))
def test_masked_positions_do_not_change_the_logits(name, task):
    critic, context, mask = _critic(name, task), _context(task), _mask()
    tokens = _probs(0)
    logits = critic(tokens, mask, context)
    assert logits.shape == (B,)
    other = torch.where(mask[..., None], tokens, _probs(1))  # new content after each row's end
    torch.testing.assert_close(critic(other, mask, context), logits, rtol=1e-5, atol=1e-6)
    longer = torch.cat([tokens, _probs(2, 3)], dim=1)  # and more padding columns
    torch.testing.assert_close(critic(longer, _mask(LENGTHS, T + 3), context), logits, rtol=1e-5, atol=1e-6)
    # Unmasked content does count.
    changed = tokens.clone()
    changed[:, 0] = _probs(3)[:, 0]
    assert not torch.allclose(critic(changed, mask, context), logits)


@pytest.mark.parametrize("name", list(KINDS))
def test_ids_and_their_one_hot_vectors_score_alike(name):
    critic = _critic(name)
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(0))
    one_hot = nn.functional.one_hot(ids, V).float()
    torch.testing.assert_close(critic(ids, _mask()), critic(one_hot, _mask()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(KINDS))
def test_gradient_reaches_every_unmasked_position(name):
    critic, mask = _critic(name, hidden_dim=16), _mask()
    tokens = _probs(0).requires_grad_(True)
    critic(tokens, mask).sum().backward()
    per_position = tokens.grad.abs().sum(-1)  # (B, T)
    assert (per_position[mask] > 0).all()
    assert (per_position[~mask] == 0).all()


@pytest.mark.parametrize("task", ["translation", "captioning"])
@pytest.mark.parametrize("name", ["cnn", "rnn_gru_mean", "transformer"])
def test_conditional_critics_change_with_the_context(name, task):
    critic, mask, tokens = _critic(name, task), _mask(), _probs(0)
    logits = critic(tokens, mask, _context(task, seed=3))
    moved = critic(tokens, mask, _context(task, seed=4))
    assert ((logits - moved).abs() > 1e-6).all()
    with pytest.raises(ValueError, match="needs Context"):
        critic(tokens, mask, None)


def test_representations_average_their_logits():
    critic, mask, tokens = _critic("cnn_two_representations"), _mask(), _probs(0)
    singles = []
    for embedding in critic.embeddings:
        single = copy.deepcopy(critic)
        single.embeddings = nn.ModuleList([copy.deepcopy(embedding)])
        singles.append(single(tokens, mask))
    torch.testing.assert_close(critic(tokens, mask), (singles[0] + singles[1]) / 2)
    assert not torch.allclose(singles[0], singles[1])


def _top_singular_values(critic: Critic) -> list[float]:
    layers = [m for m in critic.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    assert layers
    return [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in layers]


@pytest.mark.parametrize("task", ["lm", "captioning"])
@pytest.mark.parametrize("name", ["cnn", "rnn_gru_mean", "transformer"])
def test_spectral_norm_scales_every_layer_to_unit_top_singular_value(name, task):
    plain = _top_singular_values(_critic(name, task))
    assert max(abs(s - 1) for s in plain) > 0.1  # without it they are not 1
    critic = _critic(name, task, spectral_norm=True).train()
    for _ in range(20):  # one power iteration per training forward
        critic(_probs(0), _mask(), _context(task))
    critic.eval()
    assert _top_singular_values(critic) == pytest.approx([1.0] * len(plain), abs=2e-2)


class _LinearCritic(nn.Module):
    """logit = <w, tokens>: its input gradient is w everywhere, of norm ‖w‖."""

    def __init__(self, norm: float) -> None:
        super().__init__()
        w = torch.randn(T, V, generator=torch.Generator().manual_seed(0))
        self.w = nn.Parameter(w * norm / w.norm())

    def forward(self, tokens, mask, context=None):
        return (tokens * self.w * mask[..., None]).sum((1, 2))


def test_gradient_penalty_is_zero_at_unit_gradient_norm_and_positive_elsewhere():
    real = nn.functional.one_hot(torch.randint(0, V, (B, T)), V).float()
    fake, mask = _probs(0), torch.ones(B, T, dtype=torch.bool)
    unit = gradient_penalty(_LinearCritic(1.0), real, fake, mask).detach()
    steep = gradient_penalty(_LinearCritic(3.0), real, fake, mask).detach()
    assert float(unit) == pytest.approx(0, abs=1e-10)
    assert float(steep) == pytest.approx(4.0, rel=1e-5)  # (3 - 1)²

    critic = _critic("cnn")
    penalty = gradient_penalty(critic, real, fake, _mask(), generator=torch.Generator().manual_seed(0))
    assert penalty.ndim == 0 and float(penalty.detach()) >= 0
    penalty.backward()  # it trains the critic
    assert critic.embeddings[0].weight.grad.abs().sum() > 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown critic kind 'lstm'"):
        build_critic("lstm", V)
    with pytest.raises(ValueError, match="unknown critic kind 'oracle'"):  # computed by the objective, not built
        build_critic("oracle", V)
    with pytest.raises(UserError, match="unknown critic task"):
        build_critic("cnn", V, task="speech")
    critic = _critic("transformer")
    with pytest.raises(UserError, match="max_positions=16"):
        critic(_probs(0, 17), _mask(LENGTHS, 17))
    # the settings themselves are checked where a recipe sets them: in CriticConfig
    with pytest.raises(UserError, match="objective.critic.hidden_dim=10 is not a multiple of "
                                        "objective.critic.num_attention_heads=4"):
        CriticConfig(kind="transformer", hidden_dim=10, num_attention_heads=4)
    with pytest.raises(UserError, match="objective.critic.window_sizes must be widths >= 1"):
        CriticConfig(window_sizes=[0, 2])
    with pytest.raises(UserError, match="config key objective.critic.cell: 'rnn' is not one of lstm, gru"):
        load_config(None, ["objective.name=adversarial", "objective.critic.kind=rnn", "objective.critic.cell=rnn"])


def test_critic_config_fields_are_build_critic_keywords():
    keywords = set(inspect.signature(build_critic).parameters) - {"vocab_size", "task"}
    assert {f.name for f in dataclasses.fields(CriticConfig)} == keywords
    for kind in ("cnn", "rnn", "transformer"):
        cfg = CriticConfig(kind=kind, embedding_dim=6, hidden_dim=8, num_layers=2, num_representations=2,
                           window_sizes=[1, 2], cell="lstm", pooling="mean", num_attention_heads=2,
                           max_positions=16, spectral_norm=True)
        critic = build_critic(vocab_size=V, task="translation", **dataclasses.asdict(cfg))
        assert len(critic.embeddings) == 2 and critic.embeddings[0].weight.shape == (V, 6)
        assert critic(_probs(0), _mask(), _context("translation")).shape == (B,)
    assert [c.kernel_size[0] for c in build_critic(vocab_size=V, **dataclasses.asdict(
        CriticConfig(window_sizes=[1, 2]))).convs] == [1, 2]
