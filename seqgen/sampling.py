"""Decoding from any Generator: greedy, ancestral sampling (temperature, top-k, top-p) and beam search.

Every strategy runs on the generator's incremental cache (`Generator.step`): each position is fed
once, the prefix is never re-run. Outputs are (B, L) long ids without the leading BOS; a row ends at
its EOS and is padded with PAD after it, or is cut after `max_new_tokens` tokens without an EOS.

`max_new_tokens` does not count the EOS (like `data.max_length`): a row may hold `max_new_tokens`
tokens and then its EOS, so that every sentence of the training length can be produced. The EOS is
kept only when the model emits it right after those tokens; the output is then at most
`max_new_tokens + 1` columns wide, and only as wide as its longest row.

The model is run in whatever mode it is in: call `model.eval()` first for dropout-free decoding.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from seqgen.config import DecodeConfig
from seqgen.data.batch import Context
from seqgen.errors import UserError
from seqgen.models.base import Generator
from seqgen.randomness import Source, uniform


def categorical(logits: Tensor, generator: Source = None) -> Tensor:
    """One sample per row of softmax(logits): logits (..., V), -inf allowed -> ids (...,).

    Inverse-CDF sampling with one uniform per row, which costs a tenth of `torch.multinomial` at the
    batch sizes of training and decoding.
    """
    logits = logits.float()
    cdf = (logits - logits.amax(-1, keepdim=True)).exp().cumsum(-1)  # (..., V), unnormalised
    u = uniform(cdf.shape[:-1] + (1,), cdf.device, generator) * cdf[..., -1:]
    return torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1).squeeze(-1)


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering of next-token logits.

    Top-p keeps the most likely tokens until their probability reaches `top_p`; tokens tied in
    probability with the last one needed are kept too, so the kept set never depends on how a sort
    orders equal values (it may then hold a little more than the smallest prefix). The most likely
    token is always kept.

    Args:
        logits: (B, V) next-token logits; -inf entries are already impossible tokens.
        temperature: logits are divided by it (> 0); below 1 sharpens, above 1 flattens.
        top_k: keep exactly the k largest logits per row (0, or k >= V, keeps all).
        top_p: keep the smallest set of most likely tokens whose probability reaches p, in (0, 1].

    Returns:
        (B, V) logits with the removed entries at -inf.

    Raises:
        UserError: temperature <= 0, top_k < 0 or top_p outside (0, 1].
    """
    _check_filters(temperature, top_k, top_p)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        top = logits.topk(top_k, dim=-1).indices
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, top, True)
        logits = logits.masked_fill(~keep, -math.inf)
    if top_p < 1:
        probs = logits.float().softmax(-1)
        sorted_probs = probs.sort(-1, descending=True).values
        # A token is needed while the tokens before it have not reached p yet.
        needed = (sorted_probs.cumsum(-1) - sorted_probs < top_p).sum(-1, keepdim=True)
        threshold = sorted_probs.gather(-1, needed.clamp(min=1) - 1)
        logits = logits.masked_fill(probs < threshold, -math.inf)
    return logits


@torch.no_grad()
def generate(model: Generator, cfg: DecodeConfig, *, context: Context | None = None,
             num_sequences: int | None = None, rng: torch.Generator | None = None,
             alpha: float | None = None) -> Tensor:
    """Decode a batch with `cfg.strategy`: greedy, sample (ancestral) or beam.

    Args:
        model: any generator; decoding starts from a BOS column on `model.encode(context)`.
        cfg: strategy, sampling filters, beam settings and `max_new_tokens`.
        context: the B contexts to decode for (translation, captioning); None for a language model.
        num_sequences: how many sequences a language model decodes (ignored with a context).
        rng: the only source of randomness when sampling, on the model's device; None uses torch's
            default generator. Greedy and beam search are deterministic.
        alpha: inverse temperature (logits * alpha); when given it replaces `cfg.temperature`.

    Returns:
        (B, L) long ids without BOS, B = context batch size or `num_sequences`; see the module
        docstring for how rows end.

    Raises:
        UserError: an invalid decoding setting.
    """
    if cfg.max_new_tokens < 0:
        raise UserError(f"decode max_new_tokens must be >= 0, got {cfg.max_new_tokens}")
    if alpha is not None and not alpha > 0:
        raise UserError(f"inverse temperature alpha must be > 0, got {alpha}")
    if context is None and num_sequences is None:
        raise ValueError("a language model needs num_sequences (there is no context to size the batch)")
    device = _device(model)
    if context is not None:
        context = context.to(device)
    if cfg.strategy == "beam":
        out = beam_search(model, context, cfg.beam_size, cfg.max_new_tokens, cfg.length_penalty)
        # Beam search is deterministic: a language model's sequences are all the same one.
        return out if context is not None else out.expand(num_sequences, -1).clone()
    temperature = 1 / alpha if alpha is not None else cfg.temperature
    _check_filters(temperature, cfg.top_k, cfg.top_p)
    if rng is not None and rng.device.type != device.type:
        raise ValueError(f"rng is on {rng.device} but the model is on {device}")
    vocab = model.vocab
    batch_size = context.batch_size if context is not None else num_sequences
    memory = model.encode(context)
    inputs = torch.full((batch_size,), vocab.bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    state, columns = None, []
    for t in range(cfg.max_new_tokens + 1):
        logits, state = model.step(inputs, memory, state)
        if cfg.strategy == "greedy":
            tokens = logits.argmax(-1)
        else:
            tokens = categorical(filter_logits(logits.float(), temperature, cfg.top_k, cfg.top_p), rng)
        if t == cfg.max_new_tokens:
            tokens = tokens.masked_fill(tokens != vocab.eos_id, vocab.pad_id)  # cut: only an EOS may follow
        tokens = tokens.masked_fill(finished, vocab.pad_id)
        columns.append(tokens)
        finished |= tokens == vocab.eos_id
        if finished.all():
            break
        inputs = tokens
    out = torch.stack(columns, 1)
    if out.shape[1] > cfg.max_new_tokens and not (out[:, -1] == vocab.eos_id).any():
        out = out[:, :-1]  # no row ended right at the limit: the EOS-only column is empty
    return out


@torch.no_grad()
def beam_search(model: Generator, context: Context | None, beam_size: int, max_new_tokens: int,
                length_penalty: float) -> Tensor:
    """The best hypothesis of a beam search per example, batched over examples x beams on the cache.

    Each example has `beam_size` slots. At every step the live hypotheses' one-token extensions
    compete for the slots not yet taken by finished hypotheses; an extension by EOS that wins a slot
    is finished and keeps that slot, so the live beam narrows until the beam is exhausted (beam size
    1 is exactly greedy decoding). Finished hypotheses are ranked by log-prob / length **
    length_penalty, where the length counts the generated tokens including EOS; since all extensions
    at one step have the same length, competing for slots by log-prob is the same as by that score.
    At the length limit, as in `generate`, the extensions after `max_new_tokens` tokens compete as
    usual, and one that does not end with EOS is cut back to those tokens (keeping the score of the
    sequence it was cut from).

    Early stopping: an example stops once no live hypothesis can still beat its best finished one.
    Extending a hypothesis only lowers its log-prob s <= 0, so its best possible score is
    s / L ** length_penalty for the most favourable completed length L: the longest allowed
    (max_new_tokens + 1) when length_penalty > 0, the shortest (one more token) otherwise. This
    bound is exact, so stopping never changes the result.

    Args:
        model: any generator; decoding starts from a BOS column on `model.encode(context)`.
        context: B contexts, or None for a language model (B = 1).
        beam_size: slots per example (>= 1).
        max_new_tokens: longest output, EOS excluded.
        length_penalty: exponent of the length normalisation (0: plain log-prob).

    Returns:
        (B, L) long ids without BOS: the best hypothesis per example, ending in EOS then PAD, or
        cut at `max_new_tokens` without EOS.

    Raises:
        UserError: beam_size < 1 or max_new_tokens < 0.
    """
    if beam_size < 1:
        raise UserError(f"decode beam_size must be >= 1, got {beam_size}")
    if max_new_tokens < 0:
        raise UserError(f"decode max_new_tokens must be >= 0, got {max_new_tokens}")
    device = _device(model)
    vocab = model.vocab
    batch_size = context.batch_size if context is not None else 1
    k = beam_size
    example_rows = torch.arange(batch_size, device=device).repeat_interleave(k)  # (B*K,)
    memory = model.select_memory(model.encode(None if context is None else context.to(device)), example_rows)
    inputs = torch.full((batch_size * k,), vocab.bos_id, dtype=torch.long, device=device)
    # All beams start from the same BOS; only the first is live so that they do not duplicate it.
    scores = torch.full((batch_size, k), -math.inf, device=device)
    scores[:, 0] = 0.0
    history = torch.empty(batch_size * k, 0, dtype=torch.long, device=device)
    num_finished = torch.zeros(batch_size, dtype=torch.long, device=device)
    best = _Finished(batch_size, max_new_tokens + 1, vocab.pad_id, device)
    state = None
    rank = torch.arange(k, device=device)
    for t in range(max_new_tokens + 1):
        logits, state = model.step(inputs, memory, state)
        log_probs = logits.float().log_softmax(-1).view(batch_size, k, -1)
        length_norm = (t + 1) ** length_penalty
        candidates = (scores.unsqueeze(-1) + log_probs).view(batch_size, -1)  # (B, K*V)
        top_scores, top_index = candidates.topk(k, dim=-1)
        beam, tokens = top_index // log_probs.shape[-1], top_index % log_probs.shape[-1]
        won = (rank < (k - num_finished).unsqueeze(1)) & (top_scores > -math.inf)
        ended = won & (tokens == vocab.eos_id)
        past = history.view(batch_size, k, t)
        best.update(top_scores / length_norm, ended, past, beam, vocab.eos_id)
        if t == max_new_tokens:
            best.update(top_scores / length_norm, won & ~ended, past, beam, None)  # cut, as greedy does
            break
        num_finished += ended.sum(1)
        scores = top_scores.masked_fill(~won | ended, -math.inf)
        # Stop examples whose best finished hypothesis no live one can beat.
        longest = max_new_tokens + 1 if length_penalty > 0 else t + 2
        bound = scores.max(1).values / longest ** length_penalty
        scores = scores.masked_fill((best.found & (bound <= best.scores)).unsqueeze(1), -math.inf)
        if not (scores > -math.inf).any():
            break
        rows = (beam + torch.arange(batch_size, device=device).unsqueeze(1) * k).view(-1)
        state = model.select_state(state, rows)
        history = torch.cat([history[rows], tokens.view(-1, 1)], 1)
        inputs = tokens.view(-1)
    return best.tokens[:, : int(best.lengths.max())]


class _Finished:
    """The best finished hypothesis of every example so far (tokens padded to the longest length)."""

    def __init__(self, batch_size: int, width: int, pad_id: int, device: torch.device) -> None:
        self.pad_id = pad_id
        self.tokens = torch.full((batch_size, width), pad_id, dtype=torch.long, device=device)
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.scores = torch.full((batch_size,), -math.inf, device=device)
        self.found = torch.zeros(batch_size, dtype=torch.bool, device=device)

    def update(self, scores: Tensor, ended: Tensor, history: Tensor, beam: Tensor,
               eos_id: int | None) -> None:
        """Offer hypotheses that end now.

        Args:
            scores: (B, K) normalised scores of the offered hypotheses.
            ended: (B, K) bool, which of them are real finished hypotheses.
            history: (B, K, t) tokens of the live beams before this step.
            beam: (B, K) long, the live beam each hypothesis extends.
            eos_id: the EOS the hypotheses end with, or None for hypotheses cut at the length limit.
        """
        scores = scores.masked_fill(~ended, -math.inf)
        top, which = scores.max(1)
        better = ended.any(1) & (~self.found | (top > self.scores))
        source = beam.gather(1, which.unsqueeze(1)).squeeze(1)
        prefix = history[torch.arange(history.shape[0], device=history.device), source]  # (B, t)
        t = prefix.shape[1]
        self.tokens[better] = self.pad_id
        self.tokens[better, :t] = prefix[better]
        if eos_id is not None:
            self.tokens[better, t] = eos_id
        self.lengths[better] = t + (eos_id is not None)
        self.scores[better] = top[better]
        self.found |= better


def _check_filters(temperature: float, top_k: int, top_p: float) -> None:
    if not temperature > 0:
        raise UserError(f"decode temperature must be > 0, got {temperature}")
    if top_k < 0:
        raise UserError(f"decode top_k must be >= 0 (0 keeps all tokens), got {top_k}")
    if not 0 < top_p <= 1:
        raise UserError(f"decode top_p must be in (0, 1], got {top_p}")


def _device(model: Generator) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without tensors)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")
