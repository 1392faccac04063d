"""One adversarial iteration against a teacher-forcing step, side by side on the same generator and batches.

    python benchmarks/bench_adversarial.py --threads 1   # GPT-2 6x512 and LSTM 512, length 32
    python benchmarks/bench_adversarial.py --threads 1 --lengths 32 64 --uncached-steps 0
    python benchmarks/bench_adversarial.py --quick       # tiny models, a few steps: a smoke run

One adversarial iteration is what `seqgen.train` does per optimizer step with `critic_steps: 1` on one
process: a critic update (rollouts without gradient for the batch's rows, the critic's loss on them and
on the batch's targets, backward, gradient clipping, AdamW step, zero_grad), then a generator update
(the generator loss or surrogate on fresh rollouts scored by the frozen critic, backward, clipping, AdamW
step, zero_grad). A teacher-forcing step is `TeacherForcing(batch)`, backward, clipping, AdamW step,
zero_grad. Clipping is at `--max-grad-norm` (train.max_grad_norm's default 1.0) on every side. Every
variant trains a fresh copy of one generator (same config and seed, so the same weights; the critic
too) on the same batches, in this one process with the same threads:

- teacher forcing: `TeacherForcing`;
- adversarial straight-through, cache: `Adversarial` with `estimator: straight_through` (set here
  explicitly: the config's default is `reinforce`), rollouts on the decoder's cache (the key/value cache
  of GPT-2, the hidden state of the LSTM). Both rollouts are Gumbel-softmax rollouts fed the sampled ids
  (`hard: true, feed: hard`): the ids are decoded without gradient on the cache with the Gumbel noise,
  and the generator update re-scores [BOS, ids] in one teacher-forced pass with gradient to get the
  relaxed (B, T, V) tokens the critic reads;
- adversarial straight-through, no cache: the same with both rollouts on
  `gumbel_rollout(use_cache=False)`, which re-runs the whole prefix at every position. No recipe
  setting selects that path (the adversarial section has no `use_cache`), so this script swaps the
  generator player's `rollout` for one that passes it (`--uncached-steps 0` leaves it out);
- adversarial reinforce, cache: `estimator: reinforce, baseline: batch, rollouts_per_context: 1`
  (K = 1). Both rollouts are sampled ids decoded without gradient on the cache
  (`estimators.sample_rollout`), which the critic reads by embedding lookup; the generator update adds
  one teacher-forced pass with gradient over [BOS, ids] for log Q, the frozen critic's score of the ids
  as a detached reward, and the score-function surrogate (reward - leave-one-out batch mean) · log Q;
- adversarial rebar, cache: the same with `estimator: rebar` (η = cv_weight 1, baseline batch): the
  generator update also scores two relaxed (B, T, V) sequences (z and z̃, drawn given the ids) with the
  frozen critic, with gradient, for the Gumbel-softmax control variate. It has no target.

The critic is the recipes' (recipes/lm/*_adv.yaml): a CNN with embedding 64, 64 filters for each window
width 2, 3, 4, 5, one highway layer, no dropout, no spectral norm, no gradient penalty, AdamW lr 1e-4; the
objective uses π = 0.5, the weighted critic loss, the minimax generator loss, the exponential temperature
schedule (β_max 100 over 3000 steps; straight-through's and rebar's relaxations) and no teacher-forcing
term. The batches are bench_scheduled_sampling's: B rows of BOS, T - 1 uniform random tokens of the
vocabulary (5000 + 4 special tokens) and EOS, so T inputs and T targets per row and rollouts of T
positions (an untrained model almost never samples EOS early). Each update draws its randomness (Gumbel
noise, or the samplers' uniforms) from a generator seeded by the step and the phase, as the training
loop does, and the critic is built after the same reseeding in every variant, so all adversarial
variants start from the same critic, and the two straight-through variants draw the same noise and their
first generator losses agree, as do reinforce's and rebar's (same sampler, same uniforms). The reported
first-step loss is the generator loss's value (the metrics' `loss`), not reinforce's or rebar's
surrogate; the score-function variants sample differently from straight-through (inverse CDF against
Gumbel-max), so their first losses are close to, not equal to, straight-through's.

Rounds alternate the order of the variants (forward, then reversed). In each round every variant
takes `--warmup` untimed steps, then its timed steps, each clocked on its own (`--uncached-steps` for
the slow uncached variant; 0 leaves it out; `--no-rebar` leaves rebar out). An adversarial step is
clocked as its two updates, the device drained between them, so the critic's share is reported too.
Reported per variant: the median step time over all its timed steps, and its cost relative to teacher
forcing as the ratio of mean step times over all rounds ("ratio") and as the median over rounds of the
ratio of the two rounds' mean step times ("paired ratio", which a burst of other load on the machine
moves less). A target is met when the ratio is at most the target.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
from collections.abc import Callable

import torch
from bench_scheduled_sampling import SPECIALS, add_step_args, make_batches, model_config
from bench_scheduled_sampling import summarise as summarise_steps
from common import (
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
from seqgen.gumbel import Rollout, gumbel_rollout
from seqgen.models import Generator, build_generator
from seqgen.models.critics import CriticConfig
from seqgen.objectives import Adversarial, AdversarialConfig, RunInfo, TeacherForcing
from seqgen.objectives.adversarial import GeneratorPlayer, pad_rollout

MAX_STEPS = 3000  # N of the temperature schedule (the recipes' train.max_steps)
CRITIC = AdversarialConfig(pi=0.5, critic=CriticConfig(kind="cnn", embedding_dim=64, hidden_dim=64),
                           critic_lr=1e-4, critic_steps=1, generator_loss="minimax", tau_schedule="exponential",
                           beta_max=100.0, estimator="straight_through", hard=True, feed="sample")
"""The recipes' adversarial section with straight-through rollouts (no longer the config's default)."""
REINFORCE = dataclasses.replace(CRITIC, estimator="reinforce", baseline="batch", rollouts_per_context=1)
REBAR = dataclasses.replace(REINFORCE, estimator="rebar", cv_weight=1.0)
BASELINE = "teacher forcing"
CACHED, UNCACHED = "adversarial straight-through, cache", "adversarial straight-through, no cache"
REINFORCE_CACHED, REBAR_CACHED = "adversarial reinforce, cache", "adversarial rebar, cache"
ADVERSARIAL: dict[str, tuple[AdversarialConfig, bool]] = {
    CACHED: (CRITIC, True), UNCACHED: (CRITIC, False), REINFORCE_CACHED: (REINFORCE, True),
    REBAR_CACHED: (REBAR, True)}
"""Each adversarial variant's section and whether its rollouts use the decoder's cache."""
VARIANTS = [BASELINE, *ADVERSARIAL]
TARGETS = {("gpt2", CACHED): 4.0, ("lstm", CACHED): 4.0,
           ("gpt2", REINFORCE_CACHED): 3.0, ("lstm", REINFORCE_CACHED): 3.0}
"""Largest iteration time relative to teacher forcing; the uncached variant has none (it shows what the
cache saves), nor has rebar (two more critic passes, with gradient, over relaxed (B, T, V) tokens)."""

SIZES = {
    "full": {"batch_size": 8, "lengths": [32], "warmup": 1, "steps": 4, "uncached_steps": 1,
             "rounds": 3, "layers": 6, "width": 512, "heads": 8, "rnn_dim": 512, "vocab": 5000},
    "quick": {"batch_size": 2, "lengths": [8, 16], "warmup": 1, "steps": 2, "uncached_steps": 1,
              "rounds": 2, "layers": 2, "width": 64, "heads": 2, "rnn_dim": 64, "vocab": 500},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_args(parser, "32")  # --uncached-steps 0 leaves the uncached variant out
    parser.add_argument("--lr", type=float, default=3e-4, help="the generator's AdamW learning rate")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping on every side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebar", action=argparse.BooleanOptionalAction, default=True,
                        help="include the rebar variant (--no-rebar leaves it out)")
    args = parser.parse_args()
    fill_sizes(args, SIZES)
    return args


def uncached_rollout(player: GeneratorPlayer, batch: Batch, step: int, count: int | None = None,
                     rng: torch.Generator | None = None) -> Rollout:
    """`GeneratorPlayer.rollout` for a language model on `gumbel_rollout`'s cache-free path."""
    count = len(batch) if count is None else count
    length = batch.targets.shape[1]
    fake = gumbel_rollout(player.generator, num_sequences=count, max_len=length, tau=player.tau(step),
                          hard=player.cfg.hard, feed=player.cfg.feed, generator=rng, use_cache=False)
    return pad_rollout(fake, length, player.generator.vocab.pad_id)


def clip(module: torch.nn.Module, args: argparse.Namespace) -> None:
    if args.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), args.max_grad_norm)


def teacher_forcing_step(generator: Generator, args: argparse.Namespace,
                         device: torch.device) -> Callable[[Batch, int], tuple[list[float], float]]:
    """A function that takes one teacher-forcing step and returns [its seconds] and its loss."""
    objective = TeacherForcing(generator).train()
    optimizer = torch.optim.AdamW(objective.parameters(), lr=args.lr, weight_decay=0.0)

    def step(batch: Batch, i: int) -> tuple[list[float], float]:
        losses: list[torch.Tensor] = []

        def update() -> None:
            with autocast(device, args.mixed_precision):
                loss, _ = objective(batch, i)
            loss.backward()
            clip(objective, args)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        seconds = timed(update, device)
        return [seconds], losses[0].item()

    return step


def adversarial_step(generator: Generator, cfg: AdversarialConfig, cached: bool,
                     args: argparse.Namespace, device: torch.device) -> Callable[[Batch, int], tuple[list[float], float]]:
    """A function that takes one adversarial iteration (critic update, then generator update) and
    returns [critic seconds, generator seconds] and the generator loss's value."""
    torch.manual_seed(args.seed)  # the same critic weights for every adversarial variant
    objective = Adversarial(generator, cfg, RunInfo(task="lm", max_steps=MAX_STEPS))
    if not cached:  # the critic's fake side draws through the same player
        objective.generator_player.rollout = types.MethodType(uncached_rollout, objective.generator_player)
    objective.generator_player.train()
    objective.critic_player.train()
    gen_opt = torch.optim.AdamW(objective.generator_player.parameters(), lr=args.lr, weight_decay=0.0)
    critic_opt = torch.optim.AdamW(objective.critic_player.parameters(), lr=cfg.critic_lr, weight_decay=0.0)

    def rng(i: int, phase: int) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(args.seed * 1_000_003 + 2 * i + phase)

    def step(batch: Batch, i: int) -> tuple[list[float], float]:
        losses: list[torch.Tensor] = []

        def critic_update() -> None:
            noise = rng(i, 0)
            with autocast(device, args.mixed_precision):
                loss, _ = objective.critic_player(batch, i, noise)
            loss.backward()
            clip(objective.critic_player, args)
            critic_opt.step()
            critic_opt.zero_grad(set_to_none=True)

        def generator_update() -> None:
            with autocast(device, args.mixed_precision):
                loss, metrics = objective.generator_player(batch, i, rng(i, 1))
            loss.backward()
            clip(objective.generator_player, args)
            gen_opt.step()
            gen_opt.zero_grad(set_to_none=True)
            losses.append(metrics["loss"])  # the generator loss, not reinforce's or rebar's surrogate

        seconds = [timed(critic_update, device), timed(generator_update, device)]
        return seconds, losses[0].item()

    return step


def run_variant(variant: str, base: Generator, batches: list[Batch], steps: int, args: argparse.Namespace,
                device: torch.device) -> tuple[list[list[float]], float]:
    """Train a fresh copy of `base` for `args.warmup` untimed, then `steps` timed steps.

    Returns:
        The seconds of each timed step (per update: [step] for teacher forcing, [critic, generator]
        for adversarial variants), and the (generator) loss of the first step, taken from the same
        generator and critic weights by every adversarial variant.
    """
    generator = copy.deepcopy(base).train()
    if variant == BASELINE:
        step = teacher_forcing_step(generator, args, device)
    else:
        cfg, cached = ADVERSARIAL[variant]
        step = adversarial_step(generator, cfg, cached, args, device)
    losses = [step(batches[i], i)[1] for i in range(args.warmup)]
    synchronize(device)
    timings = []
    for i in range(args.warmup, args.warmup + steps):
        seconds, loss = step(batches[i], i)
        timings.append(seconds)
        losses.append(loss)
    return timings, losses[0]


def summarise(times: dict[str, list[list[list[float]]]], losses: dict[str, list[float]]) -> dict[str, dict]:
    """Per variant: bench_scheduled_sampling's summary of whole step times, the critic's share of them,
    and the step times as timed (the critic's and the generator's update apart)."""
    summary = summarise_steps({v: [[sum(s) for s in r] for r in rounds] for v, rounds in times.items()}, losses)
    for v, rounds in times.items():
        parts = [s for r in rounds for s in r]
        summary[v]["critic_share"] = (sum(s[0] for s in parts) / sum(sum(s) for s in parts)
                                      if v != BASELINE else None)
        summary[v]["step_seconds"] = rounds
    return summary


def main() -> None:
    args = parse_args()
    device = setup(args)
    vocab = Vocab(size=args.vocab + SPECIALS, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    variants = [v for v in VARIANTS
                if (v != UNCACHED or args.uncached_steps > 0) and (v != REBAR_CACHED or args.rebar)]
    start = machine(device)
    results: dict = {"machine": start, "args": {k: str(v) for k, v in vars(args).items()},
                     "critic": str(CRITIC), "sections": {v: str(c) for v, (c, _) in ADVERSARIAL.items()},
                     "runs": {}}
    rows, verdicts = [], []
    for family in args.models:
        torch.manual_seed(args.seed)
        base = build_generator(model_config(family, args), vocab, "lm").to(device)
        for length in args.lengths:
            count = args.warmup + max(args.steps, args.uncached_steps)
            batches = make_batches(vocab, length, count, args, device)
            times: dict[str, list[list[list[float]]]] = {v: [] for v in variants}
            losses: dict[str, list[float]] = {v: [] for v in variants}
            for round_ in range(args.rounds):
                # Alternate the order, so that no variant always runs right after the same other one.
                for variant in variants[:: 1 if round_ % 2 == 0 else -1]:
                    steps = args.uncached_steps if variant == UNCACHED else args.steps
                    seconds, loss = run_variant(variant, base, batches, steps, args, device)
                    times[variant].append(seconds)
                    losses[variant].append(loss)
                print(f"{family} T={length} round {round_ + 1}: "
                      + ", ".join(f"{v} {sum(map(sum, times[v][-1])) / len(times[v][-1]):.3f} s"
                                  for v in variants), flush=True)
            summary = summarise(times, losses)
            results["runs"][f"{family}-{length}"] = summary
            for variant, s in summary.items():
                target = TARGETS.get((family, variant))
                met = "-" if target is None else ("PASS" if s["ratio"] <= target else "MISS")
                if target is not None:
                    verdicts.append(f"{family} T={length} {variant}: {s['ratio']:.2f}x (paired "
                                    f"{s['paired_ratio']:.2f}x) against <= {target}x: {met}")
                rounds = s["round_mean_seconds"]
                share = "-" if s["critic_share"] is None else f"{s['critic_share']:.0%}"
                rows.append([family, str(length), variant, f"{s['median_step_seconds']:.3f}",
                             f"{s['ratio']:.2f}", f"{s['paired_ratio']:.2f}", share,
                             "-" if target is None else f"<= {target}", met,
                             f"{min(rounds):.3f}-{max(rounds):.3f}", f"{s['loss'][0]:.5f}"])
    results["machine_after"] = machine(device)
    print_table(f"One adversarial iteration (k = 1 critic update + 1 generator update) relative to a "
                f"teacher-forcing step, batch {args.batch_size}, CNN critic 64/64, {args.steps} timed steps "
                f"({args.uncached_steps} uncached) after {args.warmup} per variant and round, {args.rounds} "
                f"round(s); {start}; 1-min load after {results['machine_after'].get('load_average_1min', '-')}",
                ["model", "T", "variant", "median step s", "ratio", "paired ratio", "critic share", "target",
                 "met", "round means s", "first-step loss"], rows)
    print()
    for line in verdicts:
        print(line)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
