"""NLL_oracle and NLL_test of a generator against a synthetic oracle P with exact log P
(docs/theory/metrics.md#oracle-nlls).

    NLL_oracle = -E_{x∼Q} log P(x) / T   (quality: how plausible the model's samples are to the oracle)
    NLL_test   = -E_{x∼P} log Q(x) / T   (coverage: KL[P‖Q]/T + the oracle's entropy rate)

The oracle's sequences are exactly T tokens with no end token, and the literature's generators sample
exactly T tokens too. A seqgen model has special tokens and an EOS, so both figures use, by default,
its fixed-length version Q_T: T steps, each drawing among the V symbol tokens only, i.e. the next-token
distribution with PAD/BOS/EOS/UNK masked out and renormalised,

    Q_T(x) = ∏_{t ≤ T} Q(x_t | x_<t) / Q(symbol | x_<t).

No sample is cut short or padded, and NLL_oracle and NLL_test describe the same distribution Q_T.
For a trained model the masked mass is negligible. `nll_test(..., fixed_length=False)` gives instead the
model's own NLL of the sequences followed by EOS over T + 1 tokens, the figure seqgen's held-out
evaluation reports on oracle data. An inverse temperature α (logits × α) applies to both, for
quality-diversity curves.

Symbol i of the oracle is token id 4 + i of the model (`seqgen.metrics.exact.symbol_token_ids`). The
pieces (`sample_fixed_length`, `sequence_log_probs`) are public so that a benchmark can time sampling
and scoring separately (sequences per second).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.errors import UserError
from seqgen.metrics.exact import symbol_token_ids
from seqgen.models.base import Generator


def _check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise UserError(f"inverse temperature alpha must be > 0, got {alpha}")


def _check_count(n: int) -> None:
    if n < 1:
        raise UserError(f"the number of sequences to score must be at least 1, got {n}")


@torch.no_grad()
def sample_fixed_length(model: Generator, num_symbols: int, length: int, n: int, seed: int,
                        alpha: float = 1.0, batch_size: int = 1024) -> Tensor:
    """`n` sequences of exactly `length` symbols drawn from the model's fixed-length version Q_T.

    Each step runs `model.step` on the cache and draws among the symbol tokens only (see the module
    docstring) by inverse-CDF sampling, one uniform per row. The model runs in whatever mode it is in:
    call `model.eval()` first.

    Args:
        model: a language model over the fixed vocabulary of `num_symbols` symbols.
        num_symbols: V.
        length: T.
        n: number of sequences.
        seed: seeds the draws; the same seed and batch_size give the same sequences.
        alpha: inverse temperature, > 0.
        batch_size: sequences decoded together.

    Returns:
        (n, T) long symbol indices 0..V-1 (oracle token ids, not model token ids), on the model's device.
    """
    _check_alpha(alpha)
    first = int(symbol_token_ids(model.vocab, num_symbols)[0])
    device = model.input_embeddings.device
    g = torch.Generator(device=device).manual_seed(seed)
    memory = model.encode(None)
    chunks = [torch.zeros(0, length, dtype=torch.long, device=device)]
    for start in range(0, n, batch_size):
        rows = min(batch_size, n - start)
        inputs = torch.full((rows,), model.vocab.bos_id, dtype=torch.long, device=device)
        state, columns = None, []
        for _ in range(length):
            logits, state = model.step(inputs, memory, state)
            logits = logits[:, first : first + num_symbols].float() * alpha  # (B, V): symbols only
            cdf = (logits - logits.amax(-1, keepdim=True)).exp_().cumsum(-1)  # (B, V), unnormalised
            u = torch.rand(rows, 1, generator=g, device=device) * cdf[:, -1:]
            symbol = torch.searchsorted(cdf, u, right=True).clamp_(max=num_symbols - 1).squeeze(1)  # (B,)
            columns.append(symbol)
            inputs = symbol + first
        chunks.append(torch.stack(columns, 1))
    return torch.cat(chunks)


@torch.no_grad()
def sequence_log_probs(model: Generator, symbols: Tensor, num_symbols: int, alpha: float = 1.0,
                       fixed_length: bool = True, batch_size: int | None = None) -> Tensor:
    """The model's log-probability of each symbol sequence, by teacher forcing (one forward per batch).

    Args:
        model: a language model over the fixed vocabulary of `num_symbols` symbols.
        symbols: (n, T) long symbol indices 0..V-1.
        num_symbols: V.
        alpha: inverse temperature, > 0.
        fixed_length: True: log Q_T(x) over the T positions, symbol tokens only (see the module
            docstring). False: the model's log Q(x_1 .. x_T EOS) over the whole vocabulary, T + 1 tokens.
        batch_size: sequences per forward pass (None: by device, see `_scoring_batch`).

    Returns:
        (n,) float64 log-probabilities in nats, on the model's device.
    """
    _check_alpha(alpha)
    ids = symbol_token_ids(model.vocab, num_symbols)
    first = int(ids[0])
    device = model.input_embeddings.device
    batch_size = batch_size or _scoring_batch(device, symbols.shape[1] + 1, model.vocab.size)
    symbols = symbols.to(device)
    tokens = symbols + first  # (n, T)
    bos = torch.full_like(tokens[:, :1], model.vocab.bos_id)
    eos = torch.full_like(tokens[:, :1], model.vocab.eos_id)
    memory = model.encode(None)
    out = [torch.zeros(0, dtype=torch.float64, device=device)]
    for start in range(0, len(tokens), batch_size):
        rows = slice(start, start + batch_size)
        if fixed_length:
            inputs, targets = torch.cat([bos[rows], tokens[rows, :-1]], 1), symbols[rows]  # (B, T) each
            logits = model(inputs, memory)[..., first : first + num_symbols]  # (B, T, V)
        else:
            inputs, targets = torch.cat([bos[rows], tokens[rows]], 1), torch.cat([tokens[rows], eos[rows]], 1)
            logits = model(inputs, memory)  # (B, T + 1, vocabulary)
        logits = logits.float() if alpha == 1 else logits.float() * alpha  # no (B, T, V) copy at α = 1
        # float32 (as the oracle) and no (B, T, V) log_softmax: in float64 over a large vocabulary,
        # normalising every entry made scoring several times slower than sampling
        log_q = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)  # (B, T)
        out.append(log_q.double().sum(1))
    return torch.cat(out)


def _scoring_batch(device: torch.device, length: int, vocab_size: int) -> int:
    """Sequences per scoring pass: on a CPU, as many as keep the (B, T, V) logits near 8 MB, since
    passes over logits that stay in cache ran 2-3 times faster than 256-row ones over a 5000-token
    vocabulary; on an accelerator, large batches."""
    if device.type == "cpu":
        return max(1, 2**21 // (length * vocab_size))
    return 1024


def nll_oracle(model: Generator, oracle: OracleLSTM, n: int, seed: int, alpha: float = 1.0,
               batch_size: int = 1024) -> float:
    """NLL_oracle = -E_{x∼Q_T} log P(x) / T: the oracle's mean per-token NLL (nats) of `n` samples of
    the model's fixed-length version (see the module docstring).

    Args:
        model: a language model over the oracle's fixed vocabulary (call `model.eval()` first).
        oracle: P.
        n: number of model samples.
        seed: seeds the model's samples.
        alpha: inverse temperature of the model, > 0.
        batch_size: sequences decoded together.
    """
    _check_count(n)
    x = sample_fixed_length(model, oracle.vocab_size, oracle.length, n, seed, alpha, batch_size)
    return oracle.nll_per_token(x)


def nll_test(model: Generator, oracle: OracleLSTM, n: int, seed: int, alpha: float = 1.0,
             fixed_length: bool = True, batch_size: int | None = None) -> float:
    """NLL_test = -E_{x∼P} log Q(x) / T: the model's mean per-token NLL (nats) of `n` fresh oracle
    samples `oracle.sample(n, seed)` (choose a seed that no training split used).

    Args:
        model: a language model over the oracle's fixed vocabulary (call `model.eval()` first).
        oracle: P.
        n: number of oracle samples.
        seed: seeds the oracle's samples.
        alpha: inverse temperature of the model, > 0.
        fixed_length: True (the literature's NLL_gen): Q_T over the T symbol positions. False: the
            model's full-vocabulary NLL over the T symbols and EOS, per token of those T + 1.
        batch_size: sequences per forward pass.
    """
    _check_count(n)
    x = oracle.sample(n, seed)
    log_q = sequence_log_probs(model, x, oracle.vocab_size, alpha, fixed_length, batch_size)
    return float(-log_q.sum() / (n * (oracle.length + (not fixed_length))))


def oracle_metrics(model: Generator, oracle: OracleLSTM, n: int, seed: int,
                   alpha: float = 1.0) -> dict[str, float]:
    """NLL_oracle and NLL_test (fixed-length, see the module docstring) of `n` sequences each, in nats
    per token, as {"nll_oracle": .., "nll_test": ..}."""
    return {"nll_oracle": nll_oracle(model, oracle, n, seed, alpha),
            "nll_test": nll_test(model, oracle, n, seed, alpha)}
