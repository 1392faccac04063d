"""Held-out likelihood: per-token NLL (nats), perplexity and bits per token, and the text-GAN
literature's NLL_gen (docs/theory/metrics.md#likelihood)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from seqgen.data.batch import Batch
from seqgen.errors import UserError
from seqgen.functional import token_nll
from seqgen.models.base import Generator

# The text-GAN benchmarks clip every predicted probability to [1e-20, 1] before the log, so that no
# position costs more than 20 ln 10 ≈ 46.05 nats.
_NLL_GEN_MIN_PROB = 1e-20


@torch.no_grad()
def sequence_nll(model: Generator, batch: Batch) -> torch.Tensor:
    """(B,) summed NLL of each target sequence in nats (EOS included, padding excluded)."""
    logits = model(batch.inputs, model.encode(batch.context))
    return token_nll(logits, batch.targets, batch.target_mask).sum(dim=1)


def nll_metrics(nll: torch.Tensor, tokens: torch.Tensor) -> dict[str, float]:
    """Per-token NLL (nats), perplexity, bits per token and per-sequence NLL of a set of sequences.

    Args:
        nll: (N,) summed NLL of each sequence in nats.
        tokens: (N,) target tokens of each sequence (EOS included).

    Returns:
        {"nll", "ppl", "bits_per_token", "nll_per_sequence", "tokens"}.
    """
    total = float(nll.double().sum())
    count = int(tokens.sum())
    per_token = total / max(count, 1)
    return {
        "nll": per_token,
        "ppl": math.exp(min(per_token, 700.0)),
        "bits_per_token": per_token / math.log(2),
        "nll_per_sequence": total / max(len(nll), 1),
        "tokens": float(count),
    }


@torch.no_grad()
def nll_gen(model: Generator, sentences: Sequence[Sequence[int] | torch.Tensor], seq_len: int, *,
            after_end: str = "certain", batch_size: int = 64) -> float:
    """NLL_gen as the COCO-captions tables of Texygen (Zhu et al. 2018) and RelGAN (Nie et al. 2019)
    define it: the model's NLL of every sentence written out to exactly `seq_len` positions,
    divided by `seq_len` × the number of sentences (nats, natural log).

    In those benchmarks each sentence is its words followed by a padding symbol repeated up to
    `seq_len` (the longest training sentence, in words: 37 for COCO captions). The padding symbol is a
    real vocabulary entry that the generator is trained to predict, so all `seq_len` positions are
    scored and the figure is a per-position average, padding included. A sentence of exactly `seq_len`
    words has no padding (its end is never scored); a longer one is cut to `seq_len` words. Every
    probability is clipped to at least 1e-20 before the log.

    A seqgen model ends a sentence with EOS and never sees padding as a target, so here the first
    padding position is scored as EOS: position t ≤ n + 1 of a sentence of n words scores
    x_1 .. x_n EOS from BOS, as `sequence_nll` does. The remaining `seq_len` - n - 1 positions are
    scored according to `after_end`:

    - "certain" (default): they cost 0 nats. The model's distribution over padded strings is exactly
      its distribution over sentences, since what follows EOS is determined; a benchmark generator that
      has learnt that padding follows padding pays (almost) nothing there too. Then
      NLL_gen = Σ_i NLL(x_i EOS) / (N · seq_len): the sequence-level NLL of `sequence_nll` over
      seq_len rather than over the number of tokens, i.e. the per-token NLL × (mean tokens per
      sentence, EOS included) / seq_len when no sentence reaches `seq_len` words.
    - "eos": the model reads EOS and is asked for EOS again at each of them, the literal analogue of
      the benchmarks' padding-after-padding. A seqgen model was never trained to continue after EOS,
      so this figure measures untrained behaviour and is only for comparison.

    The benchmarks compute it on their training file (image_coco.txt), batch by batch with the last
    incomplete batch dropped; here every sentence given counts, whichever split it comes from.

    Args:
        model: a language model (no context); call `model.eval()` first.
        sentences: N sentences, each a sequence or (n,) long tensor of token ids: the words only, no
            BOS, EOS or padding.
        seq_len: positions scored per sentence (37 for COCO captions as the benchmarks tokenise them).
        after_end: "certain" or "eos", see above.
        batch_size: sentences per forward pass.

    Returns:
        NLL_gen in nats per position.
    """
    if seq_len < 1:
        raise UserError(f"seq_len must be at least 1, got {seq_len}")
    if after_end not in ("certain", "eos"):
        raise UserError(f"after_end must be 'certain' or 'eos', got {after_end!r}")
    if len(sentences) == 0:
        raise UserError("NLL_gen needs at least one sentence")
    vocab = model.vocab
    device = model.input_embeddings.device
    memory = model.encode(None)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(sentences), batch_size):
        chunk = [torch.as_tensor(s, dtype=torch.long).flatten()[:seq_len]
                 for s in sentences[start : start + batch_size]]
        rows = len(chunk)
        targets = torch.full((rows, seq_len), vocab.eos_id, dtype=torch.long)  # (B, seq_len), EOS-filled
        scored = torch.ones(rows, seq_len, dtype=torch.bool)  # (B, seq_len)
        for i, words in enumerate(chunk):
            if bool(((words == vocab.pad_id) | (words == vocab.bos_id) | (words == vocab.eos_id)).any()):
                raise UserError(f"sentence {start + i} contains a PAD, BOS or EOS id: give the words only")
            targets[i, : len(words)] = words
            if after_end == "certain":
                scored[i, len(words) + 1:] = False
        targets, scored = targets.to(device), scored.to(device)
        bos = torch.full((rows, 1), vocab.bos_id, dtype=torch.long, device=device)
        logits = model(torch.cat([bos, targets[:, :-1]], 1), memory).float()  # (B, seq_len, V)
        log_q = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)  # (B, seq_len)
        nll = -log_q.clamp(min=math.log(_NLL_GEN_MIN_PROB))  # p clipped to [1e-20, 1]
        total += (nll.double() * scored).sum()
    return float(total) / (len(sentences) * seq_len)
