"""Exact divergences between an enumerable toy distribution P and a model Q
(docs/theory/metrics.md#exact-divergences-on-enumerable-toys).

Every sequence a `ToyDistribution` can produce is listed, the model scores all of them, and the
divergences are sums over explicit float64 probability vectors: no sampling, no estimate.

The outcome space is the toy's support (`toy.support()`: V^L sequences for `joint` toys, sequences of
1..L symbols for `markov` ones). The model is a distribution over token sequences that end with EOS;
its probability of a sequence x of the support is the probability of generating exactly x then EOS,

    Q(x) = ∏_{t ≤ |x|} Q(x_t | x_<t) · Q(EOS | x),

read from one teacher-forced pass (`model_log_probs`). The rest of the model's mass,
`q_mass_outside` = 1 - Σ_x Q(x), lies on sequences P cannot produce: a special token (PAD, BOS, UNK)
or EOS where P has a symbol, a symbol where P has ended, the wrong length. A softmax model always
leaks some, so an honest KL[Q‖P] would be +inf for every trained model. The divergences therefore
compare P with the model conditioned on producing a sequence of the support,

    Q̃(x) = Q(x) / (1 - q_mass_outside),

the distribution of the model's samples after those P cannot produce are discarded (rejection). It
keeps the model's relative probabilities within the support (masking tokens step by step would not),
every divergence stays finite and exact, and all of them (KL both ways, JS_π and its limits, the
optimal critic) refer to the same pair (P, Q̃). `q_mass_outside` is reported beside them, and
`cross_entropy_p_q` = -E_P log Q(x) is the honest per-sequence NLL that teacher forcing measures
(EOS included): KL[P‖Q̃] = cross_entropy_p_q - H(P) + log(1 - q_mass_outside).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from seqgen.data.batch import Vocab
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.data.tokenizer import SPECIAL_TOKENS
from seqgen.errors import UserError
from seqgen.functional import check_pi
from seqgen.models.base import Generator

FIRST_SYMBOL_ID = len(SPECIAL_TOKENS)
"""Token id of symbol 0 under the `fixed` tokenizer (PAD=0, BOS=1, EOS=2, UNK=3, then the symbols)."""


def symbol_token_ids(vocab: Vocab, num_symbols: int) -> Tensor:
    """Token id of each symbol of a synthetic source under its `fixed` tokenizer.

    The fixed tokenizer lists the special tokens first (PAD=0, BOS=1, EOS=2, UNK=3), then the source's
    symbols in order, so symbol i (toy symbol i, oracle token i) is token id 4 + i.

    Args:
        vocab: the model's vocabulary.
        num_symbols: V, the source's number of symbols.

    Returns:
        (V,) long: 4, 5, .., 3 + V.

    Raises:
        UserError: the vocabulary is not the fixed tokenizer's vocabulary of V symbols (a model trained
            on another source).
    """
    specials = sorted((vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id))
    if specials != list(range(FIRST_SYMBOL_ID)) or vocab.size != FIRST_SYMBOL_ID + num_symbols:
        raise UserError(f"the model's vocabulary (size {vocab.size}) is not the fixed tokenizer's vocabulary "
                        f"of {num_symbols} symbols (size {FIRST_SYMBOL_ID + num_symbols}): was it trained on "
                        f"this synthetic source?")
    return torch.arange(FIRST_SYMBOL_ID, FIRST_SYMBOL_ID + num_symbols)


# ---------------------------------------------------------------------------------------------------
# Divergences over explicit probability vectors (float64; 0 · log 0 = 0; p > 0 where q = 0 gives inf)


def _as_probs(p: Tensor | Sequence[float]) -> Tensor:
    return torch.as_tensor(p, dtype=torch.float64)


def _kl_terms(p: Tensor, q: Tensor) -> Tensor:
    """Elementwise p · log(p / q), 0 where p = 0 and +inf where p > 0 = q."""
    return torch.where(p > 0, p * (p / q).log(), torch.zeros_like(p))


def kl(p: Tensor | Sequence[float], q: Tensor | Sequence[float]) -> float:
    """KL[P‖Q] = Σ_x P(x) log(P(x) / Q(x)) in nats.

    Args:
        p: (N,) probabilities of P.
        q: (N,) probabilities of Q on the same outcomes; it may sum to less than 1 when the rest of its
            mass lies where P is 0 (e.g. a product of marginals on padded strings), which adds nothing.

    Returns:
        KL[P‖Q] ≥ 0 (for normalised q), +inf when Q(x) = 0 < P(x) for some x.
    """
    p, q = _as_probs(p), _as_probs(q)
    return float(_kl_terms(p, q).sum())


def js_pi(p: Tensor | Sequence[float], q: Tensor | Sequence[float], pi: float) -> float:
    """Generalised Jensen-Shannon divergence JS_π[P‖Q] = π KL[P‖M] + (1-π) KL[Q‖M], M = πP + (1-π)Q.

    JS_{1/2} is the ordinary JS divergence; JS_π / π → KL[P‖Q] as π → 0 and JS_π / (1-π) → KL[Q‖P]
    as π → 1. It is the mutual information between a sample and the coin (P with probability π)
    that chose its source, so 0 ≤ JS_π ≤ H(π), with equality for disjoint supports.

    Args:
        p: (N,) probabilities of P.
        q: (N,) probabilities of Q on the same outcomes.
        pi: the class prior π in (0, 1).

    Returns:
        JS_π[P‖Q] in nats.
    """
    check_pi(pi)
    p, q = _as_probs(p), _as_probs(q)
    m = pi * p + (1 - pi) * q
    return float(pi * _kl_terms(p, m).sum() + (1 - pi) * _kl_terms(q, m).sum())


def total_variation(p: Tensor | Sequence[float], q: Tensor | Sequence[float]) -> float:
    """Total variation distance ½ Σ_x |P(x) - Q(x)| in [0, 1]."""
    return float(0.5 * (_as_probs(p) - _as_probs(q)).abs().sum())


def optimal_critic(p: Tensor | Sequence[float], q: Tensor | Sequence[float], pi: float) -> Tensor:
    """The critic that maximises V_π: D*(x) = πP(x) / (πP(x) + (1-π)Q(x)).

    Returns:
        (N,) float64 probabilities that x came from P (NaN where P(x) = Q(x) = 0: no sample lands there).
    """
    check_pi(pi)
    p, q = _as_probs(p), _as_probs(q)
    return pi * p / (pi * p + (1 - pi) * q)


def optimal_critic_value(p: Tensor | Sequence[float], q: Tensor | Sequence[float], pi: float) -> float:
    """max_D V_π(D, Q) = V_π(D*, Q), with V_π(D, Q) = π E_P log D(x) + (1-π) E_Q log(1 - D(x)).

    Computed from D* itself (not from the closed form), so that it checks the identity
    max_D V_π = JS_π[P‖Q] - H(π) on which the critic's JS_π estimate rests.

    Args:
        p: (N,) probabilities of P.
        q: (N,) probabilities of Q on the same outcomes.
        pi: the class prior π in (0, 1).

    Returns:
        The value in nats, in [-H(π), 0].
    """
    p, q = _as_probs(p), _as_probs(q)
    d = optimal_critic(p, q, pi)
    # xlogy gives 0 · log 0 = 0 where a side has no mass (D* = 0 where P = 0, 1 - D* = 0 where Q = 0)
    real = torch.xlogy(p, d.masked_fill(p == 0, 1.0)).sum()
    fake = torch.xlogy(q, (1 - d).masked_fill(q == 0, 1.0)).sum()
    return float(pi * real + (1 - pi) * fake)


def product_of_marginals(seqs: Sequence[Sequence[int]], p: Tensor | Sequence[float]) -> Tensor:
    """∏_t P_t(x̄_t) of every listed sequence, P_t being P's marginal at position t.

    Sequences are END-padded to the longest length L (x̄ = x_1 .. x_n, END, .., END), END counting as
    one more value of every position, as in `ToyDistribution.marginals()`. For fixed-length sequences
    this is a distribution over the listed ones; for variable-length ones ∏_t P_t is a distribution
    over all strings of (V+1)^L and also puts mass on strings that are no END-padded sequence (such
    as "a END b"), so the returned values sum to less than 1.

    Args:
        seqs: the N sequences of P's support, symbols as non-negative ints.
        p: (N,) their probabilities under P.

    Returns:
        (N,) float64 probabilities under ∏_t P_t.
    """
    p = _as_probs(p)
    length = max(len(s) for s in seqs)
    end = max(max(s, default=0) for s in seqs) + 1
    padded = torch.tensor([list(s) + [end] * (length - len(s)) for s in seqs])  # (N, L)
    marginals = torch.zeros(length, end + 1, dtype=torch.float64).scatter_add_(
        1, padded.T, p.expand(length, -1))  # (L, V + 1)
    return marginals.gather(1, padded.T).prod(0)


def kl_to_product_of_marginals(q: Tensor | Sequence[float], seqs: Sequence[Sequence[int]],
                               p: Tensor | Sequence[float]) -> float:
    """KL[Q‖∏_t P_t]: how far Q is from the product of P's position marginals, the optimum of
    scheduled sampling that always feeds its own samples
    (docs/theory/objectives.md#the-optimum-is-the-product-of-marginals; for variable-length
    sequences the analogy is looser, see `product_of_marginals`).

    Exact as a KL between distributions over END-padded strings: Q has no mass outside `seqs`.
    With q = p it is P's multi-information Σ_t H(P_t) - H(P) (`ToyDistribution.multi_information`).

    Args:
        q: (N,) probabilities of Q on `seqs`, summing to 1.
        seqs: the N sequences of P's support.
        p: (N,) their probabilities under P.
    """
    return kl(q, product_of_marginals(seqs, p))


# ---------------------------------------------------------------------------------------------------
# The model's probabilities of every sequence of a toy


def support_tokens(vocab: Vocab, toy: ToyDistribution) -> tuple[Tensor, Tensor]:
    """Every sequence of `toy.support()` as the token ids a language model reads and predicts.

    Args:
        vocab: the model's vocabulary (the toy's fixed tokenizer).
        toy: the enumerable distribution.

    Returns:
        tokens (N, L + 2) long, `BOS x_1 .. x_n EOS PAD ..`, and lengths (N,) long, n (EOS excluded).

    Raises:
        UserError: the vocabulary is not the toy's fixed vocabulary.
    """
    ids = symbol_token_ids(vocab, toy.vocab_size)
    L = toy.max_length
    # (N, L) symbols, -1 after the end
    symbols = torch.tensor([list(s) + [-1] * (L - len(s)) for s in toy.support()]).view(-1, L)
    lengths = (symbols >= 0).sum(1)  # (N,)
    body = torch.where(symbols >= 0, ids[symbols.clamp(min=0)], vocab.pad_id)
    column = torch.ones_like(body[:, :1])
    tokens = torch.cat([column * vocab.bos_id, body, column * vocab.pad_id], 1)
    tokens.scatter_(1, lengths[:, None] + 1, vocab.eos_id)
    return tokens, lengths


def support_log_probs(model: Generator, toy: ToyDistribution, batch_size: int = 4096) -> Tensor:
    """log Q(x) = Σ_t log Q(x_t | x_<t) + log Q(EOS | x) of every sequence of `toy.support()`,
    differentiable in the model's parameters when gradients are enabled.

    One teacher-forced `forward` per batch of sequences (right-padded: padding after EOS cannot
    change a causal model's earlier logits). The model runs in whatever mode it is in: call
    `model.eval()` first for dropout-free scores.

    Args:
        model: a language model trained with the fixed tokenizer of the toy's symbols.
        toy: the distribution whose support is scored.
        batch_size: sequences per forward pass.

    Returns:
        (N,) float64 log-probabilities in `toy.support()` order (on the CPU); they sum
        (exponentiated) to 1 - q_mass_outside (see the module docstring).

    Raises:
        UserError: the model's vocabulary is not the toy's fixed vocabulary.
    """
    tokens, lengths = support_tokens(model.vocab, toy)
    device = model.input_embeddings.device
    positions = torch.arange(toy.max_length + 1)
    memory = model.encode(None)
    out = []
    for rows, n in zip(tokens.split(batch_size), lengths.split(batch_size)):
        rows = rows.to(device)
        log_q = model(rows[:, :-1], memory).double().log_softmax(-1)  # (B, L + 1, V)
        token_log_q = log_q.gather(-1, rows[:, 1:, None]).squeeze(-1).cpu()  # (B, L + 1)
        predicted = positions <= n[:, None]  # the n symbols and EOS
        out.append(token_log_q.masked_fill(~predicted, 0.0).sum(1))
    return torch.cat(out)


@torch.no_grad()
def model_log_probs(model: Generator, toy: ToyDistribution, batch_size: int = 4096) -> Tensor:
    """`support_log_probs` without gradient: (N,) float64 log Q of every sequence of the support."""
    return support_log_probs(model, toy, batch_size)


def js_pi_with_leak(p: Tensor, log_q: Tensor, pi: float) -> Tensor:
    """JS_π[P‖Q] between P on the support and the model Q, whose mass outside the support (where P is 0)
    counts as one more outcome, as it does for a critic that sees the model's every sample.

    Its gradient in the model's parameters is what the minimax generator loss follows at the optimal
    critic: (1 - π) Σ_x ∇Q(x) log(1 - D*(x)), the leaked outcome contributing nothing (D* = 0 there).

    Args:
        p: (N,) float64 probabilities of P on the support.
        log_q: (N,) float64 log Q on the support (differentiable: so is the result).
        pi: the class prior π in (0, 1).

    Returns:
        JS_π in nats, a 0-dim tensor.
    """
    check_pi(pi)
    q = log_q.exp()
    q = torch.cat([q, (1 - q.sum()).clamp(min=torch.finfo(q.dtype).tiny)[None]])  # (N + 1,)
    p = torch.cat([p, p.new_zeros(1)])
    m = pi * p + (1 - pi) * q
    return (pi * (torch.xlogy(p, p) - torch.xlogy(p, m)).sum()
            + (1 - pi) * (torch.xlogy(q, q) - torch.xlogy(q, m)).sum())


def toy_metrics(model: Generator, toy: ToyDistribution, pis: Sequence[float] = (0.5,),
                batch_size: int = 4096) -> dict[str, float]:
    """Every exact divergence between the toy P and the model (as Q̃, see the module docstring).

    Args:
        model: a language model over the toy's fixed vocabulary (call `model.eval()` first).
        toy: the enumerable distribution P.
        pis: class priors π of the JS_π entries.
        batch_size: sequences per forward pass.

    Returns:
        Nats throughout:
        "kl_p_q", "kl_q_p": KL[P‖Q̃], KL[Q̃‖P];
        "js_pi{π}", "js_pi{π}_over_pi", "js_pi{π}_over_1mpi": JS_π[P‖Q̃], JS_π/π (→ kl_p_q as π → 0),
        JS_π/(1-π) (→ kl_q_p as π → 1), e.g. "js_pi0.5";
        "tv_p_q": total variation between P and Q̃;
        "kl_q_prod_marginals": KL[Q̃‖∏_t P_t];
        "multi_information_p": KL[P‖∏_t P_t] = Σ_t H(P_t) - H(P);
        "entropy_p": H(P);
        "cross_entropy_p_q": -E_P log Q(x) per sequence, EOS included (the unconditioned model);
        "q_mass_outside": the model's probability of sequences P cannot produce.
    """
    seqs, p = toy.enumerate()
    log_q = model_log_probs(model, toy, batch_size)
    q = log_q.exp()
    inside = q.sum()
    q_tilde = q / inside
    metrics = {"kl_p_q": kl(p, q_tilde), "kl_q_p": kl(q_tilde, p)}
    for pi in pis:
        js = js_pi(p, q_tilde, pi)
        name = f"js_pi{pi:g}"
        metrics |= {name: js, f"{name}_over_pi": js / pi, f"{name}_over_1mpi": js / (1 - pi)}
    return metrics | {
        "tv_p_q": total_variation(p, q_tilde),
        "kl_q_prod_marginals": kl_to_product_of_marginals(q_tilde, seqs, p),
        "multi_information_p": toy.multi_information(),
        "entropy_p": toy.entropy(),
        "cross_entropy_p_q": float(-(p * log_q).sum()),
        "q_mass_outside": max(0.0, 1.0 - float(inside)),
    }
