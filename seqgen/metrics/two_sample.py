"""A classifier two-sample test: how well can a fresh critic tell real sentences from generated ones?

A small GRU classifier D(x) = P(real | x) is trained on half of a balanced set of real and generated
sentences, its number of epochs is chosen on a quarter, and it is scored on the last quarter, which
neither training nor the choice saw. Two lower bounds on the Jensen-Shannon divergence
JS_{1/2}[P‖Q] (nats, at most log 2) follow from the held-out quarter
(docs/theory/metrics.md#lower-bounds-on-the-jensen-shannon-divergence):

- the critic bound: V_{1/2}(D) + log 2 = ½ E_P log D + ½ E_Q log(1 - D) + log 2, valid for any
  critic (it can be negative for a poor one, and is reported as measured);
- the Fano bound: log 2 - H_b(e), e the held-out error rate (when e < ½; 0 otherwise), since JS_{1/2}
  is the mutual information between a sentence and the coin that chose its source, and Fano's
  inequality bounds H(coin | x) by H_b(e) for any decision rule.

Both are estimates from a finite held-out set; an accuracy of ½ says the critic found no difference,
not that there is none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seqgen.data.batching import pad
from seqgen.errors import UserError
from seqgen.functional import binary_entropy

MIN_EXAMPLES = 8


class SentenceClassifier(nn.Module):
    """Embedding, one GRU layer and a linear read-out of the state at each sentence's last token."""

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_dim: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.rnn = nn.GRU(embedding_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, 1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of D (B,) for right-padded ids (B, T) of the given lengths (B,) (each ≥ 1)."""
        states, _ = self.rnn(self.embedding(ids))  # (B, T, H)
        last = states[torch.arange(len(ids)), lengths - 1]  # (B, H)
        return self.out(last).squeeze(-1)


def _tensors(sentences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (N, T) ids and (N,) lengths: every id shifted by 2, then an end marker (1), so
    that padding (0) is apart and an empty sentence still has a last state to read."""
    ids, mask = pad([[x + 2 for x in s] + [1] for s in sentences], 0)
    return ids, mask.sum(1)


def _log_likelihood(model: SentenceClassifier, ids: torch.Tensor, lengths: torch.Tensor,
                    labels: torch.Tensor) -> tuple[float, float]:
    """Mean log D(x) on reals and log(1 - D(x)) on fakes, averaged over the two classes, and accuracy."""
    with torch.no_grad():
        logits = model(ids, lengths)
    log_d = torch.where(labels, F.logsigmoid(logits), F.logsigmoid(-logits))
    value = 0.5 * (log_d[labels].mean() + log_d[~labels].mean())
    accuracy = ((logits > 0) == labels).double().mean()
    return float(value), float(accuracy)


def two_sample_test(real: Sequence[Sequence[int]], fake: Sequence[Sequence[int]], vocab_size: int, *,
                    max_epochs: int = 10, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                    embedding_dim: int = 64, hidden_dim: int = 64) -> dict[str, float]:
    """Train a fresh classifier on real vs generated sentences and score it on held-out ones.

    Args:
        real: sentences of the data (token ids in 0..vocab_size-1, no BOS/EOS).
        fake: generated sentences, same form. The larger set is cut to the size of the smaller.
        vocab_size: ids are below it.
        max_epochs: epochs at most; the epoch with the best validation log-likelihood is kept.
        batch_size: sentences per update.
        lr: Adam's learning rate.
        seed: seeds the split into parts, the initialisation and the batch order.
        embedding_dim: the classifier's embedding size.
        hidden_dim: its GRU size.

    Returns:
        {"two_sample_accuracy": held-out accuracy, "two_sample_js_lower_bound": V_{1/2} + log 2 on the
        held-out part, "two_sample_js_fano_bound": log 2 - H_b(error), "two_sample_heldout": number of
        held-out sentences, "two_sample_per_side": sentences used from each side}.

    Raises:
        UserError: fewer than 8 sentences on a side.
    """
    n = min(len(real), len(fake))
    if n < MIN_EXAMPLES:
        raise UserError(f"the two-sample test needs at least {MIN_EXAMPLES} real and generated sentences, "
                        f"got {len(real)} and {len(fake)}")
    g = torch.Generator().manual_seed(seed)
    pick = [torch.randperm(len(side), generator=g)[:n].tolist() for side in (real, fake)]
    sentences = [real[i] for i in pick[0]] + [fake[i] for i in pick[1]]
    labels = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    if any(not 0 <= x < vocab_size for s in sentences for x in s):
        raise UserError(f"two-sample test: token ids must lie in 0..{vocab_size - 1}")
    ids, lengths = _tensors(sentences)
    # Balanced parts: the same positions of the shuffled real and fake halves go to each part.
    order = torch.randperm(n, generator=g)
    cut1, cut2 = n // 2, (3 * n) // 4
    parts = [torch.cat([order[a:b], order[a:b] + n]) for a, b in ((0, cut1), (cut1, cut2), (cut2, n))]
    train_rows, valid_rows, test_rows = parts

    rng_state = torch.get_rng_state()  # restored below: the caller's random stream is left as it was
    torch.manual_seed(seed)  # the classifier's initialisation
    model = SentenceClassifier(vocab_size + 2, embedding_dim, hidden_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state = -math.inf, None
    for _ in range(max_epochs):
        model.train()
        shuffled = train_rows[torch.randperm(len(train_rows), generator=g)]
        for rows in shuffled.split(batch_size):
            with torch.enable_grad():  # callers may evaluate under no_grad
                logits = model(ids[rows], lengths[rows])
                loss = F.binary_cross_entropy_with_logits(logits, labels[rows].float())
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
        model.eval()
        value, _ = _log_likelihood(model, ids[valid_rows], lengths[valid_rows], labels[valid_rows])
        if value > best:
            best, best_state = value, {k: v.clone() for k, v in model.state_dict().items()}
    torch.set_rng_state(rng_state)
    model.load_state_dict(best_state)
    value, accuracy = _log_likelihood(model, ids[test_rows], lengths[test_rows], labels[test_rows])
    error = 1.0 - accuracy
    return {
        "two_sample_accuracy": accuracy,
        "two_sample_js_lower_bound": value + math.log(2),
        "two_sample_js_fano_bound": math.log(2) - binary_entropy(error) if error < 0.5 else 0.0,
        "two_sample_heldout": float(len(test_rows)),
        "two_sample_per_side": float(n),
    }
