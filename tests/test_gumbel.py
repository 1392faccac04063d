"""Gumbel-softmax samples and generator rollouts: distribution, straight-through gradient, masks,
cache against no-cache decoding, and where the gradient flows."""

from __future__ import annotations

import pytest
import torch

from seqgen.data.batch import Context, Vocab
from seqgen.errors import UserError
from seqgen.gumbel import gumbel_rollout, gumbel_softmax
from seqgen.models.configs import RNNConfig, TransformerConfig
from seqgen.models.hf import build_transformer
from seqgen.models.rnn import RNNGenerator
from seqgen.randomness import RowNoise

VOCAB = Vocab(size=12, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
B = 4


def _rnn(task: str = "lm", cell: str = "lstm") -> RNNGenerator:
    torch.manual_seed(0)
    cfg = RNNConfig(cell=cell, embedding_dim=6, hidden_dim=8, num_layers=2, dropout=0.1)
    return RNNGenerator(VOCAB, cfg, task).eval()


def _hf(task: str, arch: str = "gpt2"):
    torch.manual_seed(0)
    cfg = TransformerConfig(arch=arch, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            max_positions=16)
    return build_transformer(VOCAB, cfg, task).eval()


def _source(batch: int = B) -> Context:
    g = torch.Generator().manual_seed(5)
    lengths = torch.tensor([5, 2, 4, 3])[:batch]
    mask = torch.arange(5)[None, :] < lengths[:, None]
    source = torch.randint(4, VOCAB.size, (batch, 5), generator=g).masked_fill(~mask, VOCAB.pad_id)
    return Context(source=source, source_mask=mask)


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_straight_through_is_one_hot_forward_with_the_soft_gradient():
    logits = torch.randn(3, 5, 7, generator=_rng(1), requires_grad=True)
    weights = torch.randn(3, 5, 7, generator=_rng(2))
    soft, soft_ids = gumbel_softmax(logits, tau=0.7, hard=False, generator=_rng(3))
    (soft_grad,) = torch.autograd.grad((soft * weights).sum(), logits)
    hard, hard_ids = gumbel_softmax(logits, tau=0.7, hard=True, generator=_rng(3))
    (hard_grad,) = torch.autograd.grad((hard * weights).sum(), logits)

    assert torch.equal(hard_ids, soft_ids)
    assert torch.equal(hard, torch.nn.functional.one_hot(hard_ids, 7).float())  # exactly one-hot
    assert torch.equal(soft.argmax(-1), soft_ids)
    torch.testing.assert_close(soft.sum(-1), torch.ones(3, 5))
    assert not torch.equal(soft, hard)
    torch.testing.assert_close(hard_grad, soft_grad, rtol=0, atol=0)
    assert soft_grad.abs().sum() > 0


def test_gumbel_max_ids_follow_the_model_distribution():
    probs = torch.tensor([0.05, 0.1, 0.15, 0.3, 0.4])
    n = 20000
    logits = probs.log().expand(n, -1) + 3.0  # a shift must not change the distribution
    _, ids = gumbel_softmax(logits, tau=1.0, generator=_rng(7))
    counts = torch.bincount(ids, minlength=5).double()
    expected = n * probs.double()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 18.467  # chi-square, 4 degrees of freedom, p = 0.001


def test_temperature_sharpens_the_soft_sample_and_must_be_positive():
    logits = torch.randn(200, 6, generator=_rng(0))
    cold, _ = gumbel_softmax(logits, tau=0.1, generator=_rng(1))
    warm, _ = gumbel_softmax(logits, tau=5.0, generator=_rng(1))
    assert cold.max(-1).values.mean() > 0.9 > warm.max(-1).values.mean()
    with pytest.raises(UserError, match="tau"):
        gumbel_softmax(logits, tau=0.0)


def test_rollout_mask_ends_after_the_first_eos():
    model = _rnn()
    with torch.no_grad():
        model.out.bias[VOCAB.eos_id] += 1.5  # EOS at varied positions
    out = gumbel_rollout(model, num_sequences=16, max_len=8, tau=1.0, generator=_rng(0))
    raw = gumbel_rollout(model, num_sequences=16, max_len=8, tau=1.0, generator=_rng(0))
    assert torch.equal(out.tokens, raw.tokens)  # reproducible under the same seed
    lengths = out.mask.sum(1)
    assert len(set(lengths.tolist())) >= 3 and int(lengths.max()) == out.tokens.shape[1]  # varied ends
    for row in range(16):
        n = int(lengths[row])
        assert out.mask[row, :n].all() and not out.mask[row, n:].any()
        eos = (out.tokens[row] == VOCAB.eos_id).nonzero().flatten().tolist()
        assert eos == [n - 1] or (eos == [] and n == out.tokens.shape[1])
        assert (out.tokens[row, n:] == VOCAB.pad_id).all()
        assert torch.equal(out.probs[row, :n].argmax(-1), out.tokens[row, :n])
        assert (out.probs[row, n:] == 0).all()


def test_rollout_stops_at_max_len_and_when_every_row_ended():
    model = _rnn()
    out = gumbel_rollout(model, num_sequences=3, max_len=4, tau=1.0, generator=_rng(0))
    assert out.tokens.shape == (3, 4) and out.probs.shape == (3, 4, VOCAB.size)
    with torch.no_grad():
        model.out.bias[VOCAB.eos_id] += 100.0
    out = gumbel_rollout(model, num_sequences=3, max_len=4, tau=1.0, generator=_rng(0))
    assert out.tokens.tolist() == [[VOCAB.eos_id]] * 3 and out.mask.all()
    with pytest.raises(UserError, match="max_len"):
        gumbel_rollout(model, num_sequences=3, max_len=0, tau=1.0)
    with pytest.raises(ValueError, match="feed must be 'sample' or 'gumbel'"):
        gumbel_rollout(model, num_sequences=3, max_len=4, tau=1.0, feed="hard")


def test_rollout_rows_drawn_from_row_noise_match_the_whole_batch():
    """A process holding rows 1 and 3 of a global batch of 4 draws for them what one process draws for
    all 4 (`seqgen.randomness.RowNoise`)."""
    model = _rnn()
    with torch.no_grad():
        model.out.bias[VOCAB.eos_id] += 1.0  # rows end at different positions
    whole = gumbel_rollout(model, num_sequences=4, max_len=6, tau=0.5, generator=RowNoise("k", None, 4))
    part = gumbel_rollout(model, num_sequences=2, max_len=6, tau=0.5,
                          generator=RowNoise("k", torch.tensor([1, 3]), 4))
    n = part.tokens.shape[1]
    assert torch.equal(part.tokens, whole.tokens[[1, 3], :n]) and torch.equal(part.mask, whole.mask[[1, 3], :n])
    assert not whole.mask[[1, 3], n:].any()  # what the part did not decode is past both rows' ends
    torch.testing.assert_close(part.probs, whole.probs[[1, 3], :n], rtol=1e-5, atol=1e-6)


CACHE_CASES = {
    "rnn_lstm_lm": lambda: (_rnn("lm", "lstm"), None),
    "rnn_gru_translation": lambda: (_rnn("translation", "gru"), _source()),
    "gpt2_lm": lambda: (_hf("lm"), None),
    "bart_translation": lambda: (_hf("translation", "bart"), _source()),
}


@pytest.mark.parametrize("feed", ["sample", "gumbel"])
@pytest.mark.parametrize("case", list(CACHE_CASES))
def test_cache_and_no_cache_rollouts_agree(case, feed):
    model, context = CACHE_CASES[case]()
    kwargs = {"context": context, "num_sequences": B, "max_len": 7, "tau": 0.8, "feed": feed}
    cached = gumbel_rollout(model, **kwargs, generator=_rng(4))
    uncached = gumbel_rollout(model, **kwargs, generator=_rng(4), use_cache=False)
    assert cached.tokens.shape[0] == B
    assert torch.equal(cached.tokens, uncached.tokens)
    assert torch.equal(cached.mask, uncached.mask)
    torch.testing.assert_close(cached.probs, uncached.probs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("feed", ["sample", "gumbel"])
@pytest.mark.parametrize("case", ["rnn_gru_translation", "gpt2_lm"])
def test_gradient_reaches_every_generator_parameter_through_probs(case, feed):
    model, context = CACHE_CASES[case]()
    out = gumbel_rollout(model, context=context, num_sequences=B, max_len=5, tau=1.0, feed=feed,
                         generator=_rng(1))
    weights = torch.randn(out.probs.shape, generator=_rng(2))
    (out.probs * weights).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("case", list(CACHE_CASES))
def test_sample_feed_rollout_equals_decoding_with_gradient(case):
    """The sample-feed rollout decodes without gradient and re-scores [BOS, ids] in one pass; written out
    here is its definition: one `step` with gradient per position, fed the sampled id."""
    model, context = CACHE_CASES[case]()
    out = gumbel_rollout(model, context=context, num_sequences=B, max_len=6, tau=0.7, feed="sample",
                         generator=_rng(3))
    weights = torch.randn(out.probs.shape, generator=_rng(2))
    (out.probs * weights).sum().backward()
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    rng, memory, state = _rng(3), model.encode(context), None
    x, probs, ids = torch.full((B,), VOCAB.bos_id), [], []
    for _ in range(out.tokens.shape[1]):
        logits, state = model.step(x, memory, state)
        noise = -torch.log(-torch.log(torch.rand(logits.shape, generator=rng).clamp(min=torch.finfo().tiny)))
        soft = ((logits + noise) / 0.7).softmax(-1)
        x = (logits + noise).argmax(-1)
        probs.append(torch.nn.functional.one_hot(x, VOCAB.size) + soft - soft.detach())
        ids.append(x)
    mask = out.mask[..., None]
    assert torch.equal(out.tokens[out.mask], torch.stack(ids, 1)[out.mask])
    torch.testing.assert_close(out.probs, torch.stack(probs, 1) * mask, rtol=1e-5, atol=1e-6)
    (torch.stack(probs, 1) * mask * weights).sum().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def _record_inputs(model, monkeypatch) -> list[torch.Tensor]:
    fed: list[torch.Tensor] = []
    step = model.step

    def recording_step(inputs, memory, state):
        if inputs.is_floating_point():
            inputs.retain_grad()
        fed.append(inputs)
        return step(inputs, memory, state)

    monkeypatch.setattr(model, "step", recording_step)
    return fed


def test_sample_feed_reads_sampled_ids_and_gumbel_feed_reads_relaxed_vectors(monkeypatch):
    model = _rnn()
    fed_sample = _record_inputs(model, monkeypatch)
    sampled = gumbel_rollout(model, num_sequences=B, max_len=4, tau=0.5, hard=False, feed="sample",
                          generator=_rng(3))
    monkeypatch.undo()
    fed_gumbel = _record_inputs(model, monkeypatch)
    relaxed = gumbel_rollout(model, num_sequences=B, max_len=4, tau=0.5, hard=False, feed="gumbel",
                          generator=_rng(3))

    assert (fed_sample[0] == VOCAB.bos_id).all() and (fed_gumbel[0] == VOCAB.bos_id).all()
    # The first position reads only BOS, so both feeds sample it alike.
    assert torch.equal(sampled.tokens[:, 0], relaxed.tokens[:, 0])
    # (equal up to rounding: the sample feed's relaxed tokens come from a whole-sequence pass)
    torch.testing.assert_close(sampled.probs[:, 0], relaxed.probs[:, 0], rtol=1e-5, atol=1e-7)
    for t in range(1, 4):
        assert fed_sample[t].dtype == torch.long
        assert torch.equal(fed_sample[t][sampled.mask[:, t - 1]], sampled.tokens[:, t - 1][sampled.mask[:, t - 1]])
        vectors = fed_gumbel[t]
        assert vectors.shape == (B, VOCAB.size) and vectors.requires_grad
        torch.testing.assert_close(vectors.sum(-1), torch.ones(B))
        assert (vectors.max(-1).values < 1).all()  # relaxed, not one-hot
        live = relaxed.mask[:, t - 1]
        assert torch.equal(vectors.argmax(-1)[live], relaxed.tokens[:, t - 1][live])
    # Different inputs from the second position on: the later relaxed tokens differ.
    assert not torch.allclose(sampled.probs[:, 1:].detach(), relaxed.probs[:, 1:].detach())

    # Gumbel feed: the last position's relaxed token depends on what was fed before it.
    (relaxed.probs[:, -1] * torch.randn(B, VOCAB.size, generator=_rng(5))).sum().backward()
    assert fed_gumbel[2].grad is not None and fed_gumbel[2].grad.abs().sum() > 0

    # Straight-through outputs still feed the relaxed vector, not its one-hot forward value.
    monkeypatch.undo()
    fed_straight = _record_inputs(model, monkeypatch)
    straight = gumbel_rollout(model, num_sequences=B, max_len=4, tau=0.5, hard=True, feed="gumbel",
                              generator=_rng(3))
    assert torch.equal(straight.tokens, relaxed.tokens)
    torch.testing.assert_close(fed_straight[2], fed_gumbel[2], rtol=0, atol=0)


def test_conditional_rollout_is_one_sequence_per_context_row():
    model = _rnn("translation", "gru")
    context = _source(3)
    out = gumbel_rollout(model, context=context, num_sequences=10, max_len=5, tau=1.0, hard=False,
                         generator=_rng(0))
    assert out.tokens.shape[0] == 3 and out.probs.shape[0] == 3
    # Same noise, other sources: the relaxed tokens change with the context.
    other = Context(source=context.source.flip(0), source_mask=context.source_mask.flip(0))
    moved = gumbel_rollout(model, context=other, max_len=5, tau=1.0, hard=False, generator=_rng(0))
    assert not torch.allclose(out.probs[:, 0], moved.probs[:, 0])
    with pytest.raises(ValueError, match="num_sequences"):
        gumbel_rollout(model, max_len=5, tau=1.0)
