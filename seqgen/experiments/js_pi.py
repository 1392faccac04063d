"""The JS_π interpolation, measured.

JS_π[P‖Q] behaves like KL[P‖Q] (maximum likelihood, mass-covering) as π → 0 and like KL[Q‖P]
(mode-seeking) as π → 1. When the model class cannot represent P, the two fits differ, and training by
JS_π over a grid of π should move the fit from one to the other: KL[Q‖P] falls and KL[P‖Q] rises as
π grows. The study measures that in three steps:

1. continuous: one isotropic Gaussian Q fitted to a 2-D mixture of Gaussians P (Theis et al.'s), exactly
   and adversarially, over a log grid of π down to 0.001, where the optimum jumps from the broad
   maximum-likelihood fit to one mode (`seqgen.experiments.gaussians`);
2. sequences: on an enumerable two-token toy P whose x2 nearly follows from x1, a generator too small
   to represent P (an LSTM with two hidden units) is trained by teacher forcing, then by JS_π
   adversarial training at each π, every adversarial run starting from the teacher-forcing model
   (`train.init_from`), with several seeds, once with a learned critic and once with the optimal
   critic D* computed exactly (so the gradient estimator's error shows apart from the critic's). Each fit
   is compared with P exactly (`seqgen.metrics.exact`). Beside them, the same model is fitted by exact
   gradient descent on JS_π itself, summed over the toy's support, with the same optimiser budget: that
   is what the objective asks of this model class, free of the critic's and the estimator's errors;
3. oracle LSTM: teacher forcing, then JS_π adversarial training at a few π from its checkpoint, each
   scored by NLL_oracle (quality) and NLL_test (coverage) and drawn over the quality-coverage curve
   that teacher forcing traces when its sampling temperature is swept (`seqgen.sweep`).

`run_js_pi` writes into its folder: `continuous/` (the Gaussian fits and their figures), one run
folder per training run (`toy/<run>/`, `oracle/<run>/`), `oracle/sweep/`, `results.json`,
`report.md` and the figures `toy_kl_vs_pi.png` and `oracle_nll.png`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqgen.config import RunConfig
from seqgen.data.sources import split_seed, synthetic_distribution
from seqgen.data.synthetic import OracleLSTM, ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments import gaussians
from seqgen.experiments.exact_fit import exact_budget, fit_exact_js_pi
from seqgen.experiments.inconsistency import describe_oracle
from seqgen.experiments.js_pi_report import METHODS, Check, checks, text_table, write
from seqgen.experiments.recipes import QUIET_TRAIN, Recipe, group_overrides, merge, study_config
from seqgen.experiments.report import Row
from seqgen.experiments.runs import study_folder, train_run
from seqgen.experiments.sizes import study_size
from seqgen.metrics.exact import toy_metrics
from seqgen.metrics.oracle import oracle_metrics
from seqgen.metrics.toy_fit import toy_divergences
from seqgen.models.base import Generator

PIS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
"""The class priors of the sequence step at full size (the continuous step has `gaussians.PIS_LOG`)."""
ORACLE_PIS = (0.25, 0.5, 0.75, 0.9)
"""The class priors of the oracle step."""
ALPHAS = (0.5, 0.67, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.25, 1.5, 2.0)
"""Inverse temperatures of teacher forcing's sweep on the oracle (denser near 1, where the JS_π runs
usually land)."""
STUDY_KEYS = ("task", "output_dir", "data.source", "data.synthetic.kind", "tokenizer.kind", "objective.name",
              "objective.pi", "train.init_from")
"""Recipe keys that the study sets for each run itself; an override may not change them."""
ADVERSARIAL = "adversarial."
ORACLE = "oracle."
_TRAIN = QUIET_TRAIN


@dataclass(frozen=True)
class StudySize:
    """How big the study is: the recipes of its runs, before overrides.

    Attributes:
        name: its name in the studies' size vocabulary (`seqgen.experiments.sizes`).
        continuous: the size of the continuous step (`gaussians.StudySize`).
        toy: the toy's teacher-forcing recipe (nested dict of `RunConfig` keys).
        toy_adversarial: what the toy's JS_π runs change in `toy` (the objective and training); the
            exact JS_π fits take the same optimiser, learning rate, schedule and number of steps.
        pis: the toy's class priors when the caller gives none.
        seeds: run seeds of the toy's JS_π runs (each π is trained once per seed and per critic).
        oracle: the oracle's teacher-forcing recipe; its test split (`data.synthetic.num_test`
            sequences) gives NLL_test, and as many model samples give NLL_oracle.
        oracle_adversarial: what the oracle's JS_π runs change in `oracle`.
    """

    name: str
    continuous: gaussians.StudySize
    toy: Recipe
    toy_adversarial: Recipe
    pis: tuple[float, ...]
    seeds: tuple[int, ...]
    oracle: Recipe
    oracle_adversarial: Recipe


def _toy_recipe(num_train: int, steps: int, lr: float) -> dict[str, Any]:
    # Six symbols, and x2 nearly a function of x1 (P(x2 | x1) > 0.9 for most x1): a fit that cannot
    # tell the six x1 apart must either spread mass over pairs P never produces or drop some of them.
    return {"task": "lm", "seed": 0,
            "data": {"source": "toy", "batch_size": 256,
                     "synthetic": {"kind": "joint", "length": 2, "vocab_size": 6, "concentration": 0.1,
                                   "seed": 3, "num_train": num_train, "num_validation": 0, "num_test": 0}},
            "tokenizer": {"kind": "fixed"},
            # two hidden units carry x1 and the position: too few to represent P
            "model": {"family": "rnn", "cell": "lstm", "embedding_dim": 2, "hidden_dim": 2,
                      "tie_embeddings": False},
            "train": {**_TRAIN, "max_steps": steps, "lr": lr, "lr_schedule": "linear",
                      "warmup_steps": steps // 20, "log_every": max(1, steps // 10)}}


def _adversarial(steps: int, lr: float, critic_dim: int, critic_lr: float, critic_steps: int,
                 baseline: str = "none", batch_size: int | None = None, warmup: int = 0) -> dict[str, Any]:
    # The score-function estimator: unbiased at the optimal critic at every π, where straight-through
    # Gumbel-softmax is not (`seqgen experiment estimators`). On the toy, no baseline has the least
    # variance at D* (sequences outside P's support have a zero reward and the largest scores); on
    # longer sequences the leave-one-out batch baseline.
    recipe = {"objective": {"name": "adversarial",
                            "critic": {"kind": "cnn", "embedding_dim": critic_dim, "hidden_dim": 2 * critic_dim},
                            "critic_lr": critic_lr, "critic_steps": critic_steps, "critic_warmup_steps": warmup,
                            "generator_loss": "minimax", "estimator": "reinforce", "baseline": baseline,
                            "tau_schedule": "constant", "tau": 1.0},
              "train": {"max_steps": steps, "lr": lr, "lr_schedule": "linear", "warmup_steps": 0,
                        # the critic's JS_π estimate is read from the last tenth of the steps
                        "log_every": max(1, steps // 10)}}
    if batch_size is not None:
        recipe["data"] = {"batch_size": batch_size}
    return recipe


def _oracle_recipe(vocab_size: int, length: int, num_train: int, num_test: int, steps: int) -> dict[str, Any]:
    return {"task": "lm", "seed": 0,
            "data": {"source": "oracle", "batch_size": 64,
                     "synthetic": {"vocab_size": vocab_size, "length": length, "hidden_dim": 32, "seed": 7,
                                   "num_train": num_train, "num_validation": 0, "num_test": num_test}},
            "tokenizer": {"kind": "fixed"},
            "model": {"family": "rnn", "cell": "lstm", "embedding_dim": 32, "hidden_dim": 32},
            "train": {**_TRAIN, "max_steps": steps, "lr": 0.01, "lr_schedule": "linear",
                      "warmup_steps": steps // 20, "log_every": max(1, steps // 10)}}


SIZES = {
    # The oracle as inconsistency's full size: SeqGAN's (length 20, sizes 32, 10,000 sequences) with
    # 100 tokens; oracle.data.synthetic.weights=PATH.npz loads SeqGAN's own 5000-token weights.
    "full": StudySize("full", continuous=gaussians.SIZES["full"], toy=_toy_recipe(20_000, 3000, 0.03),
                      toy_adversarial=_adversarial(1000, 0.01, 32, 0.01, 2, warmup=200), pis=PIS,
                      seeds=(0, 1, 2),
                      oracle=_oracle_recipe(100, 20, 10_000, 5_000, 3000),
                      oracle_adversarial=_adversarial(1000, 0.0001, 64, 0.001, 1, "batch", warmup=200)),
    # `seqgen demo` runs the continuous and sequence steps
    "demo": StudySize("demo", continuous=gaussians.SIZES["demo"], toy=_toy_recipe(20_000, 2000, 0.03),
                      toy_adversarial=_adversarial(300, 0.01, 16, 0.01, 2, batch_size=256, warmup=100),
                      pis=(0.05, 0.25, 0.5, 0.75, 0.95), seeds=(0, 1, 2),
                      oracle=_oracle_recipe(30, 10, 5_000, 2_000, 300),
                      oracle_adversarial=_adversarial(200, 0.0001, 32, 0.001, 1, "batch")),
    # tests: seconds per run
    "tiny": StudySize("tiny", continuous=gaussians.SIZES["tiny"], toy=_toy_recipe(2_000, 200, 0.03),
                      toy_adversarial=_adversarial(40, 0.01, 8, 0.01, 1, batch_size=64), pis=(0.1, 0.5, 0.9),
                      seeds=(0,),
                      oracle=_oracle_recipe(20, 6, 500, 200, 30),
                      oracle_adversarial=_adversarial(10, 0.0001, 8, 0.001, 1, "batch")),
}


@dataclass
class ToyRun(Row):
    """One fit of the toy (see `run_js_pi` for the runs and `seqgen.metrics.toy_fit` for the divergences;
    Q is the model conditioned on the toy's support)."""

    name: str
    method: str
    """"teacher_forcing", "adversarial" (learned critic), "adversarial_optimal" (D*) or "exact"."""
    pi: float | None
    seed: int | None
    """The run seed of a JS_π run; None for teacher forcing and the exact fits."""
    kl_p_q: float
    kl_q_p: float
    js_pi: float | None
    """JS_π at the run's π and its two scalings below; None for teacher forcing."""
    js_pi_over_pi: float | None
    js_pi_over_1mpi: float | None
    entropy_q: float
    tv_p_q: float
    q_mass_outside: float
    js_pi_start: float | None
    """JS_π of the teacher-forcing model at the run's π, where the run's objective started."""
    critic_js_pi: float | None
    """A learned critic's JS_π estimate V_π + H(π) over the last logged tenth of training."""
    steps: int
    seconds: float
    run_dir: str | None
    critic_error: float | None = None
    """Learned critics (same window): the Q-weighted |logit D - logit D*|; adversarial runs only."""
    critic_gradient_cosine: float | None = None
    """Learned critics: the cosine of the gradient the critic implies with ∇JS_π; adversarial runs only."""

    def absent(self) -> tuple[str, ...]:
        return () if self.method in ("adversarial", "adversarial_optimal") else ("critic_error",
                                                                                 "critic_gradient_cosine")


@dataclass
class ToyStep(Row):
    """The sequence step: the toy, its runs and how each KL moved with π."""

    toy: dict[str, Any]
    """The toy, the generator, the estimator and critic, and the optimiser budget of every fit."""
    runs: list[ToyRun]
    spearman: dict[str, dict[str, dict[str, float]]]
    """Spearman's ρ of each KL against π per method and seed ("-" for the exact fits)."""
    spearman_summary: dict[str, dict[str, dict[str, float]]]
    """Per method and KL: the "min", "mean" and "max" of ρ over seeds."""


@dataclass
class OracleRun(Row):
    """One run of the oracle step, scored by NLL_oracle (quality) and NLL_test (coverage)."""

    name: str
    method: str
    """"teacher_forcing" or "adversarial"."""
    pi: float | None
    nll_oracle: float
    nll_test: float
    steps: int
    seconds: float
    run_dir: str
    nll_test_tf_curve: float | None = None
    """NLL_test of teacher forcing's temperature curve at the run's NLL_oracle (linear interpolation);
    None outside the curve and for teacher forcing."""
    distance_to_tf_curve: float | None = None
    """nll_test minus that: below zero, the run is below the curve."""


@dataclass
class OracleStep(Row):
    """The oracle step: the oracle, its runs, and teacher forcing's temperature curve."""

    oracle: dict[str, Any]
    runs: list[OracleRun]
    sweep: list[dict[str, float]]
    """`seqgen.sweep.sweep`'s "alpha", "nll_oracle", "nll_test", one per α of `ALPHAS`."""


@dataclass
class JsPiResult:
    """What `run_js_pi` measured (the content of results.json) and where it wrote it.

    Attributes:
        continuous: `gaussians.run_gaussians`' result; None if skipped.
        toy: the sequence step (see `run_js_pi`); None if skipped.
        oracle: the oracle step (see `run_js_pi`); None if skipped.
        checks: the expected outcomes.
        files: `results`, `report` and the figures, by name.
    """

    continuous: gaussians.GaussiansResult | None
    toy: ToyStep | None
    oracle: OracleStep | None
    checks: list[Check]
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        """The study's numbers as plain-text tables."""
        return text_table(self)


# ---------------------------------------------------------------------------------------------------
# The study


def run_js_pi(out_dir: str | Path, overrides: Sequence[str] = (), *, size: str | StudySize = "full",
              pis: Sequence[float] | None = None, continuous_pis: Sequence[float] | None = None,
              oracle_pis: Sequence[float] = ORACLE_PIS, continuous: bool = True, toy: bool = True,
              oracle: bool = True, overwrite: bool = False) -> JsPiResult:
    """Run the study's steps; write results.json, report.md and the figures.

    Toy runs (`JsPiResult.toy.runs`, `ToyRun`s in this order): `teacher_forcing`; for each seed of the
    size and each π of `pis`, `js_pi{π}_seed{s}` (JS_π adversarial training from the teacher-forcing
    model with a learned critic, method "adversarial") and `js_pi{π}_optimal_seed{s}` (the same with the
    optimal critic D*, method "adversarial_optimal"); then `exact_pi{π}` (exact JS_π descent from it with
    the same optimiser budget, see `fit_exact_js_pi`). `toy.spearman` holds Spearman's ρ of each KL
    against π per method and seed (`{"adversarial": {"0": {"kl_p_q": ..., "kl_q_p": ...}, ...},
    "exact": {"-": ...}}`) and `toy.spearman_summary` their minimum, mean and maximum over seeds.

    Oracle runs (`oracle.runs`, `OracleRun`s): `teacher_forcing`, then `js_pi{π}` for each π of
    `oracle_pis`; `oracle.sweep` is teacher forcing's temperature curve (one point per α of ALPHAS).

    Args:
        out_dir: the study's folder.
        overrides: `key=value` recipe overrides: of every toy run; `adversarial.key=value` of the toy's
            JS_π runs only (e.g. `adversarial.train.lr=0.003`,
            `adversarial.objective.critic.kind=rnn`); `oracle.key=value` of every oracle run and
            `oracle.adversarial.key=value` of its JS_π runs (e.g. `oracle.data.synthetic.weights=PATH.npz`).
            The keys of `STUDY_KEYS` are the study's own.
        size: a `StudySize`, or its name: "full", "demo" or "tiny" (`SIZES`): the recipes before overrides.
        pis: the class priors of the toy step, each in (0, 1), at least two (default: the size's).
        continuous_pis: the class priors of the continuous step (default: `gaussians.PIS_LOG`, a log
            grid, where the optimum changes character at small π).
        oracle_pis: the class priors of the oracle step, each in (0, 1).
        continuous: run the continuous step (`gaussians.run_gaussians` into `continuous/`).
        toy: run the sequence step on the enumerable toy.
        oracle: run the oracle step.
        overwrite: replace what `out_dir` holds (otherwise a folder that is not empty is an error).

    Raises:
        UserError: an unknown size, a bad π or override, no step to run, a folder that already holds
            something, or any error of the runs' recipes.
    """
    spec = study_size(SIZES, size)
    if not (continuous or toy or oracle):
        raise UserError("every step of the study is switched off; nothing to run")
    pis = _check_pis(spec.pis if pis is None else pis, "pis")
    continuous_pis = _check_pis(gaussians.PIS_LOG if continuous_pis is None else continuous_pis, "continuous pis")
    oracle_pis = _check_pis(oracle_pis, "oracle pis")
    for grid, used in ((pis, toy), (continuous_pis, continuous)):
        if used and len(grid) < 2:
            raise UserError(f"the study needs at least two values of pi to show a trend, got {grid}")
    out = study_folder(out_dir, overwrite)
    groups = group_overrides(overrides, [ADVERSARIAL, ORACLE, ORACLE + ADVERSARIAL], STUDY_KEYS)
    if (groups[ORACLE] or groups[ORACLE + ADVERSARIAL]) and not oracle:
        raise UserError("oracle.* overrides were given but the oracle step is skipped")
    if (groups[""] or groups[ADVERSARIAL]) and not toy:
        raise UserError("toy overrides were given but the sequence step is skipped")

    if oracle and not oracle_pis:
        raise UserError("the oracle step needs at least one value of pi")

    # Every recipe, and the toy and the oracle they name, is checked before the first run starts.
    toy_plan = oracle_plan = toy_p = oracle_p = None
    if toy:
        toy_plan = _Plan(spec.toy, spec.toy_adversarial, groups[""], groups[ADVERSARIAL], out / "toy")
        toy_p = synthetic_distribution(toy_plan.config(None).data)  # a joint table
        for optimal in (False, True):
            toy_plan.config(pis[0], spec.seeds[0], optimal)
    if oracle:
        oracle_plan = _Plan(spec.oracle, spec.oracle_adversarial, groups[ORACLE], groups[ORACLE + ADVERSARIAL],
                            out / "oracle")
        oracle_data = oracle_plan.config(None).data
        if oracle_data.synthetic.num_test < 1:
            raise UserError("oracle.data.synthetic.num_test must be at least 1: the test split gives "
                            "NLL_test")
        oracle_p = synthetic_distribution(oracle_data)
        oracle_plan.config(oracle_pis[0])
    out.mkdir(parents=True, exist_ok=True)

    continuous_result = None
    if continuous:
        print(f"continuous: one Gaussian fitted to a 2-D mixture by JS_π at π = {_grid(continuous_pis)}")
        started = time.perf_counter()
        continuous_result = gaussians.run_gaussians(out / "continuous", continuous_pis, spec.continuous)
        rho = continuous_result.spearman
        print(f"  ρ(KL[Q‖P], π): exact {rho['exact']['kl_q_p']:+.2f}, adversarial "
              f"{rho['adversarial']['kl_q_p']:+.2f}  ({time.perf_counter() - started:.1f} s)")
    toy_result = _toy_study(toy_plan, toy_p, pis, spec) if toy else None
    oracle_result = _oracle_study(oracle_plan, oracle_p, oracle_pis) if oracle else None
    result = JsPiResult(continuous=continuous_result, toy=toy_result, oracle=oracle_result,
                        checks=checks(continuous_result, toy_result))
    result.files = write(result, out)
    return result


def _check_pis(pis: Sequence[float], name: str) -> list[float]:
    values = sorted(dict.fromkeys(float(pi) for pi in pis))
    for pi in values:
        if not 0 < pi < 1:
            raise UserError(f"the class prior pi must be in (0, 1), got {pi:g} in {name}")
    return values


def _grid(pis: Sequence[float]) -> str:
    return ", ".join(f"{pi:g}" for pi in pis)


class _Plan:
    """The recipes of one step's runs: teacher forcing, and JS_π at a given π from its model.

    Args:
        recipe: the teacher-forcing recipe.
        adversarial: what the JS_π runs change in it.
        overrides: the user's overrides of every run (a nested recipe).
        adversarial_overrides: the user's overrides of the JS_π runs.
        folder: the step's folder; each run gets a folder inside.
    """

    def __init__(self, recipe: Recipe, adversarial: Recipe, overrides: Recipe, adversarial_overrides: Recipe,
                 folder: Path) -> None:
        self.recipe, self.adversarial = recipe, adversarial
        self.overrides, self.adversarial_overrides = overrides, adversarial_overrides
        self.folder = folder
        self.teacher = folder / "teacher_forcing"

    def config(self, pi: float | None, seed: int | None = None, optimal: bool = False) -> RunConfig:
        """The teacher-forcing run's config (pi None) or the JS_π run's at `pi` (with run seed `seed` when
        given, and the optimal critic when `optimal`), checked as `seqgen train` would check it."""
        if pi is None:
            return study_config(merge(self.recipe, self.overrides), self.teacher)
        study: Recipe = {"objective": {"pi": pi}, "train": {"init_from": str(self.teacher)}}
        if seed is not None:
            study["seed"] = seed
        if optimal:
            study["objective"]["critic"] = {"kind": "oracle"}
        recipe = merge(self.recipe, self.adversarial, self.overrides, self.adversarial_overrides, study)
        return study_config(recipe, self.folder / _run_name(pi, seed, optimal))


def _run_name(pi: float, seed: int | None = None, optimal: bool = False) -> str:
    """js_pi{π}, with _optimal for the optimal critic and _seed{s} when runs differ by seed."""
    return f"js_pi{pi:g}" + ("_optimal" if optimal else "") + ("" if seed is None else f"_seed{seed}")


def _toy_study(plan: _Plan, toy: ToyDistribution, pis: list[float], spec: StudySize) -> ToyStep:
    """Teacher forcing, then at each π JS_π adversarial training (learned and optimal critic, each seed)
    and exact JS_π descent with the same optimiser budget, on the toy."""
    base = plan.config(None)
    syn = base.data.synthetic
    adversarial = plan.config(pis[0], spec.seeds[0])
    info = {"kind": toy.kind, "vocab_size": toy.vocab_size, "length": toy.max_length,
            "concentration": syn.concentration, "seed": syn.seed, "num_train": syn.num_train,
            "entropy_p": toy.entropy(), "multi_information_p": toy.multi_information(),
            "model": f"{base.model.cell.upper()}, embedding {base.model.embedding_dim}, hidden "
                     f"{base.model.hidden_dim}", "seeds": list(spec.seeds),
            "estimator": adversarial.objective.estimator,
            "critic": adversarial.objective.critic.kind, "budget": exact_budget(adversarial)}
    print(f"sequences: toy P with {toy.vocab_size} symbols, length {toy.max_length}, H(P) = "
          f"{info['entropy_p']:.4f} nats; generator: {info['model']}; estimator: {info['estimator']}")
    teacher, seconds = train_run(base)
    # every fit starts from teacher forcing: its own JS_π at each π is where each fit's objective starts
    start = toy_metrics(teacher, toy, pis)
    runs = [ToyRun(name="teacher_forcing", method="teacher_forcing", pi=None, seed=None,
                   **measure_toy(teacher, toy, None), js_pi_start=None, critic_js_pi=None,
                   steps=base.train.max_steps, seconds=round(seconds, 2), run_dir=str(base.output_dir))]
    total = 1 + (2 * len(spec.seeds) + 1) * len(pis)
    print(f"[1/{total}] teacher forcing                  {_kls(runs[-1])}  ({seconds:.1f} s)")
    for optimal in (False, True):
        for seed in spec.seeds:
            for pi in pis:
                cfg = plan.config(pi, seed, optimal)
                generator, seconds = train_run(cfg)
                runs.append(ToyRun(name=_run_name(pi, seed, optimal), pi=pi, seed=seed,
                                   method="adversarial_optimal" if optimal else "adversarial",
                                   **measure_toy(generator, toy, pi), js_pi_start=start[f"js_pi{pi:g}"],
                                   **_critic_logs(Path(cfg.output_dir), optimal), steps=cfg.train.max_steps,
                                   seconds=round(seconds, 2), run_dir=str(cfg.output_dir)))
                print(f"[{len(runs)}/{total}] JS_π {'D*' if optimal else 'learned critic'}, seed {seed}, "
                      f"π = {pi:<4g} {_kls(runs[-1])}  ({seconds:.1f} s)")
    for pi in pis:
        started = time.perf_counter()
        fitted = fit_exact_js_pi(teacher, toy, pi, **exact_budget(plan.config(pi, spec.seeds[0])))
        seconds = time.perf_counter() - started
        runs.append(ToyRun(name=f"exact_pi{pi:g}", method="exact", pi=pi, seed=None,
                           **measure_toy(fitted, toy, pi), js_pi_start=start[f"js_pi{pi:g}"], critic_js_pi=None,
                           steps=info["budget"]["steps"], seconds=round(seconds, 2), run_dir=None))
        print(f"[{len(runs)}/{total}] exact JS_π, π = {pi:<4g}             {_kls(runs[-1])}  ({seconds:.1f} s)")
    spearman = {method: {("-" if seed is None else str(seed)): {
        kl: gaussians.spearman(pis, [getattr(r, kl) for r in runs if r.method == method and r.seed == seed])
        for kl in ("kl_p_q", "kl_q_p")} for seed in dict.fromkeys(r.seed for r in runs if r.method == method)}
        for method in METHODS}
    summary = {method: {kl: {"min": min(v[kl] for v in by_seed.values()), "max": max(v[kl] for v in by_seed.values()),
                             "mean": sum(v[kl] for v in by_seed.values()) / len(by_seed)}
                        for kl in ("kl_p_q", "kl_q_p")} for method, by_seed in spearman.items()}
    return ToyStep(toy=info, runs=runs, spearman=spearman, spearman_summary=summary)


def _kls(row: ToyRun) -> str:
    return f"KL[P‖Q] = {row.kl_p_q:.4f}  KL[Q‖P] = {row.kl_q_p:.4f}"


def measure_toy(generator: Generator, toy: ToyDistribution, pi: float | None) -> dict[str, Any]:
    """The exact divergences of the run's Q (conditioned on the toy's support) from P
    (`seqgen.metrics.toy_fit.toy_divergences`)."""
    return toy_divergences(generator, toy, pi)


def _critic_logs(run_dir: Path, optimal: bool) -> dict[str, float | None]:
    """A learned critic's JS_π estimate, error against D* and implied-gradient cosine, averaged over the
    last logged window of training (logs/metrics.jsonl); None for the optimal critic."""
    keys = {"critic_js_pi": "critic/js_pi", "critic_error": "train/critic_error",
            "critic_gradient_cosine": "train/critic_gradient_cosine"}
    values: dict[str, float | None] = dict.fromkeys(keys)
    if optimal:
        return values
    with open(run_dir / "logs" / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            values = {name: record.get(key, values[name]) for name, key in keys.items()}
    return values


def _oracle_study(plan: _Plan, oracle: OracleLSTM, pis: list[float]) -> OracleStep:
    """Teacher forcing, its temperature sweep, and JS_π adversarial training from it on the oracle LSTM."""
    from seqgen.sweep import sweep

    base = plan.config(None)
    info = describe_oracle(base, oracle)
    n, seed = info["num_samples"], split_seed(base.seed, "test")  # the runs' test split
    total = 1 + len(pis)
    runs = []
    for i, pi in enumerate([None, *pis], 1):
        cfg = plan.config(pi)
        generator, seconds = train_run(cfg)
        metrics = oracle_metrics(generator, oracle.to(generator.input_embeddings.device), n, seed)
        runs.append(OracleRun(name="teacher_forcing" if pi is None else _run_name(pi),
                              method="teacher_forcing" if pi is None else "adversarial", pi=pi, **metrics,
                              steps=cfg.train.max_steps, seconds=round(seconds, 2), run_dir=str(cfg.output_dir)))
        print(f"[{i}/{total}] oracle {runs[-1].name:<16} NLL_oracle = {metrics['nll_oracle']:.4f}  "
              f"NLL_test = {metrics['nll_test']:.4f}  ({seconds:.1f} s)")
    # The same samples and test split as the runs' own figures, so that α = 1 is teacher forcing's point.
    curve = sweep([plan.teacher], ALPHAS, plan.folder / "sweep", num_samples=n, seed=seed, overwrite=True)
    curve = [{k: r[k] for k in ("alpha", "nll_oracle", "nll_test")} for r in curve]
    for r in runs:
        r.nll_test_tf_curve = _on_curve(curve, r.nll_oracle) if r.pi is not None else None
        # below zero: the run covers P better than teacher forcing tempered to the same quality
        r.distance_to_tf_curve = None if r.nll_test_tf_curve is None else r.nll_test - r.nll_test_tf_curve
    return OracleStep(oracle=info, runs=runs, sweep=curve)


def _on_curve(curve: list[dict[str, float]], nll_oracle: float) -> float | None:
    """NLL_test of the curve at `nll_oracle`, by linear interpolation; None outside the curve."""
    points = sorted((r["nll_oracle"], r["nll_test"]) for r in curve)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= nll_oracle <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (nll_oracle - x0) / (x1 - x0)
    return None
