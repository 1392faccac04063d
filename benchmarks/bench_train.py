"""Teacher-forcing training throughput: seqgen's training loop against minimal hand-written loops.

    python benchmarks/bench_train.py                  # GPT-2 6x512 and LSTM 512, batch 8, seq 64, CPU
    python benchmarks/bench_train.py --quick          # tiny models, a few steps: a smoke run
    python benchmarks/bench_train.py --device cuda --mixed-precision bf16 --batch-size 64
    python benchmarks/bench_train.py --device cuda --mixed-precision bf16 --models gpt2 --batch-size 32 \
        --layers 24 --width 1024 --heads 16 --vocab 50257   # GPT-2-medium sized: MFU in bf16

Both sides train the same model (same config, same seed) on the same batches of the embedded oracle
source with the recipe's AdamW settings, gradient clipping at 1.0 and the same number of steps, in this
one process with the same threads; rounds alternate which of the two runs first. The mean
training loss over the timed steps is shown for both: equal losses show the same computation.

- seqgen: `seqgen.train.train(cfg, overwrite=True)`, the real loop. It logs `train/tokens_per_second`
  every `log_every` steps over the window since its last log (the log itself, the final evaluation and
  the final save fall outside every window). `log_every` is set to the warm-up length: the first
  window is the warm-up and is dropped; the others are the timed steps.
- reference: a plain loop over the same batches, collated beforehand (so seqgen's data loading counts
  against it): forward, cross-entropy, backward, clip, step, zero_grad; the timed steps are clocked
  as one block after the same warm-up.

Tokens are target tokens: every oracle sentence has 63 tokens, so BOS + 63 tokens are the 64 model
inputs and the 63 tokens + EOS are its 64 targets (no padding).

The Transformer's achieved GFLOP/s is set against this machine's dense matmul rate measured here
(float32, or bf16 under --mixed-precision bf16). Training FLOPs per token are counted as
6 x (12 L d^2 + V d)  (every weight matrix of the L blocks and the tied output layer, forward and
backward) + 12 L T d  (attention scores and weighted values over all T x T pairs, forward and
backward); embedding lookups, layer norms, softmax, biases and the optimizer are not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from common import (
    add_device_args,
    autocast,
    fill_sizes,
    machine,
    matmul_peak,
    paired_ratio,
    print_table,
    quiet_transformers,
    rate,
    setup,
    spread,
    synchronize,
    timed,
    write_json,
)
from torch import nn
from transformers import GPT2LMHeadModel

from seqgen.config import RunConfig, TrainConfig
from seqgen.data import Vocab, load_data
from seqgen.models import build_generator
from seqgen.models.configs import RNNConfig, TransformerConfig
from seqgen.tracking import read_log
from seqgen.train import train

SEQ = 64
"""Model input positions (BOS + the oracle's 63 tokens) and targets per sentence (63 tokens + EOS)."""
TARGETS = {"gpt2": 0.95, "lstm": 0.95}
LogitsOf = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""(model, ids (B, T)) -> logits (B, T, V)."""

SIZES = {
    "full": {"batch_size": 8, "warmup": 2, "steps": 10, "rounds": 6, "layers": 6, "width": 512, "heads": 8,
             "rnn_dim": 512, "vocab": 5000},
    "quick": {"batch_size": 2, "warmup": 2, "steps": 4, "rounds": 1, "layers": 2, "width": 64, "heads": 2,
              "rnn_dim": 64, "vocab": 500},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_args(parser)
    parser.add_argument("--models", nargs="+", choices=["gpt2", "lstm"], default=["gpt2", "lstm"])
    parser.add_argument("--batch-size", type=int, help="sentences per step (default 8; quick 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps, also seqgen's log window (default 2)")
    parser.add_argument("--steps", type=int, help="timed steps, a multiple of --warmup (default 10)")
    parser.add_argument("--rounds", type=int, help="reference/seqgen pairs per model (default 6)")
    parser.add_argument("--layers", type=int, help="GPT-2 blocks (default 6; quick 2)")
    parser.add_argument("--width", type=int, help="GPT-2 width (default 512; quick 64)")
    parser.add_argument("--heads", type=int, help="GPT-2 attention heads (default 8; quick 2)")
    parser.add_argument("--vocab", type=int, help="vocabulary of the oracle and both models (default 5000; quick 500)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fill_sizes(args, SIZES)
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup (seqgen logs one window per --warmup steps)")
    return args


def recipe(family: str, args: argparse.Namespace, output_dir: Path) -> RunConfig:
    """The seqgen run both loops reproduce: teacher forcing on the oracle, no evaluation until the end."""
    cfg = RunConfig(task="lm", output_dir=str(output_dir), seed=args.seed)
    steps = args.warmup + args.steps
    cfg.data.source = "oracle"
    cfg.data.batch_size = args.batch_size
    cfg.data.max_length = SEQ - 1
    syn = cfg.data.synthetic
    # One epoch holds exactly the benchmark's batches: no epoch boundary inside the timed steps.
    syn.num_train, syn.num_validation, syn.num_test = steps * args.batch_size, args.batch_size, 0
    syn.vocab_size, syn.length = args.vocab, SEQ - 1
    if family == "gpt2":
        cfg.model = TransformerConfig(arch="gpt2", num_hidden_layers=args.layers,
                                hidden_size=args.width, num_attention_heads=args.heads, max_positions=SEQ)
    else:
        cfg.model = RNNConfig(cell="lstm", embedding_dim=args.rnn_dim,
                                hidden_dim=args.rnn_dim, num_layers=1, dropout=0.0, tie_embeddings=True)
    tc = cfg.train
    tc.max_steps, tc.lr, tc.max_grad_norm = steps, args.lr, 1.0
    tc.log_every, tc.eval_every, tc.save_every = args.warmup, steps + 1, steps + 1
    tc.num_samples, tc.mixed_precision = 0, args.mixed_precision
    cfg.eval.max_batches = 1
    return cfg


@dataclass
class Measured:
    tokens_per_second: float
    loss: float
    """Mean training loss over the timed steps: the same for both loops when they do the same work."""


def run_seqgen(cfg: RunConfig, args: argparse.Namespace) -> Measured:
    """Train with seqgen's loop; tokens/s over the logged windows after the first (the warm-up)."""
    train(cfg, overwrite=True)
    logs = [r for r in read_log(Path(cfg.output_dir) / "logs" / "metrics.jsonl")
            if "train/tokens_per_second" in r and r["step"] > args.warmup]
    if len(logs) != args.steps // args.warmup:
        raise RuntimeError(f"expected {args.steps // args.warmup} timed log windows, found {len(logs)}")
    tokens = [args.warmup * args.batch_size * SEQ] * len(logs)
    seconds = [n / r["train/tokens_per_second"] for n, r in zip(tokens, logs)]
    return Measured(rate(tokens, seconds), sum(r["train/loss"] for r in logs) / len(logs))


def run_reference(model: nn.Module, logits_of: LogitsOf, batches: list[torch.Tensor], pad_id: int,
                  tc: TrainConfig, args: argparse.Namespace, device: torch.device) -> Measured:
    """The hand-written loop over pre-collated (B, SEQ + 1) token batches, with the recipe's optimizer
    settings `tc`."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas),
                                  weight_decay=tc.weight_decay)
    losses = []

    def steps(chunk: list[torch.Tensor]) -> None:
        for tokens in chunk:
            tokens = tokens.to(device)
            with autocast(device, args.mixed_precision):
                logits = logits_of(model, tokens[:, :-1])  # (B, SEQ, V)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), ignore_index=pad_id)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

    steps(batches[: args.warmup])
    synchronize(device)
    seconds = timed(lambda: steps(batches[args.warmup:]), device)
    timed_losses = torch.stack(losses[args.warmup:])
    return Measured(args.steps * args.batch_size * SEQ / seconds, timed_losses.mean().item())


class LSTMLanguageModel(nn.Module):
    """nn.Embedding -> nn.LSTM -> nn.Linear with the output layer tied to the embedding, built in the
    order seqgen's RNNGenerator builds its modules so that one seed gives both the same weights."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(dim, dim, 1, batch_first=True)
        self.out = nn.Linear(dim, vocab_size)
        self.out.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embedding(ids))
        return self.out(h)


def reference_model(family: str, cfg: RunConfig, vocab: Vocab) -> tuple[nn.Module, LogitsOf]:
    """The reference model, freshly seeded like seqgen's, and how to get its logits from ids."""
    if family == "gpt2":
        config = build_generator(cfg.model, vocab, "lm").model.config  # the exact config seqgen builds
        set_seed(cfg.seed)
        return GPT2LMHeadModel(config), lambda m, ids: m(input_ids=ids).logits
    set_seed(cfg.seed)
    return LSTMLanguageModel(vocab.size, cfg.model.hidden_dim), lambda m, ids: m(ids)


def flops_per_token(config) -> float:
    """Training FLOPs per target token of a GPT-2 model at SEQ positions (see the module docstring)."""
    L, d, V = config.n_layer, config.n_embd, config.vocab_size
    return 6 * (12 * L * d * d + V * d) + 12 * L * SEQ * d


def main() -> None:
    args = parse_args()
    device = setup(args)
    if device.type == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"  # seqgen's Accelerator would otherwise take a GPU
    datasets.disable_progress_bars()
    workdir = Path(tempfile.mkdtemp(prefix="seqgen-bench-"))
    results: dict = {"machine": machine(device), "args": {k: str(v) for k, v in vars(args).items()}}
    rows = []
    try:
        for family in args.models:
            cfg = recipe(family, args, workdir / family)
            data = load_data(cfg)
            loader = data.splits["train"].loader(cfg.data, shuffle=cfg.data.shuffle, seed=cfg.seed)
            loader.batch_sampler.set_epoch(0)  # seqgen's first epoch: the batches it will train on
            batches = [b.tokens for b in loader]
            assert all(b.shape == (args.batch_size, SEQ + 1) for b in batches), "oracle rows must fill SEQ"
            ref, ours = [], []
            for round_ in range(args.rounds):
                # Alternate which loop goes first, so neither always inherits the other's warm caches.
                for side in ("reference", "seqgen")[:: 1 if round_ % 2 == 0 else -1]:
                    with quiet_transformers():
                        if side == "seqgen":
                            run = recipe(family, args, workdir / f"{family}-{round_}")  # a folder per run
                            ours.append(run_seqgen(run, args))
                            continue
                        model, logits_of = reference_model(family, cfg, data.vocab)
                        ref.append(run_reference(model, logits_of, batches, data.vocab.pad_id, cfg.train,
                                                 args, device))
                        del model
                print(f"{family} round {round_ + 1}: reference {ref[-1].tokens_per_second:,.0f} tok/s, "
                      f"seqgen {ours[-1].tokens_per_second:,.0f} tok/s", flush=True)
            # every round times the same number of tokens: the overall rate is the rounds' harmonic mean
            ref_rate = len(ref) / sum(1 / m.tokens_per_second for m in ref)
            our_rate = len(ours) / sum(1 / m.tokens_per_second for m in ours)
            paired = paired_ratio([m.tokens_per_second for m in ours], [m.tokens_per_second for m in ref])
            results[family] = {
                "reference_tokens_per_second": ref_rate, "seqgen_tokens_per_second": our_rate,
                "ratio": our_rate / ref_rate, "target": TARGETS[family], "paired_ratio": paired,
                "reference_rounds": [m.tokens_per_second for m in ref],
                "seqgen_rounds": [m.tokens_per_second for m in ours],
                "reference_loss": [m.loss for m in ref], "seqgen_loss": [m.loss for m in ours]}
            rows.append([family, f"{ref_rate:,.0f}", f"{our_rate:,.0f}", f"{our_rate / ref_rate:.3f}",
                         f"{paired:.3f}", f">= {TARGETS[family]}", spread([m.tokens_per_second for m in ref]),
                         spread([m.tokens_per_second for m in ours]),
                         f"{ref[0].loss:.4f} / {ours[0].loss:.4f}"])
            if family == "gpt2":
                config = build_generator(cfg.model, data.vocab, "lm").model.config
                dtype = torch.bfloat16 if args.mixed_precision == "bf16" else torch.float32
                peak = matmul_peak(device, dtype)
                per_token = flops_per_token(config)
                results["gflops"] = {"flops_per_token": per_token, "matmul_peak_gflops": peak,
                                     "dtype": str(dtype),
                                     "seqgen_gflops": our_rate * per_token / 1e9,
                                     "reference_gflops": ref_rate * per_token / 1e9}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(f"Teacher-forcing training, batch {args.batch_size} x {SEQ} tokens, {args.steps} timed steps "
                f"after {args.warmup}, {args.rounds} round(s); {machine(device)}",
                ["model", "reference tok/s", "seqgen tok/s", "ratio", "paired ratio", "target",
                 "reference rounds", "seqgen rounds", "loss round 1 (ref / seqgen)"], rows)
    if "gflops" in results:
        g = results["gflops"]
        print(f"\nGPT-2 FLOPs per token {g['flops_per_token'] / 1e6:.1f} M; matmul peak "
              f"{g['matmul_peak_gflops']:.1f} GFLOP/s ({g['dtype']}); "
              f"seqgen {g['seqgen_gflops']:.1f} GFLOP/s = {g['seqgen_gflops'] / g['matmul_peak_gflops']:.1%} "
              f"of peak; reference "
              f"{g['reference_gflops']:.1f} GFLOP/s = {g['reference_gflops'] / g['matmul_peak_gflops']:.1%}")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
