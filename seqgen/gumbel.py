"""Gumbel-softmax samples and the differentiable generator rollout that adversarial training scores.

With logits o and g ~ Gumbel(0, 1), argmax(o + g) is an exact sample of softmax(o), and
ŷ = softmax((o + g) / τ) is a point on the simplex close to its one-hot vector for small τ. The
straight-through sample y - sg(ŷ) + ŷ is that one-hot vector in the forward pass and carries ŷ's
gradient (docs/theory/objectives.md#straight-through-gumbel-softmax). A rollout decodes a batch on
the generator's incremental cache and keeps every position's relaxed token, so a critic reading the
(B, T, V) tensor through its embedding matrix sends gradient back to every generator step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from seqgen.data.batch import Context
from seqgen.errors import UserError
from seqgen.models.base import Generator
from seqgen.randomness import Source, uniform


@dataclass
class Rollout:
    """Sequences decoded by `gumbel_rollout` (or sampled ids alone), BOS excluded.

    Attributes:
        probs: (B, T, V) float relaxed tokens (straight-through one-hot or soft), differentiable with
            respect to the generator's parameters; zero vectors after the first EOS. None for a rollout
            of sampled ids only (the score-function estimators), which a critic reads as `tokens`.
        tokens: (B, T) long sampled ids; PAD after the first EOS.
        mask: (B, T) bool, True up to and including the first EOS (every position of a row that
            has none), False after it.
    """

    probs: Tensor | None
    tokens: Tensor
    mask: Tensor

    def critic_input(self) -> Tensor:
        """What a critic scores: the relaxed tokens, detached, or the ids when there are none."""
        return self.tokens if self.probs is None else self.probs.detach()

    def one_hot(self, vocab_size: int) -> Tensor:
        """(B, T, V) float: the relaxed tokens, or the ids' one-hot vectors (zero after the first EOS)."""
        if self.probs is not None:
            return self.probs
        return torch.nn.functional.one_hot(self.tokens, vocab_size).float() * self.mask[..., None]


def gumbel_noise(shape: tuple[int, ...], *, device: torch.device | str = "cpu",
                 generator: Source = None) -> Tensor:
    """Standard Gumbel noise g = -log(-log U), U ~ Uniform(0, 1), as float32.

    Args:
        shape: the shape of the noise.
        device: where to draw it (the generator, if given, must live there too).
        generator: the source of randomness (`seqgen.randomness.Source`).
    """
    u = uniform(shape, device, generator)
    # torch.rand can return exactly 0, whose double log is -inf, not a sample.
    return -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))


def relax(logits: Tensor, noise: Tensor, tau: float, hard: bool,
          ids: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The Gumbel-softmax sample of `logits` for given Gumbel `noise`.

    Args:
        logits: (..., V) unnormalised log-probabilities.
        noise: (..., V) standard Gumbel noise.
        tau: temperature (> 0).
        hard: return the straight-through sample instead of the soft one.
        ids: (...) the ids already drawn with this noise, if any (default: argmax(o + g)).

    Returns:
        sample (..., V) float32 (straight-through when `hard`), soft (..., V) the soft sample
        ŷ = softmax((o + g) / τ), and ids (...) long = argmax(o + g).
    """
    perturbed = logits.float() + noise
    ids = perturbed.argmax(-1) if ids is None else ids
    soft = (perturbed / tau).softmax(-1)
    if not hard:
        return soft, soft, ids
    one_hot = torch.nn.functional.one_hot(ids, soft.shape[-1]).to(soft.dtype)
    # soft - soft.detach() is exactly zero, so the forward value is exactly one-hot (the usual
    # y - sg(ŷ) + ŷ can miss 1 by a rounding error) while the gradient is ŷ's.
    return one_hot + (soft - soft.detach()), soft, ids


def gumbel_softmax(logits: Tensor, tau: float, hard: bool = False,
                   generator: Source = None) -> tuple[Tensor, Tensor]:
    """Draw a Gumbel-softmax sample.

    Args:
        logits: (..., V) unnormalised log-probabilities o.
        tau: temperature τ > 0.
        hard: straight-through: exactly one-hot in the forward pass, the soft sample's gradient.
        generator: the source of randomness (`seqgen.randomness.Source`).

    Returns:
        sample (..., V) float32: softmax((o + g) / τ), or its straight-through version; and
        ids (...) long: argmax(o + g), an exact sample of softmax(o).

    Raises:
        UserError: tau <= 0.
    """
    _check_tau(tau)
    sample, _, ids = relax(logits, gumbel_noise(tuple(logits.shape), device=logits.device,
                                                generator=generator), tau, hard)
    return sample, ids


def gumbel_rollout(model: Generator, *, context: Context | None = None, num_sequences: int | None = None,
                   max_len: int, tau: float, hard: bool = True, feed: Literal["sample", "gumbel"] = "sample",
                   generator: Source = None, use_cache: bool = True) -> Rollout:
    """Decode a batch by Gumbel-softmax sampling, keeping the relaxed tokens and their gradient.

    Decoding starts from BOS on `model.encode(context)`. At every position the next-token logits
    get fresh Gumbel noise: the id is argmax(o + g) (so `tokens` are exact samples of the model) and
    the relaxed token is ŷ = softmax((o + g) / τ), or its straight-through version when `hard`.
    What the generator reads at the next position is the sampled id (`feed="sample"`, as RelGAN: the
    gradient then reaches the generator only through `probs`) or ŷ itself (`feed="gumbel"`: the
    gradient also flows through the recurrence). Decoding stops after `max_len` positions or once every row
    has produced an EOS. The model runs in whatever mode it is in (dropout included).

    With `feed="sample"` and gradients enabled, the ids are decoded without gradient (keeping the
    noise), and the relaxed tokens then come from one teacher-forced pass over [BOS, ids] with that
    noise: the inputs carry no gradient, so this gives the same tokens, values and gradients as
    decoding with gradient (without dropout; with dropout the pass draws other masks than the
    decoding did), at the cost of one training pass instead of T one-position graphs.

    To compare rollouts with real targets (`Batch.targets`, which hold up to `data.max_length`
    tokens and their EOS), pass `max_len = data.max_length + 1`.

    Args:
        model: any generator.
        context: B contexts, one rollout each (translation, captioning); None for a language model.
        num_sequences: how many sequences a language model decodes (ignored with a context).
        max_len: most positions decoded, EOS included (>= 1).
        tau: Gumbel-softmax temperature (> 0).
        hard: straight-through relaxed tokens (exactly one-hot in the forward pass).
        feed: what is fed back at the next position: "sample" ids or "gumbel" relaxed vectors.
        generator: the only source of randomness (`seqgen.randomness.Source`), one call per position.
        use_cache: decode on the incremental cache (`model.step`). False re-runs `model.forward` on
            the whole prefix at every position, quadratic in T: a reference for tests and benchmarks,
            giving the same rollout for the same random stream.

    Returns:
        The Rollout, T <= max_len columns.

    Raises:
        UserError: tau <= 0 or max_len < 1.
    """
    _check_tau(tau)
    if max_len < 1:
        raise UserError(f"rollout max_len must be >= 1, got {max_len}")
    if feed not in ("sample", "gumbel"):
        raise ValueError(f"feed must be 'sample' or 'gumbel', got {feed!r}")
    if context is None and num_sequences is None:
        raise ValueError("a language model needs num_sequences (there is no context to size the batch)")
    device = model.input_embeddings.device
    if context is not None:
        context = context.to(device)
    vocab = model.vocab
    batch_size = context.batch_size if context is not None else num_sequences
    memory = model.encode(context)
    bos = torch.full((batch_size,), vocab.bos_id, dtype=torch.long, device=device)
    # Fed inputs, BOS first: ids for feed="sample", float vectors (BOS one-hot) for feed="gumbel".
    fed = [bos if feed == "sample" else torch.nn.functional.one_hot(bos, vocab.size).float()]
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    rescore = feed == "sample" and torch.is_grad_enabled()
    state, samples, ids, noises = None, [], [], []
    with torch.no_grad() if rescore else contextlib.nullcontext():
        for _ in range(max_len):
            if use_cache:
                inputs = bos if state is None else fed[-1]  # the cache path reads BOS as an id
                logits, state = model.step(inputs, memory, state)
            else:
                logits = model(torch.stack(fed, 1), memory)[:, -1]
            noise = gumbel_noise(tuple(logits.shape), device=device, generator=generator)
            sample, soft, token = relax(logits, noise, tau, hard)
            if rescore:
                noises.append(noise)
            else:
                samples.append(sample)
            ids.append(token)
            fed.append(token if feed == "sample" else soft)
            finished |= token == vocab.eos_id
            if finished.all():
                break
    tokens = torch.stack(ids, 1)  # (B, T)
    if rescore:
        logits = model(torch.stack(fed[:-1], 1), memory)  # (B, T, V), with gradient
        probs = relax(logits, torch.stack(noises, 1), tau, hard, tokens)[0]
    else:
        probs = torch.stack(samples, 1)  # (B, T, V)
    is_eos = tokens == vocab.eos_id
    mask = (is_eos.cumsum(1) - is_eos.long()) == 0  # no EOS strictly before t
    return Rollout(probs=probs * mask[..., None], tokens=tokens.masked_fill(~mask, vocab.pad_id), mask=mask)


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise UserError(f"Gumbel-softmax temperature tau must be > 0, got {tau}")
