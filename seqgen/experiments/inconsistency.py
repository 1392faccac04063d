"""Scheduled sampling's inconsistency, measured (docs/theory/objectives.md#scheduled-sampling).

On an enumerable toy distribution P, one model class that can represent every distribution of the toy
is trained by teacher forcing, by scheduled sampling at fixed ε (the probability of feeding the gold
token) and by scheduled sampling with ε annealed to 0, all on the same training samples. Every trained
model Q is then compared with P exactly (`seqgen.metrics.exact`): KL[P‖Q], KL[Q‖P], KL[Q‖∏_t P_t] beside
P's multi-information. For two tokens, the population optimum of scheduled sampling is known in closed
form,

    Q*_ε(x1) = P(x1),   Q*_ε(x2 | x1) = ε·P(x2 | x1) + (1 − ε)·P(x2),

so each run is also compared with its own Q*_ε (KL[Q‖Q*_ε]), and KL[P‖Q*_ε] over ε is the curve the
trained points should follow: teacher forcing (ε = 1) recovers P, ε = 0 learns the product of P's
marginals, whose KL from P is P's multi-information.

The same two objectives (teacher forcing, and scheduled sampling annealed to 0) are also compared on an
oracle LSTM (a small random one, or SeqGAN's when `oracle.data.synthetic.weights` points at its file),
by NLL_oracle (sample quality) and NLL_test (coverage).

`run_inconsistency` writes into its folder: one run folder per training run (`toy/<run>/`,
`oracle/<run>/`), `results.json`, `report.md` and the figures `kl_vs_epsilon.png` and `heatmaps.png`
(`seqgen.experiments.inconsistency_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqgen.config import RunConfig
from seqgen.data.sources import split_seed, synthetic_distribution
from seqgen.data.synthetic import OracleLSTM, ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments.inconsistency_report import (
    KL_TOLERANCE,
    MULTI_INFORMATION_TOLERANCE,
    Check,
    checks,
    text_table,
    write,
)
from seqgen.experiments.recipes import QUIET_TRAIN, Recipe, group_overrides, merge, study_config
from seqgen.experiments.report import Row
from seqgen.experiments.runs import study_folder, train_run
from seqgen.experiments.sizes import study_size
from seqgen.metrics.exact import kl, model_log_probs, toy_metrics
from seqgen.metrics.oracle import oracle_metrics
from seqgen.metrics.scheduled_sampling import check_epsilon, closed_form_optimum, two_token
from seqgen.models.base import Generator

EPSILONS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The fixed ε of the scheduled-sampling runs."""
ANNEAL_FRACTION = 0.5
"""The annealed run's ε falls linearly from 1 to 0 over this fraction of training, then stays 0."""
STUDY_KEYS = ("task", "output_dir", "data.source", "tokenizer.kind", "objective.name", "objective.schedule",
              "objective.epsilon", "objective.k", "objective.c", "objective.epsilon_min", "objective.unit")
"""Recipe keys that the study sets for each run itself; an override may not change them."""

_TRAIN = {**QUIET_TRAIN, "lr_schedule": "linear", "log_every": 50}
"""Training settings common to every run: a decaying learning rate (the KL targets need the last steps
to settle), and no evaluation or checkpoint but the final one."""


@dataclass(frozen=True)
class StudySize:
    """How big the study is: the recipes of its toy and oracle runs, before overrides.

    Attributes:
        name: its name in the studies' size vocabulary (`seqgen.experiments.sizes`).
        toy: the toy runs' recipe (nested dict of `RunConfig` keys).
        oracle: the oracle runs' recipe; its test split (`data.synthetic.num_test` sequences) gives
            NLL_test, and as many model samples give NLL_oracle.
    """

    name: str
    toy: Recipe
    oracle: Recipe


def _toy_recipe(vocab_size: int, num_train: int, hidden: int, steps: int, batch: int, lr: float) -> dict:
    return {"task": "lm", "seed": 0,
            "data": {"source": "toy", "batch_size": batch,
                     "synthetic": {"kind": "joint", "length": 2, "vocab_size": vocab_size,
                                   "concentration": 0.5, "seed": 0, "num_train": num_train,
                                   "num_validation": 0, "num_test": 0}},
            "tokenizer": {"kind": "fixed"},
            "model": {"family": "rnn", "cell": "lstm", "embedding_dim": hidden, "hidden_dim": hidden},
            "train": {**_TRAIN, "max_steps": steps, "lr": lr, "warmup_steps": steps // 20}}


def _oracle_recipe(vocab_size: int, length: int, num_train: int, num_test: int, hidden: int, steps: int,
                   batch: int, lr: float) -> dict:
    return {"task": "lm", "seed": 0,
            "data": {"source": "oracle", "batch_size": batch,
                     "synthetic": {"vocab_size": vocab_size, "length": length, "hidden_dim": 32, "seed": 7,
                                   "num_train": num_train, "num_validation": 0, "num_test": num_test}},
            "tokenizer": {"kind": "fixed"},
            "model": {"family": "rnn", "cell": "lstm", "embedding_dim": hidden, "hidden_dim": hidden},
            "train": {**_TRAIN, "max_steps": steps, "lr": lr, "warmup_steps": steps // 20}}


SIZES = {
    # The oracle as SeqGAN's (length 20, embedding and hidden size 32, 10,000 sequences, batch 64) but with
    # 100 tokens; oracle.data.synthetic.weights=PATH.npz loads SeqGAN's own 5000-token weights.
    "full": StudySize("full", toy=_toy_recipe(6, 100_000, 64, 800, 512, 0.01),
                      oracle=_oracle_recipe(100, 20, 10_000, 5_000, 32, 3000, 64, 0.01)),
    # `seqgen demo`
    "demo": StudySize("demo", toy=_toy_recipe(4, 20_000, 32, 400, 512, 0.02),
                      oracle=_oracle_recipe(30, 10, 5_000, 2_000, 32, 300, 64, 0.01)),
    # notebooks and tests: seconds per run, three symbols
    "tiny": StudySize("tiny", toy=_toy_recipe(3, 10_000, 32, 200, 256, 0.03),
                      oracle=_oracle_recipe(20, 8, 2_000, 500, 32, 100, 64, 0.01)),
}


@dataclass
class ToyRun(Row):
    """One toy run, compared with P exactly (Q is the model conditioned on the toy's support;
    `q_mass_outside` is what it puts elsewhere, see `seqgen.metrics.exact`)."""

    name: str
    method: str
    """"teacher_forcing" or "scheduled_sampling"."""
    epsilon: float | None
    """The fixed ε; None for teacher forcing and the annealed run."""
    schedule: str | None
    closed_form_epsilon: float
    """The ε whose Q*_ε the run is compared with: 1 for teacher forcing, 0 for the annealed run."""
    kl_p_q: float
    kl_q_p: float
    kl_q_prod_marginals: float
    multi_information_p: float
    kl_q_closed_form: float | None
    """KL[Q‖Q*_ε], and KL[P‖Q*_ε] below: two-token toys only, else None."""
    kl_p_closed_form: float | None
    tv_p_q: float
    q_mass_outside: float
    steps: int
    seconds: float
    run_dir: str


@dataclass
class OracleRun(Row):
    """One run on the oracle LSTM, scored by NLL_oracle (quality) and NLL_test (coverage)."""

    name: str
    method: str
    schedule: str | None
    nll_oracle: float
    nll_test: float
    steps: int
    seconds: float
    run_dir: str


@dataclass
class OracleStep(Row):
    """The oracle comparison: what the runs are measured against (`describe_oracle`) and the runs."""

    oracle: dict[str, Any]
    runs: list[OracleRun]


@dataclass
class StudyResult:
    """What `run_inconsistency` measured (the content of results.json) and where it wrote it.

    Attributes:
        toy: the toy distribution: its parameters, H(P), multi-information, and `kl_empirical_p`, the
            KL of the training sample's empirical distribution from P (a model that fits its training
            data exactly is about this far from its population optimum).
        runs: one per toy run (see `run_inconsistency`).
        oracle: the oracle comparison; None if skipped.
        checks: the expected outcomes.
        files: `results`, `report` and the figures, by name.
    """

    toy: dict[str, Any]
    runs: list[ToyRun]
    oracle: OracleStep | None
    checks: list[Check]
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        """The toy runs (and the oracle runs) as a plain-text table."""
        return text_table(self)


# ---------------------------------------------------------------------------------------------------
# The study


def run_inconsistency(out_dir: str | Path, overrides: Sequence[str] = (), *, size: str | StudySize = "full",
                      epsilons: Sequence[float] = EPSILONS, oracle: bool = True,
                      overwrite: bool = False) -> StudyResult:
    """Train and measure every run of the study; write results.json, report.md and the figures.

    Toy runs (`StudyResult.runs`, `ToyRun`s in this order): `teacher_forcing`, `ss_eps{ε}` for each ε
    of `epsilons`, `ss_annealed` (ε linear from 1 to 0 over the first `ANNEAL_FRACTION` of training,
    then 0).

    Args:
        out_dir: the study's folder.
        overrides: `key=value` recipe overrides of the toy runs (e.g. `data.synthetic.vocab_size=3`,
            `train.max_steps=800`); `oracle.key=value` overrides the oracle runs (e.g.
            `oracle.data.synthetic.weights=PATH.npz`). The keys of `STUDY_KEYS` are the study's own.
        size: a `StudySize`, or its name: "full", "demo" or "tiny" (`SIZES`; "small" is "tiny"):
            the recipes before overrides.
        epsilons: the fixed ε of the scheduled-sampling runs, each in [0, 1].
        oracle: also compare the objectives on an oracle LSTM.
        overwrite: replace what `out_dir` holds (otherwise a folder that is not empty is an error).

    Raises:
        UserError: an unknown size, a bad ε or override, a folder that already holds something, or any
            error of the runs' recipes.
    """
    spec = study_size(SIZES, size)
    epsilons = list(dict.fromkeys(float(e) for e in epsilons))
    for e in epsilons:
        check_epsilon(e)
    out = study_folder(out_dir, overwrite)
    groups = group_overrides(overrides, ["oracle."], STUDY_KEYS)
    toy_recipe, oracle_recipe = merge(spec.toy, groups[""]), merge(spec.oracle, groups["oracle."])
    if groups["oracle."] and not oracle:
        raise UserError("oracle.* overrides were given but the oracle runs are skipped")

    # Every recipe is checked before the first run starts, the oracle's too.
    base = study_config(toy_recipe, out / "toy" / "base")
    toy = synthetic_distribution(base.data)
    if not toy.fixed_length:
        raise UserError("the study needs a fixed-length toy (data.synthetic.kind=joint): over sequences of "
                        "several lengths, ∏_t P_t is not a distribution of the toy's sequences")
    oracle_base = study_config(oracle_recipe, out / "oracle" / "base") if oracle else None
    oracle_lstm = synthetic_distribution(oracle_base.data) if oracle_base else None
    if oracle_base is not None and oracle_base.data.synthetic.num_test < 1:
        raise UserError("oracle.data.synthetic.num_test must be at least 1: the test split gives NLL_test")
    out.mkdir(parents=True, exist_ok=True)
    toy_info = _describe_toy(toy, base)
    print(f"toy P: {toy.vocab_size} symbols, length {toy.max_length}, H(P) = {toy_info['entropy_p']:.4f}, "
          f"multi-information = {toy_info['multi_information_p']:.4f} nats; {base.data.synthetic.num_train} "
          f"training samples (their own KL from P: {toy_info['kl_empirical_p']:.4f})")

    runs, tables = [], {}
    plan = _toy_plan(epsilons, base.train.max_steps)
    for i, (name, entry, objective) in enumerate(plan, 1):
        cfg = study_config(merge(toy_recipe, objective), out / "toy" / name)
        generator, seconds = train_run(cfg)
        measured, q = _measure_toy(generator, toy, entry["closed_form_epsilon"])
        row = ToyRun(name=name, **entry, **measured, steps=cfg.train.max_steps, seconds=round(seconds, 2),
                     run_dir=str(cfg.output_dir))
        runs.append(row)
        tables[name] = q
        print(f"[{i}/{len(plan)}] toy {name:<16} KL[P‖Q] = {row.kl_p_q:.4f}  "
              f"KL[Q‖∏P_t] = {row.kl_q_prod_marginals:.4f}" +
              (f"  KL[Q‖Q*_ε] = {row.kl_q_closed_form:.4f}" if row.kl_q_closed_form is not None else "")
              + f"  ({seconds:.1f} s)")

    oracle_result = None
    if oracle_base is not None:
        oracle_result = _oracle_study(oracle_recipe, oracle_base, oracle_lstm, out)
    result = StudyResult(toy=toy_info, runs=runs, oracle=oracle_result, checks=checks(runs, toy_info))
    result.files = write(result, toy, tables, out)
    return result


TEACHER_FORCING: Recipe = {"objective": {"name": "teacher_forcing"}}


def _toy_plan(epsilons: list[float], max_steps: int) -> list[tuple[str, dict[str, Any], Recipe]]:
    """(run name, its results entry so far, its objective) of every toy run."""
    plan = [("teacher_forcing", {"method": "teacher_forcing", "epsilon": None, "schedule": None,
                                 "closed_form_epsilon": 1.0}, TEACHER_FORCING)]
    for e in epsilons:
        plan.append((f"ss_eps{e:g}", {"method": "scheduled_sampling", "epsilon": e, "schedule": "constant",
                                      "closed_form_epsilon": e},
                     {"objective": {"name": "scheduled_sampling", "schedule": "constant", "epsilon": e}}))
    plan.append(("ss_annealed", {"method": "scheduled_sampling", "epsilon": None,
                                 "schedule": _annealed_schedule(max_steps), "closed_form_epsilon": 0.0},
                 _annealed(max_steps)))
    return plan


def _annealed_schedule(max_steps: int) -> str:
    return f"linear: ε from 1 to 0 by step {round(ANNEAL_FRACTION * max_steps)}, then 0"


def _annealed(max_steps: int) -> Recipe:
    return {"objective": {"name": "scheduled_sampling", "schedule": "linear", "unit": "step", "k": 1.0,
                          "c": 1.0 / (ANNEAL_FRACTION * max_steps), "epsilon_min": 0.0}}


def _describe_toy(toy: ToyDistribution, cfg: RunConfig) -> dict[str, Any]:
    seqs, p = toy.enumerate()
    index = {s: i for i, s in enumerate(seqs)}
    n = cfg.data.synthetic.num_train
    counts = torch.zeros(len(seqs), dtype=torch.float64)
    for s in toy.sample(n, split_seed(cfg.seed, "train")):  # the runs' training split
        counts[index[s]] += 1
    syn = cfg.data.synthetic
    return {"kind": toy.kind, "vocab_size": toy.vocab_size, "length": toy.max_length,
            "concentration": syn.concentration, "seed": syn.seed, "num_train": n,
            "entropy_p": toy.entropy(), "multi_information_p": toy.multi_information(),
            "kl_empirical_p": kl(counts / n, p)}


def _measure_toy(generator: Generator, toy: ToyDistribution,
                 closed_form_epsilon: float) -> tuple[dict[str, float | None], torch.Tensor]:
    """The run's divergences (the measured fields of `ToyRun`) and its Q conditioned on the toy's support
    ((N,) float64)."""
    metrics = toy_metrics(generator, toy)
    q = model_log_probs(generator, toy).exp()
    q = q / q.sum()
    row = {**{k: metrics[k] for k in ("kl_p_q", "kl_q_p", "kl_q_prod_marginals", "multi_information_p")},
           "kl_q_closed_form": None, "kl_p_closed_form": None,
           "tv_p_q": metrics["tv_p_q"], "q_mass_outside": metrics["q_mass_outside"]}
    if two_token(toy):
        optimum = closed_form_optimum(toy, closed_form_epsilon)
        row["kl_q_closed_form"] = kl(q, optimum)
        row["kl_p_closed_form"] = kl(toy.enumerate()[1], optimum)
    return row, q


def describe_oracle(base: RunConfig, oracle: OracleLSTM) -> dict[str, Any]:
    """Print and return what an oracle study's runs are measured against: the oracle's sizes, and the
    NLL_oracle of its own samples (as many as the runs' test split, drawn with that split's seed)."""
    syn, n = base.data.synthetic, base.data.synthetic.num_test
    seed = split_seed(base.seed, "test")  # the runs' test split, never a training sample
    own = oracle.nll_per_token(oracle.sample(n, seed))
    print(f"oracle P: {oracle.vocab_size} tokens, length {oracle.length}"
          f"{', weights ' + syn.weights if syn.weights else ', random'}; its own samples' NLL = {own:.4f}")
    return {"weights": syn.weights, "vocab_size": oracle.vocab_size, "length": oracle.length,
            "num_train": syn.num_train, "num_samples": n, "nll_oracle_own_samples": own}


def _oracle_study(recipe: Recipe, base: RunConfig, oracle: OracleLSTM, out: Path) -> OracleStep:
    """Teacher forcing against scheduled sampling annealed to 0 on the oracle LSTM of `base`."""
    info = describe_oracle(base, oracle)
    n, seed = info["num_samples"], split_seed(base.seed, "test")  # the runs' test split
    plan = [("teacher_forcing", {"method": "teacher_forcing", "schedule": None},
             TEACHER_FORCING),
            ("ss_annealed", {"method": "scheduled_sampling",
                             "schedule": _annealed_schedule(base.train.max_steps)},
             _annealed(base.train.max_steps))]
    runs = []
    for i, (name, entry, objective) in enumerate(plan, 1):
        cfg = study_config(merge(recipe, objective), out / "oracle" / name)
        generator, seconds = train_run(cfg)
        metrics = oracle_metrics(generator, oracle.to(generator.input_embeddings.device), n, seed)
        runs.append(OracleRun(name=name, **entry, **metrics, steps=cfg.train.max_steps,
                              seconds=round(seconds, 2), run_dir=str(cfg.output_dir)))
        print(f"[{i}/{len(plan)}] oracle {name:<16} NLL_oracle = {metrics['nll_oracle']:.4f}  "
              f"NLL_test = {metrics['nll_test']:.4f}  ({seconds:.1f} s)")
    return OracleStep(oracle=info, runs=runs)
