"""Scheduled sampling's and weighted likelihood's training steps against teacher forcing's, side by side on
the same model and batches.

    python benchmarks/bench_scheduled_sampling.py --threads 1   # GPT-2 6x512 and LSTM 512, lengths 32 and 64
    python benchmarks/bench_scheduled_sampling.py --quick       # tiny models, a few steps: a smoke run
    python benchmarks/bench_scheduled_sampling.py --device cuda --mixed-precision bf16

One training step is `objective(batch, step)` (forward and loss), backward, AdamW step and zero_grad.
Every variant trains a fresh copy of one generator (same config, same seed, so the same weights) on the
same batches, in this one process with the same threads:

- teacher forcing: `TeacherForcing`;
- sequential, cache: `ScheduledSampling`, mode sequential, one `step` per position on the decoder's
  cache (the key/value cache of GPT-2, the hidden state of the LSTM);
- sequential, no cache: the same with `use_cache: false`, re-running the whole mixed prefix at every
  position (quadratic in the length, for both families);
- parallel, N = 1: mode parallel, one mixing pass without gradient, then the loss pass;
- weighted likelihood, tailr: `WeightedLikelihood`, preset tailr (γ = 0.5, weights at least 0.1): the
  teacher-forcing pass with each token's loss weighted by a detached function of its probability;
- teacher JS_π, data prefixes: `TeacherJsPi` at π = 0.5 against a frozen copy of the student (a teacher
  as large as the student): the student's pass, the teacher's pass without gradient, the divergence over
  the vocabulary at every position; the difference to teacher forcing is the teacher's share;
- teacher JS_π, on-policy 0.5: the same with half the rows' prefixes sampled from the student first.

`--variants` runs a subset (teacher forcing always runs: it is the reference).

Scheduled sampling runs at a constant ε = 0.5 (half the inputs after BOS are sampled model tokens) with
`feed: sample`. The batches are oracle-like: B rows of BOS, T - 1 uniform random tokens of the
vocabulary (5000 + 4 special tokens) and EOS, so T model inputs and T targets per row, no padding.
The global RNG is reseeded before each variant, so the two sequential variants draw the same coins
and samples, and their first steps' losses agree: they do the same computation.

Rounds alternate the order of the variants (forward, then reversed). In each round every variant
takes `--warmup` untimed steps, then its timed steps, each clocked on its own (`--uncached-steps` for
the slow uncached variant). Reported per variant: the median step time over all its timed steps, and
its cost relative to teacher forcing as the ratio of mean step times over all rounds ("ratio") and as
the median over rounds of the ratio of the two rounds' mean step times ("paired ratio", which a burst
of other load on the machine moves less).
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from common import (
    add_device_args,
    autocast,
    fill_sizes,
    machine,
    print_table,
    setup,
    synchronize,
    timed,
    write_json,
)

from seqgen.data.batch import Batch, Vocab
from seqgen.models import Generator, build_generator
from seqgen.models.configs import RNNConfig, TransformerConfig
from seqgen.config import ObjectiveConfig
from seqgen.objectives import (
    Objective,
    ScheduledSamplingConfig,
    TeacherForcing,
    TeacherJsPi,
    TeacherJsPiConfig,
    WeightedLikelihoodConfig,
    build_objective,
)

EPSILON = 0.5
SPECIALS = 4  # PAD, BOS, EOS, UNK come before a fixed vocabulary's symbols (seqgen/data/tokenizer.py)
VARIANTS: dict[str, ObjectiveConfig | None] = {
    "teacher forcing": None,
    "sequential, cache": ScheduledSamplingConfig(epsilon=EPSILON, mode="sequential", use_cache=True),
    "sequential, no cache": ScheduledSamplingConfig(epsilon=EPSILON, mode="sequential", use_cache=False),
    "parallel, N = 1": ScheduledSamplingConfig(epsilon=EPSILON, mode="parallel", passes=1, feed="sample"),
    "weighted likelihood, tailr": WeightedLikelihoodConfig(preset="tailr", gamma=0.5, min_weight=0.1),
    "teacher JS_π, data prefixes": TeacherJsPiConfig(teacher="a copy of the student", pi=0.5),
    "teacher JS_π, on-policy 0.5": TeacherJsPiConfig(teacher="a copy of the student", pi=0.5, on_policy=0.5),
}
BASELINE = "teacher forcing"
UNCACHED = "sequential, no cache"
TARGETS = {("gpt2", "sequential, cache"): 3.0, ("lstm", "sequential, cache"): 2.0,
           ("gpt2", "parallel, N = 1"): 2.2, ("lstm", "parallel, N = 1"): 2.2,
           ("gpt2", "weighted likelihood, tailr"): 1.05, ("lstm", "weighted likelihood, tailr"): 1.05}
"""Largest step time relative to teacher forcing; the uncached variant has none (it shows what the
cache saves)."""

SIZES = {
    "full": {"batch_size": 8, "lengths": [32, 64], "warmup": 1, "steps": 4, "uncached_steps": 1,
             "rounds": 3, "layers": 6, "width": 512, "heads": 8, "rnn_dim": 512, "vocab": 5000},
    "quick": {"batch_size": 2, "lengths": [8, 16], "warmup": 1, "steps": 2, "uncached_steps": 1,
              "rounds": 2, "layers": 2, "width": 64, "heads": 2, "rnn_dim": 64, "vocab": 500},
}


def add_step_args(parser: argparse.ArgumentParser, lengths: str) -> None:
    """The options of the training-step benchmarks: device, models, sizes, steps and rounds."""
    add_device_args(parser)
    parser.add_argument("--models", nargs="+", choices=["gpt2", "lstm"], default=["gpt2", "lstm"])
    parser.add_argument("--lengths", nargs="+", type=int, help=f"T: model inputs per row (default {lengths})")
    parser.add_argument("--batch-size", type=int, help="rows per step (default 8; quick 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps per variant and round (default 1)")
    parser.add_argument("--steps", type=int, help="timed steps per variant and round (default 4)")
    parser.add_argument("--uncached-steps", type=int,
                        help="timed steps of the uncached variant per round (default 1)")
    parser.add_argument("--rounds", type=int, help="rounds over all variants (default 3)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_args(parser, "32 64")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=[v for v in VARIANTS if v != BASELINE],
                        help="the variants to run besides teacher forcing (default: all)")
    args = parser.parse_args()
    fill_sizes(args, SIZES)
    return args


def model_config(family: str, args: argparse.Namespace) -> RNNConfig | TransformerConfig:
    """bench_train.py's models: GPT-2 (dropout 0, seqgen's default) and a tied 1-layer LSTM."""
    if family == "gpt2":
        return TransformerConfig(arch="gpt2", num_hidden_layers=args.layers,
                           hidden_size=args.width, num_attention_heads=args.heads,
                           max_positions=max(args.lengths))
    return RNNConfig(cell="lstm", embedding_dim=args.rnn_dim, hidden_dim=args.rnn_dim,
                       num_layers=1, dropout=0.0, tie_embeddings=True)


def make_batches(vocab: Vocab, length: int, count: int, args: argparse.Namespace,
                 device: torch.device) -> list[Batch]:
    """`count` batches of `args.batch_size` rows `BOS x_1 .. x_{T-1} EOS`, tokens (B, T + 1)."""
    rng = torch.Generator().manual_seed(args.seed)
    batches = []
    for _ in range(count):
        body = torch.randint(SPECIALS, vocab.size, (args.batch_size, length - 1), generator=rng)
        tokens = torch.cat([torch.full((args.batch_size, 1), vocab.bos_id), body,
                            torch.full((args.batch_size, 1), vocab.eos_id)], 1)
        batches.append(Batch(tokens=tokens, mask=torch.ones_like(tokens, dtype=torch.bool)).to(device))
    return batches


def objective_of(variant: str, generator: Generator) -> Objective:
    cfg = VARIANTS[variant]
    if isinstance(cfg, TeacherJsPiConfig):  # the teacher: a frozen copy of the student, as large
        return TeacherJsPi(generator, cfg, teacher=copy.deepcopy(generator).eval().requires_grad_(False))
    return TeacherForcing(generator) if cfg is None else build_objective(cfg, generator)


def run_variant(variant: str, base: Generator, batches: list[Batch], steps: int, args: argparse.Namespace,
                device: torch.device) -> tuple[list[float], float]:
    """Train a fresh copy of `base` for `args.warmup` untimed, then `steps` timed steps.

    Returns:
        The seconds of each timed step, and the loss of the first step (taken from the same weights by
        every variant; later steps start from weights that already differ).
    """
    generator = copy.deepcopy(base).train()
    objective = objective_of(variant, generator)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=args.lr, weight_decay=0.0)
    torch.manual_seed(args.seed)  # the same coins and samples for both sequential variants
    losses = []

    def train_step(i: int) -> None:
        with autocast(device, args.mixed_precision):
            loss, _ = objective(batches[i], i)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    for i in range(args.warmup):
        train_step(i)
    synchronize(device)
    seconds = [timed(lambda i=i: train_step(i), device) for i in range(args.warmup, args.warmup + steps)]
    return seconds, losses[0].item()


def summarise(times: dict[str, list[list[float]]], losses: dict[str, list[float]]) -> dict[str, dict]:
    """Per variant: median step time, both ratios to teacher forcing, per-round means and losses."""
    means = {v: [sum(r) / len(r) for r in rounds] for v, rounds in times.items()}
    overall = {v: sum(map(sum, rounds)) / sum(map(len, rounds)) for v, rounds in times.items()}
    return {v: {"median_step_seconds": statistics.median(s for r in rounds for s in r),
                "mean_step_seconds": overall[v],
                "ratio": overall[v] / overall[BASELINE],
                "paired_ratio": statistics.median(a / b for a, b in zip(means[v], means[BASELINE])),
                "round_mean_seconds": means[v], "step_seconds": rounds, "loss": losses[v]}
            for v, rounds in times.items()}


def main() -> None:
    args = parse_args()
    device = setup(args)
    chosen = [BASELINE, *(args.variants or [v for v in VARIANTS if v != BASELINE])]
    vocab = Vocab(size=args.vocab + SPECIALS, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    start = machine(device)
    results: dict = {"machine": start, "args": {k: str(v) for k, v in vars(args).items()},
                     "epsilon": EPSILON, "runs": {}}
    rows = []
    for family in args.models:
        torch.manual_seed(args.seed)
        base = build_generator(model_config(family, args), vocab, "lm").to(device)
        for length in args.lengths:
            count = args.warmup + max(args.steps, args.uncached_steps)
            batches = make_batches(vocab, length, count, args, device)
            times: dict[str, list[list[float]]] = {v: [] for v in chosen}
            losses: dict[str, list[float]] = {v: [] for v in chosen}
            for round_ in range(args.rounds):
                # Alternate the order, so that no variant always runs right after the same other one.
                for variant in chosen[:: 1 if round_ % 2 == 0 else -1]:
                    steps = args.uncached_steps if variant == UNCACHED else args.steps
                    seconds, loss = run_variant(variant, base, batches, steps, args, device)
                    times[variant].append(seconds)
                    losses[variant].append(loss)
                print(f"{family} T={length} round {round_ + 1}: "
                      + ", ".join(f"{v} {sum(times[v][-1]) / len(times[v][-1]):.3f} s" for v in chosen),
                      flush=True)
            summary = summarise(times, losses)
            results["runs"][f"{family}-{length}"] = summary
            for variant, s in summary.items():
                target = TARGETS.get((family, variant))
                rounds = s["round_mean_seconds"]
                rows.append([family, str(length), variant, f"{s['median_step_seconds']:.3f}",
                             f"{s['ratio']:.2f}", f"{s['paired_ratio']:.2f}",
                             "-" if target is None else f"<= {target}",
                             "-" if target is None else ("yes" if s["ratio"] <= target else "no"),
                             f"{min(rounds):.3f}-{max(rounds):.3f}", f"{s['loss'][0]:.5f}"])
    results["machine_after"] = machine(device)
    print_table(f"Training step relative to teacher forcing, batch {args.batch_size}, constant epsilon "
                f"{EPSILON}, {args.steps} timed steps ({args.uncached_steps} uncached) after {args.warmup} "
                f"per variant and round, {args.rounds} round(s); {start}; 1-min load after "
                f"{results['machine_after'].get('load_average_1min', '-')}",
                ["model", "T", "variant", "median step s", "ratio", "paired ratio", "target", "met",
                 "round means s", "first-step loss"], rows)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
