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

import copy
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import get_scheduler

from seqgen.config import RunConfig, load_config
from seqgen.data.sources import split_seed
from seqgen.data.synthetic import OracleLSTM, ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments import gaussians
from seqgen.experiments.inconsistency import describe_oracle
from seqgen.experiments.plots import plot_kl_against_pi, plot_oracle_tradeoff
from seqgen.experiments.runs import as_overrides, study_folder, train_run
from seqgen.experiments.tables import aligned, markdown_table
from seqgen.metrics.exact import js_pi_with_leak, support_log_probs, toy_metrics
from seqgen.metrics.oracle import oracle_metrics
from seqgen.models.base import Generator

PIS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
"""The class priors of the sequence step at full size (the continuous step has `gaussians.PIS_LOG`)."""
ORACLE_PIS = (0.25, 0.5, 0.75, 0.9)
"""The class priors of the oracle step."""
ALPHAS = (0.5, 0.67, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.25, 1.5, 2.0)
"""Inverse temperatures of teacher forcing's sweep on the oracle (denser near 1, where the JS_π runs
usually land)."""
STUDY_KEYS = ("task", "output_dir", "data.source", "data.synthetic.kind", "tokenizer.kind", "objective.name",
              "objective.adversarial.pi", "train.init_from")
"""Recipe keys that the study sets for each run itself; an override may not change them."""
ADVERSARIAL = "adversarial."
ORACLE = "oracle."

_TRAIN = {"eval_every": 10**9, "save_every": 10**9, "keep_last": 1, "num_samples": 0, "tensorboard": False}
"""Training settings common to every run: no evaluation or checkpoint but the final one."""


@dataclass(frozen=True)
class StudySize:
    """How big the study is: the recipes of its runs, before overrides.

    Attributes:
        continuous: the size of the continuous step (`gaussians.SIZES`).
        toy: the toy's teacher-forcing recipe (nested dict of `RunConfig` keys).
        toy_adversarial: what the toy's JS_π runs change in `toy` (the objective and training); the
            exact JS_π fits take the same optimiser, learning rate, schedule and number of steps.
        pis: the toy's class priors when the caller gives none.
        seeds: run seeds of the toy's JS_π runs (each π is trained once per seed and per critic).
        oracle: the oracle's teacher-forcing recipe; its test split (`data.synthetic.num_test`
            sequences) gives NLL_test, and as many model samples give NLL_oracle.
        oracle_adversarial: what the oracle's JS_π runs change in `oracle`.
    """

    continuous: str
    toy: dict[str, Any]
    toy_adversarial: dict[str, Any]
    pis: tuple[float, ...]
    seeds: tuple[int, ...]
    oracle: dict[str, Any]
    oracle_adversarial: dict[str, Any]


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
                            "adversarial": {"critic": "cnn", "critic_embedding_dim": critic_dim,
                                            "critic_hidden_dim": 2 * critic_dim, "critic_lr": critic_lr,
                                            "critic_steps": critic_steps, "critic_warmup_steps": warmup,
                                            "generator_loss": "minimax", "estimator": "reinforce",
                                            "baseline": baseline, "temperature": "constant", "tau": 1.0}},
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
    "full": StudySize(continuous="full", toy=_toy_recipe(20_000, 3000, 0.03),
                      toy_adversarial=_adversarial(1000, 0.01, 32, 0.01, 2, warmup=200), pis=PIS,
                      seeds=(0, 1, 2),
                      oracle=_oracle_recipe(100, 20, 10_000, 5_000, 3000),
                      oracle_adversarial=_adversarial(1000, 0.0001, 64, 0.001, 1, "batch", warmup=200)),
    # `seqgen demo` runs the continuous and sequence steps
    "demo": StudySize(continuous="demo", toy=_toy_recipe(20_000, 2000, 0.03),
                      toy_adversarial=_adversarial(300, 0.01, 16, 0.01, 2, batch_size=256, warmup=100),
                      pis=(0.05, 0.25, 0.5, 0.75, 0.95), seeds=(0, 1, 2),
                      oracle=_oracle_recipe(30, 10, 5_000, 2_000, 300),
                      oracle_adversarial=_adversarial(200, 0.0001, 32, 0.001, 1, "batch")),
    # tests: seconds per run
    "tiny": StudySize(continuous="tiny", toy=_toy_recipe(2_000, 200, 0.03),
                      toy_adversarial=_adversarial(40, 0.01, 8, 0.01, 1, batch_size=64), pis=(0.1, 0.5, 0.9),
                      seeds=(0,),
                      oracle=_oracle_recipe(20, 6, 500, 200, 30),
                      oracle_adversarial=_adversarial(10, 0.0001, 8, 0.001, 1, "batch")),
}


@dataclass
class JsPiResult:
    """What `run_js_pi` measured (the content of results.json) and where it wrote it.

    Attributes:
        continuous: `gaussians.run_gaussians`' result; None if skipped.
        toy: `{"toy": ..., "runs": [...], "spearman": ...}` (see `run_js_pi`); None if skipped.
        oracle: `{"oracle": ..., "runs": [...], "sweep": [...]}` (see `run_js_pi`); None if skipped.
        checks: the expected outcomes, each `{"step", "method", "claim", "value", "passed"}`.
        files: `results`, `report` and the figures, by name.
    """

    continuous: dict[str, Any] | None
    toy: dict[str, Any] | None
    oracle: dict[str, Any] | None
    checks: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        """The study's numbers as plain-text tables."""
        return _text_table(self)


# ---------------------------------------------------------------------------------------------------
# The exact JS_π fit on an enumerable toy


def fit_exact_js_pi(generator: Generator, toy: ToyDistribution, pi: float, steps: int, lr: float, *,
                    schedule: str = "constant", warmup_steps: int = 0, betas: Sequence[float] = (0.9, 0.999),
                    weight_decay: float = 0.0) -> Generator:
    """Minimise the exact JS_π[P‖Q] (`js_pi_with_leak`) over a copy of `generator`'s parameters by AdamW.

    Every step scores the whole support in one forward pass, so the gradient is exact: no critic, no
    sampled rollouts. The optimiser and schedule are the training loop's, so that a fit given a run's
    `train` settings (`exact_budget`) has the run's budget.

    Args:
        generator: the starting point (not modified), a language model over the toy's fixed vocabulary.
        toy: a fixed-length toy P.
        pi: the class prior π in (0, 1).
        steps: optimiser steps.
        lr: the peak learning rate.
        schedule: a `train.lr_schedule` name (constant, linear, cosine, inverse_sqrt).
        warmup_steps: steps of linear warm-up.
        betas, weight_decay: AdamW's.

    Returns:
        The fitted copy, in eval mode.
    """
    from seqgen.train import SCHEDULES

    _check_pis([pi], "pi")
    model = copy.deepcopy(generator).eval()  # eval: no dropout, so the objective is deterministic
    model.requires_grad_(True)
    p = toy.enumerate()[1]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    scheduler = get_scheduler(SCHEDULES[schedule], optimizer, num_warmup_steps=warmup_steps,
                              num_training_steps=steps)
    for _ in range(steps):
        optimizer.zero_grad()
        js_pi_with_leak(p, support_log_probs(model, toy), pi).backward()
        optimizer.step()
        scheduler.step()
    return model.requires_grad_(False)


def exact_budget(cfg: RunConfig) -> dict[str, Any]:
    """`fit_exact_js_pi`'s optimiser settings equal to a run's: steps, learning rate, schedule, AdamW's."""
    t = cfg.train
    return {"steps": t.max_steps, "lr": t.lr, "schedule": t.lr_schedule, "warmup_steps": t.warmup_steps,
            "betas": t.betas, "weight_decay": t.weight_decay}


# ---------------------------------------------------------------------------------------------------
# The study


def run_js_pi(out_dir: str | Path, overrides: Sequence[str] = (), *, size: str = "full",
              pis: Sequence[float] | None = None, continuous_pis: Sequence[float] | None = None,
              oracle_pis: Sequence[float] = ORACLE_PIS, continuous: bool = True, toy: bool = True,
              oracle: bool = True, overwrite: bool = False) -> JsPiResult:
    """Run the study's steps; write results.json, report.md and the figures.

    Toy runs (`JsPiResult.toy["runs"]`, in this order): `teacher_forcing`; for each seed of the size and
    each π of `pis`, `js_pi{π}_seed{s}` (JS_π adversarial training from the teacher-forcing model with a
    learned critic, method "adversarial") and `js_pi{π}_optimal_seed{s}` (the same with the optimal
    critic D*, method "adversarial_optimal"); then `exact_pi{π}` (exact JS_π descent from it with the
    same optimiser budget, see `fit_exact_js_pi`). Each entry holds: name, method, pi and seed (None for
    teacher forcing; seed None for exact fits), kl_p_q, kl_q_p, js_pi, js_pi_over_pi, js_pi_over_1mpi (at
    the run's π; None for teacher forcing), js_pi_start (JS_π of the teacher-forcing model at the run's
    π, where the run's objective started), critic_js_pi (learned critics: their JS_π estimate
    V_π + H(π), averaged over the last logged tenth of training), critic_error and
    critic_gradient_cosine (learned critics, same window: Q-weighted |logit D - logit D*| and the
    cosine of the gradient the critic implies with ∇JS_π), entropy_q, tv_p_q, q_mass_outside, steps,
    seconds, run_dir. Q is the model conditioned on the toy's support (see `seqgen.metrics.exact`).
    `toy["spearman"]` holds Spearman's ρ of each KL against π per method and seed
    (`{"adversarial": {"0": {"kl_p_q": ..., "kl_q_p": ...}, ...}, "exact": {"-": ...}}`) and
    `toy["spearman_summary"]` their minimum, mean and maximum over seeds.

    Oracle runs (`oracle["runs"]`): `teacher_forcing`, then `js_pi{π}` for each π of `oracle_pis`, each
    with name, method, pi, nll_oracle, nll_test, nll_test_tf_curve (NLL_test of teacher forcing's
    temperature curve at the run's NLL_oracle, linearly interpolated; None outside the curve),
    distance_to_tf_curve (nll_test minus that: below zero, the run is below the curve), steps, seconds,
    run_dir; `oracle["sweep"]` is that curve (`seqgen.sweep.sweep` rows, one per α of ALPHAS).

    Args:
        out_dir: the study's folder.
        overrides: `key=value` recipe overrides: of every toy run; `adversarial.key=value` of the toy's
            JS_π runs only (e.g. `adversarial.train.lr=0.003`,
            `adversarial.objective.adversarial.critic=rnn`); `oracle.key=value` of every oracle run and
            `oracle.adversarial.key=value` of its JS_π runs (e.g. `oracle.data.synthetic.weights=PATH.npz`).
            The keys of `STUDY_KEYS` are the study's own.
        size: "full", "demo" or "tiny" (`SIZES`): the recipes before overrides.
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
    if size not in SIZES:
        raise UserError(f"unknown study size {size!r}; use one of {', '.join(SIZES)}")
    if not (continuous or toy or oracle):
        raise UserError("every step of the study is switched off; nothing to run")
    spec = SIZES[size]
    pis = _check_pis(spec.pis if pis is None else pis, "pis")
    continuous_pis = _check_pis(gaussians.PIS_LOG if continuous_pis is None else continuous_pis, "continuous pis")
    oracle_pis = _check_pis(oracle_pis, "oracle pis")
    for grid, used in ((pis, toy), (continuous_pis, continuous)):
        if used and len(grid) < 2:
            raise UserError(f"the study needs at least two values of pi to show a trend, got {grid}")
    out = study_folder(out_dir, overwrite)
    groups = _split_overrides(overrides)
    if (groups["oracle"] or groups["oracle_adversarial"]) and not oracle:
        raise UserError("oracle.* overrides were given but the oracle step is skipped")
    if (groups["toy"] or groups["toy_adversarial"]) and not toy:
        raise UserError("toy overrides were given but the sequence step is skipped")

    if oracle and not oracle_pis:
        raise UserError("the oracle step needs at least one value of pi")

    # Every recipe, and the toy and the oracle they name, is checked before the first run starts.
    toy_plan = oracle_plan = toy_p = oracle_p = None
    if toy:
        toy_plan = _Plan(spec.toy, spec.toy_adversarial, groups["toy"], groups["toy_adversarial"],
                         out / "toy")
        toy_p = ToyDistribution.from_config(toy_plan.config(None).data.synthetic)  # a joint table
        for optimal in (False, True):
            toy_plan.config(pis[0], spec.seeds[0], optimal)
    if oracle:
        oracle_plan = _Plan(spec.oracle, spec.oracle_adversarial, groups["oracle"],
                            groups["oracle_adversarial"], out / "oracle")
        syn = oracle_plan.config(None).data.synthetic
        if syn.num_test < 1:
            raise UserError("oracle.data.synthetic.num_test must be at least 1: the test split gives "
                            "NLL_test")
        oracle_p = OracleLSTM.from_config(syn)
        oracle_plan.config(oracle_pis[0])
    out.mkdir(parents=True, exist_ok=True)

    continuous_result = None
    if continuous:
        print(f"continuous: one Gaussian fitted to a 2-D mixture by JS_π at π = {_grid(continuous_pis)}")
        started = time.perf_counter()
        continuous_result = gaussians.run_gaussians(out / "continuous", continuous_pis, spec.continuous)
        rho = continuous_result["spearman"]
        print(f"  ρ(KL[Q‖P], π): exact {rho['exact']['kl_q_p']:+.2f}, adversarial "
              f"{rho['adversarial']['kl_q_p']:+.2f}  ({time.perf_counter() - started:.1f} s)")
    toy_result = _toy_study(toy_plan, toy_p, pis, spec) if toy else None
    oracle_result = _oracle_study(oracle_plan, oracle_p, oracle_pis) if oracle else None
    result = JsPiResult(continuous=continuous_result, toy=toy_result, oracle=oracle_result,
                        checks=_checks(continuous_result, toy_result))
    result.files = _write(result, out)
    return result


def _check_pis(pis: Sequence[float], name: str) -> list[float]:
    values = sorted(dict.fromkeys(float(pi) for pi in pis))
    for pi in values:
        if not 0 < pi < 1:
            raise UserError(f"the class prior pi must be in (0, 1), got {pi:g} in {name}")
    return values


def _grid(pis: Sequence[float]) -> str:
    return ", ".join(f"{pi:g}" for pi in pis)


def _split_overrides(overrides: Sequence[str]) -> dict[str, list[str]]:
    """The overrides by the runs they apply to, their prefixes removed; the study's own keys refused."""
    groups: dict[str, list[str]] = {"toy": [], "toy_adversarial": [], "oracle": [], "oracle_adversarial": []}
    for item in overrides:
        rest, step = (item.removeprefix(ORACLE), "oracle") if item.startswith(ORACLE) else (item, "toy")
        phase = "_adversarial" if rest.startswith(ADVERSARIAL) else ""
        rest = rest.removeprefix(ADVERSARIAL)
        key = rest.partition("=")[0].strip()
        if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in STUDY_KEYS):
            raise UserError(f"{key} is set by the study for each run and cannot be overridden")
        groups[step + phase].append(rest)
    return groups


class _Plan:
    """The recipes of one step's runs: teacher forcing, and JS_π at a given π from its model.

    Args:
        recipe: the teacher-forcing recipe.
        adversarial: what the JS_π runs change in it.
        overrides: the user's overrides of every run.
        adversarial_overrides: the user's overrides of the JS_π runs.
        folder: the step's folder; each run gets a folder inside.
    """

    def __init__(self, recipe: dict[str, Any], adversarial: dict[str, Any], overrides: list[str],
                 adversarial_overrides: list[str], folder: Path) -> None:
        self.recipe, self.adversarial = recipe, adversarial
        self.overrides, self.adversarial_overrides = overrides, adversarial_overrides
        self.folder = folder
        self.teacher = folder / "teacher_forcing"

    def config(self, pi: float | None, seed: int | None = None, optimal: bool = False) -> RunConfig:
        """The teacher-forcing run's config (pi None) or the JS_π run's at `pi` (with run seed `seed` when
        given, and the optimal critic when `optimal`), checked as `seqgen train` would check it."""
        if pi is None:
            return load_study_config(self.recipe, self.teacher, self.overrides)
        study = [f"objective.adversarial.pi={json.dumps(pi)}", f"train.init_from={json.dumps(str(self.teacher))}"]
        study += [] if seed is None else [f"seed={seed}"]
        study += ["objective.adversarial.critic=oracle"] if optimal else []
        return load_study_config(_merged(self.recipe, self.adversarial), self.folder / _run_name(pi, seed, optimal),
                                 [*self.overrides, *self.adversarial_overrides, *study])


def load_study_config(recipe: dict[str, Any], output_dir: Path, overrides: Sequence[str] = ()) -> RunConfig:
    """A study's nested recipe (with `key=value` overrides) as a checked RunConfig writing to `output_dir`."""
    from seqgen.recipes import check_recipe

    cfg = load_config(None, [*as_overrides(recipe), *overrides, f"output_dir={json.dumps(str(output_dir))}"])
    check_recipe(cfg)
    return cfg


def _run_name(pi: float, seed: int | None = None, optimal: bool = False) -> str:
    """js_pi{π}, with _optimal for the optimal critic and _seed{s} when runs differ by seed."""
    return f"js_pi{pi:g}" + ("_optimal" if optimal else "") + ("" if seed is None else f"_seed{seed}")


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with the leaves of `changes` replaced, recursively."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


METHODS = ("adversarial", "adversarial_optimal", "exact")
"""The toy's JS_π fits: adversarial with a learned critic, adversarial with the optimal critic, exact descent."""


def _toy_study(plan: _Plan, toy: ToyDistribution, pis: list[float], spec: StudySize) -> dict[str, Any]:
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
            "estimator": adversarial.objective.adversarial.estimator,
            "critic": adversarial.objective.adversarial.critic, "budget": exact_budget(adversarial)}
    print(f"sequences: toy P with {toy.vocab_size} symbols, length {toy.max_length}, H(P) = "
          f"{info['entropy_p']:.4f} nats; generator: {info['model']}; estimator: {info['estimator']}")
    teacher, seconds = train_run(base)
    # every fit starts from teacher forcing: its own JS_π at each π is where each fit's objective starts
    start = toy_metrics(teacher, toy, pis)
    runs = [{"name": "teacher_forcing", "method": "teacher_forcing", "pi": None, "seed": None,
             **measure_toy(teacher, toy, None), "js_pi_start": None, "critic_js_pi": None,
             "steps": base.train.max_steps, "seconds": round(seconds, 2), "run_dir": str(base.output_dir)}]
    total = 1 + (2 * len(spec.seeds) + 1) * len(pis)
    print(f"[1/{total}] teacher forcing                  {_kls(runs[-1])}  ({seconds:.1f} s)")
    for optimal in (False, True):
        for seed in spec.seeds:
            for pi in pis:
                cfg = plan.config(pi, seed, optimal)
                generator, seconds = train_run(cfg)
                runs.append({"name": _run_name(pi, seed, optimal), "pi": pi, "seed": seed,
                             "method": "adversarial_optimal" if optimal else "adversarial",
                             **measure_toy(generator, toy, pi), "js_pi_start": start[f"js_pi{pi:g}"],
                             **_critic_logs(Path(cfg.output_dir), optimal), "steps": cfg.train.max_steps,
                             "seconds": round(seconds, 2), "run_dir": str(cfg.output_dir)})
                print(f"[{len(runs)}/{total}] JS_π {'D*' if optimal else 'learned critic'}, seed {seed}, "
                      f"π = {pi:<4g} {_kls(runs[-1])}  ({seconds:.1f} s)")
    for pi in pis:
        started = time.perf_counter()
        fitted = fit_exact_js_pi(teacher, toy, pi, **exact_budget(plan.config(pi, spec.seeds[0])))
        seconds = time.perf_counter() - started
        runs.append({"name": f"exact_pi{pi:g}", "method": "exact", "pi": pi, "seed": None,
                     **measure_toy(fitted, toy, pi), "js_pi_start": start[f"js_pi{pi:g}"], "critic_js_pi": None,
                     "steps": info["budget"]["steps"], "seconds": round(seconds, 2), "run_dir": None})
        print(f"[{len(runs)}/{total}] exact JS_π, π = {pi:<4g}             {_kls(runs[-1])}  ({seconds:.1f} s)")
    spearman = {method: {("-" if seed is None else str(seed)): {
        kl: gaussians.spearman(pis, [r[kl] for r in runs if r["method"] == method and r["seed"] == seed])
        for kl in ("kl_p_q", "kl_q_p")} for seed in dict.fromkeys(r["seed"] for r in runs if r["method"] == method)}
        for method in METHODS}
    summary = {method: {kl: {"min": min(v[kl] for v in by_seed.values()), "max": max(v[kl] for v in by_seed.values()),
                             "mean": sum(v[kl] for v in by_seed.values()) / len(by_seed)}
                        for kl in ("kl_p_q", "kl_q_p")} for method, by_seed in spearman.items()}
    return {"toy": info, "runs": runs, "spearman": spearman, "spearman_summary": summary}


def _kls(row: dict[str, Any]) -> str:
    return f"KL[P‖Q] = {row['kl_p_q']:.4f}  KL[Q‖P] = {row['kl_q_p']:.4f}"


def measure_toy(generator: Generator, toy: ToyDistribution, pi: float | None) -> dict[str, Any]:
    """The exact divergences of the run's Q (conditioned on the toy's support) from P."""
    metrics = toy_metrics(generator, toy, pis=() if pi is None else (pi,))
    with torch.no_grad():
        log_q = support_log_probs(generator, toy)
    q = (log_q - log_q.logsumexp(0)).exp()
    row = {"kl_p_q": metrics["kl_p_q"], "kl_q_p": metrics["kl_q_p"], "js_pi": None, "js_pi_over_pi": None,
           "js_pi_over_1mpi": None}
    if pi is not None:
        name = f"js_pi{pi:g}"
        row |= {"js_pi": metrics[name], "js_pi_over_pi": metrics[f"{name}_over_pi"],
                "js_pi_over_1mpi": metrics[f"{name}_over_1mpi"]}
    return row | {"entropy_q": float(-torch.xlogy(q, q).sum()), "tv_p_q": metrics["tv_p_q"],
                  "q_mass_outside": metrics["q_mass_outside"]}


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


def _oracle_study(plan: _Plan, oracle: OracleLSTM, pis: list[float]) -> dict[str, Any]:
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
        runs.append({"name": "teacher_forcing" if pi is None else _run_name(pi),
                     "method": "teacher_forcing" if pi is None else "adversarial", "pi": pi, **metrics,
                     "steps": cfg.train.max_steps, "seconds": round(seconds, 2),
                     "run_dir": str(cfg.output_dir)})
        print(f"[{i}/{total}] oracle {runs[-1]['name']:<16} NLL_oracle = {metrics['nll_oracle']:.4f}  "
              f"NLL_test = {metrics['nll_test']:.4f}  ({seconds:.1f} s)")
    # The same samples and test split as the runs' own figures, so that α = 1 is teacher forcing's point.
    curve = sweep([plan.teacher], ALPHAS, plan.folder / "sweep", num_samples=n, seed=seed, overwrite=True)
    curve = [{k: r[k] for k in ("alpha", "nll_oracle", "nll_test")} for r in curve]
    for r in runs:
        r["nll_test_tf_curve"] = _on_curve(curve, r["nll_oracle"]) if r["pi"] is not None else None
        # below zero: the run covers P better than teacher forcing tempered to the same quality
        r["distance_to_tf_curve"] = (None if r["nll_test_tf_curve"] is None
                                     else r["nll_test"] - r["nll_test_tf_curve"])
    return {"oracle": info, "runs": runs, "sweep": curve}


def _on_curve(curve: list[dict[str, float]], nll_oracle: float) -> float | None:
    """NLL_test of the curve at `nll_oracle`, by linear interpolation; None outside the curve."""
    points = sorted((r["nll_oracle"], r["nll_test"]) for r in curve)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= nll_oracle <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (nll_oracle - x0) / (x1 - x0)
    return None


# ---------------------------------------------------------------------------------------------------
# The expected outcomes


SMALL_PI, LARGE_PI = 0.01, 0.25
"""Continuous step: at π <= SMALL_PI the fit should be maximum likelihood's, at π >= LARGE_PI on one mode."""
RHO_TARGET = 0.9
"""How monotone each KL must be in π, per seed: ρ(KL[P‖Q], π) >= 0.9 and ρ(KL[Q‖P], π) <= -0.9."""
EXACT_MATCH = 0.2
"""How close an optimal-critic run's final JS_π must come to the exact fit's at the same budget (relative)."""


def _checks(continuous: dict[str, Any] | None, toy: dict[str, Any] | None) -> list[dict[str, Any]]:
    """As π grows, KL[Q‖P] should fall and KL[P‖Q] rise: Spearman's ρ of each against π, per method (and
    on the toy per seed, to `RHO_TARGET`); the toy's JS_π fits should lower JS_π from the
    teacher-forcing start at every π, and with D* end within `EXACT_MATCH` of exact descent."""
    checks = []
    if continuous is not None:
        ml = continuous["moment_matched"]["kl_p_q"]
        for method in ("exact", "adversarial"):
            rows = [r for r in continuous["fits"] if r["method"] == method]
            low = [r["kl_p_q"] / ml for r in rows if r["pi"] <= SMALL_PI]
            high = [r["kl_p_q"] / ml for r in rows if r["pi"] >= LARGE_PI]
            if low:
                checks.append({"step": "continuous", "method": method, "claim": f"KL[P‖Q] within 5% of maximum "
                               f"likelihood's at π <= {SMALL_PI:g} (largest ratio)", "value": max(low),
                               "passed": max(low) <= 1.05})
            if high:
                checks.append({"step": "continuous", "method": method, "claim": f"on one mode at π >= {LARGE_PI:g}: "
                               "KL[P‖Q] at least twice maximum likelihood's (smallest ratio)", "value": min(high),
                               "passed": min(high) >= 2})
            rho = continuous["spearman"][method]
            checks.append({"step": "continuous", "method": method, "claim": "ρ(KL[Q‖P], π) < 0 (mode-seeking "
                           "grows with π)", "value": rho["kl_q_p"], "passed": rho["kl_q_p"] < 0})
            checks.append({"step": "continuous", "method": method, "claim": "ρ(KL[P‖Q], π) > 0 (coverage falls "
                           "with π)", "value": rho["kl_p_q"], "passed": rho["kl_p_q"] > 0})
    if toy is None:
        return checks
    for method in METHODS:
        by_seed = toy["spearman"][method]
        worst_pq = min(rho["kl_p_q"] for rho in by_seed.values())
        worst_qp = max(rho["kl_q_p"] for rho in by_seed.values())
        every = "in every seed" if method != "exact" else "(deterministic)"
        checks.append({"step": "toy", "method": method, "claim": f"ρ(KL[P‖Q], π) >= {RHO_TARGET} {every}",
                       "value": worst_pq, "passed": worst_pq >= RHO_TARGET})
        checks.append({"step": "toy", "method": method, "claim": f"ρ(KL[Q‖P], π) <= -{RHO_TARGET} {every}",
                       "value": worst_qp, "passed": worst_qp <= -RHO_TARGET})
        rows = [r for r in toy["runs"] if r["method"] == method]
        worst = max(r["js_pi"] - r["js_pi_start"] for r in rows)
        checks.append({"step": "toy", "method": method, "claim": "JS_π lowered from the teacher-forcing start "
                       "at every π (largest change)", "value": worst, "passed": worst < 0})
    exact = {r["pi"]: r["js_pi"] for r in toy["runs"] if r["method"] == "exact"}
    optimal = [r for r in toy["runs"] if r["method"] == "adversarial_optimal"]
    if optimal:
        gap = max(abs(r["js_pi"] - exact[r["pi"]]) / exact[r["pi"]] for r in optimal)
        checks.append({"step": "toy", "method": "adversarial_optimal", "claim": f"final JS_π within "
                       f"{EXACT_MATCH:.0%} of the exact fit's at the same budget (largest relative gap)",
                       "value": gap, "passed": gap <= EXACT_MATCH})
    return checks


# ---------------------------------------------------------------------------------------------------
# Output


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


TOY_COLUMNS = (("kl_p_q", "KL[P‖Q]"), ("kl_q_p", "KL[Q‖P]"), ("js_pi", "JS_π"),
               ("js_pi_start", "JS_π at start"), ("js_pi_over_pi", "JS_π/π"),
               ("js_pi_over_1mpi", "JS_π/(1−π)"), ("critic_js_pi", "critic's JS_π"),
               ("critic_error", "critic error"), ("critic_gradient_cosine", "critic's gradient cos"),
               ("entropy_q", "H(Q)"), ("q_mass_outside", "mass outside"))


def _toy_rows(toy: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every toy run."""
    header = ["run", "π", *(title for _, title in TOY_COLUMNS), "seconds"]
    rows = [[r["name"], "—" if r["pi"] is None else f"{r['pi']:g}", *(_number(r.get(k)) for k, _ in TOY_COLUMNS),
             f"{r['seconds']:.1f}"] for r in toy["runs"]]
    return header, rows


def _spread(values: Sequence[float], digits: int = 4) -> str:
    """The mean of a method's runs over seeds, with their range when there are several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return _number(mean, digits)
    return f"{mean:.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def _toy_summary_rows(toy: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per method and π: each divergence's mean over seeds [min, max]."""
    header = ["method", "π", "KL[P‖Q]", "KL[Q‖P]", "JS_π", "JS_π at start"]
    teacher = toy["runs"][0]
    rows = [["teacher forcing", "—", _number(teacher["kl_p_q"]), _number(teacher["kl_q_p"]), "—", "—"]]
    for method in METHODS:
        for pi in dict.fromkeys(r["pi"] for r in toy["runs"] if r["method"] == method):
            runs = [r for r in toy["runs"] if r["method"] == method and r["pi"] == pi]
            rows.append([method, f"{pi:g}", *(_spread([r[k] for r in runs]) for k in ("kl_p_q", "kl_q_p", "js_pi")),
                         _number(runs[0]["js_pi_start"])])
    return header, rows


def _spearman_rows(spearman: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "ρ(KL[P‖Q], π)", "ρ(KL[Q‖P], π)"]
    return header, [[m, _number(rho["kl_p_q"], 2), _number(rho["kl_q_p"], 2)] for m, rho in spearman.items()]


def _seeds_spearman_rows(toy: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per method: Spearman's ρ of each KL against π, mean over seeds [min, max], and the seeds' values."""
    header = ["method", "ρ(KL[P‖Q], π)", "ρ(KL[Q‖P], π)", "per seed (P‖Q / Q‖P)"]
    rows = []
    for method, by_seed in toy["spearman"].items():
        rows.append([method, *(_spread([rho[kl] for rho in by_seed.values()], 2) for kl in ("kl_p_q", "kl_q_p")),
                     ", ".join(f"{rho['kl_p_q']:+.2f} / {rho['kl_q_p']:+.2f}" for rho in by_seed.values())])
    return header, rows


def _continuous_rows(continuous: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "π", "KL[P‖Q]", "KL[Q‖P]", "JS_π", "critic's JS_π", "scale of Q"]
    rows = [[r["method"], f"{r['pi']:g}", _number(r["kl_p_q"]), _number(r["kl_q_p"]), _number(r["js_pi"]),
             _number(r.get("js_pi_critic")), _number(r["scale"])]
            for r in sorted(continuous["fits"], key=lambda r: (r["method"], r["pi"]))]
    ml = continuous["moment_matched"]
    rows.append(["maximum likelihood", "—", _number(ml["kl_p_q"]), _number(ml["kl_q_p"]), "—", "—",
                 _number(ml["scale"])])
    return header, rows


def _oracle_rows(oracle: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "π", "NLL_oracle", "NLL_test", "TF curve's NLL_test there", "distance to the curve",
              "seconds"]
    rows = [[r["name"], "—" if r["pi"] is None else f"{r['pi']:g}", _number(r["nll_oracle"]),
             _number(r["nll_test"]), _number(r["nll_test_tf_curve"]), _number(r.get("distance_to_tf_curve")),
             f"{r['seconds']:.1f}"] for r in oracle["runs"]]
    rows.append(["oracle itself", "—", _number(oracle["oracle"]["nll_oracle_own_samples"]), "—", "—", "—", "—"])
    return header, rows


def _sweep_rows(oracle: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    return (["α", "NLL_oracle", "NLL_test"],
            [[f"{r['alpha']:g}", _number(r["nll_oracle"]), _number(r["nll_test"])] for r in oracle["sweep"]])


def _text_table(result: JsPiResult) -> str:
    lines = []
    if result.continuous:
        lines += ["continuous: one Gaussian Q fitted to a 2-D mixture P (nats)",
                  *aligned(*_continuous_rows(result.continuous)),
                  *aligned(*_spearman_rows(result.continuous["spearman"])), ""]
    if result.toy:
        info = result.toy["toy"]
        lines += [(f"sequences: toy P ({info['vocab_size']} symbols, length {info['length']}), generator "
                   f"{info['model']}; exact divergences of Q from P (nats)"),
                  *aligned(*_toy_summary_rows(result.toy)), *aligned(*_seeds_spearman_rows(result.toy)), ""]
    if result.oracle:
        info = result.oracle["oracle"]
        lines += [f"oracle LSTM ({info['vocab_size']} tokens, length {info['length']}), nats per token:",
                  *aligned(*_oracle_rows(result.oracle)), ""]
    lines += [f"{'pass' if c['passed'] else 'MISS'}  {c['step']}, {c['method']}: {c['claim']}: "
              f"{c['value']:+.4f}" for c in result.checks]
    return "\n".join(lines).rstrip()


def _write(result: JsPiResult, out: Path) -> dict[str, Path]:
    files = {"results": out / "results.json", "report": out / "report.md"}
    files["results"].write_text(json.dumps({"continuous": result.continuous, "toy": result.toy,
                                            "oracle": result.oracle, "checks": result.checks}, indent=2),
                                encoding="utf-8")
    if result.continuous:
        files["gaussians_fits"] = out / "continuous" / "gaussians_fits.png"
        files["gaussians_kl"] = out / "continuous" / "gaussians_kl.png"
    if result.toy:
        files["toy_kl_vs_pi"] = out / "toy_kl_vs_pi.png"
        teacher = result.toy["runs"][0]
        plot_kl_against_pi(result.toy["runs"], {k: teacher[k] for k in ("kl_p_q", "kl_q_p")},
                           files["toy_kl_vs_pi"])
    if result.oracle:
        files["oracle_nll"] = out / "oracle_nll.png"
        plot_oracle_tradeoff(result.oracle["sweep"], result.oracle["runs"],
                             result.oracle["oracle"]["nll_oracle_own_samples"], files["oracle_nll"])
    files["report"].write_text(_report(result, files, out), encoding="utf-8")
    return files


def _report(result: JsPiResult, files: dict[str, Path], out: Path) -> str:
    lines = ["# The JS_π interpolation, measured", "",
             ("JS_π[P‖Q] = π·KL[P‖M] + (1 − π)·KL[Q‖M] with M = π·P + (1 − π)·Q behaves like KL[P‖Q] "
              "(maximum likelihood) as π → 0 and like KL[Q‖P] as π → 1. Where the model class cannot hold "
              "P, fits by JS_π should move from covering P's mass to seeking its modes as π grows: "
              "KL[Q‖P] falls and KL[P‖Q] rises. All divergences are in nats."), ""]
    if result.continuous:
        c = result.continuous
        lines += ["## 1. Continuous: one Gaussian fitted to a 2-D mixture", "",
                  (f"P: a mixture of {len(c['mixture']['weights'])} isotropic Gaussians "
                   + ("drawn as Theis et al. (2016) draw theirs" if c["mixture"]["kind"] == "theis" else
                      "with random weights, means and scales")
                   + f" (mixture seed {c['mixture']['seed']}); Q: one isotropic Gaussian, fitted by exact JS_π "
                   "(numerical integration, L-BFGS from the maximum-likelihood fit and from every component, "
                   "the best kept) and adversarially (an MLP critic, reparameterised samples of Q, from the "
                   f"maximum-likelihood fit); size `{c['size']}`, adversarial seed {c['seed']} "
                   "(`seqgen.experiments.gaussians`)."), "",
                  markdown_table(*_continuous_rows(c)), "", markdown_table(*_spearman_rows(c["spearman"])), ""]
    if result.toy:
        info = result.toy["toy"]
        budget = info["budget"]
        lines += ["## 2. Sequences: an enumerable toy and a generator too small for it", "",
                  (f"P: a random `{info['kind']}` table over {info['vocab_size']} symbols × length "
                   f"{info['length']} (Dirichlet concentration {info['concentration']:g}, seed "
                   f"{info['seed']}), "
                   f"H(P) = {info['entropy_p']:.4f}, multi-information {info['multi_information_p']:.4f}; "
                   f"{info['num_train']} training samples. Generator: {info['model']}. Teacher forcing "
                   "trains it first. From that model, at each π: JS_π adversarial training with a learned "
                   f"`{info['critic']}` critic (`adversarial`) and with the optimal critic D* computed exactly "
                   f"(`adversarial_optimal`), each with seeds {', '.join(map(str, info['seeds']))}, the "
                   f"`{info['estimator']}` gradient estimator and the minimax generator loss; and exact "
                   "gradient descent on JS_π summed over the support (`exact`: what the objective asks of "
                   "this model class, with no critic and no sampled gradient). All three get the same "
                   f"optimiser budget: AdamW, {budget['steps']} steps, learning rate {budget['lr']:g} "
                   f"({budget['schedule']} schedule). Q is the model conditioned on the support; the "
                   "learned critic's JS_π estimate V_π + H(π), its Q-weighted logit error against D* and "
                   "the cosine of the gradient it implies with ∇JS_π are read from the last logged tenth "
                   "of training."), "",
                  "Means over seeds [min, max]:", "", markdown_table(*_toy_summary_rows(result.toy)), "",
                  markdown_table(*_seeds_spearman_rows(result.toy)), "", "Every run:", "",
                  markdown_table(*_toy_rows(result.toy)), ""]
    if result.oracle:
        info = result.oracle["oracle"]
        source = f"the weights in `{info['weights']}`" if info["weights"] else "random N(0, 1) weights"
        lines += ["## 3. Oracle LSTM", "",
                  (f"Oracle: {info['vocab_size']} tokens, length {info['length']}, {source}; "
                   f"{info['num_train']} training sequences; each figure over {info['num_samples']} "
                   "sequences, nats per token. NLL_oracle = −E_Q log P / T (quality), NLL_test = "
                   "−E_P log Q / T (coverage). The last column is NLL_test of teacher forcing's "
                   "temperature curve (below) at the run's NLL_oracle: a run below it has a better "
                   "quality-coverage trade-off than teacher forcing at some temperature."), "",
                  markdown_table(*_oracle_rows(result.oracle)), "", "Teacher forcing over inverse temperatures α:",
                  "", markdown_table(*_sweep_rows(result.oracle)), ""]
    lines += ["## Reading", "", _reading(result), "", "## Checks", ""]
    lines += [f"- {'pass' if c['passed'] else '**miss**'}: {c['step']}, {c['method']}: {c['claim']}: "
              f"{c['value']:+.4f}" for c in result.checks]
    figures = [path for path in files.values() if path.suffix == ".png"]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{path.stem}]({path.relative_to(out).as_posix()})" for path in figures]
    return "\n".join(lines) + "\n"


def _trend(rho: dict[str, float]) -> str:
    """How a method's two KLs moved with π, from their Spearman ρ."""
    falls, rises = rho["kl_q_p"] < 0, rho["kl_p_q"] > 0
    verdict = ("the expected trend" if falls and rises else
               "half of the expected trend" if falls or rises else "the opposite of the expected trend")
    return (f"{verdict} (ρ(KL[Q‖P], π) = {_number(rho['kl_q_p'], 2)}, "
            f"ρ(KL[P‖Q], π) = {_number(rho['kl_p_q'], 2)})")


def _span(runs: list[dict[str, Any]], key: str) -> str:
    """A KL at the smallest and at the largest π."""
    return f"{runs[0][key]:.4f} at π = {runs[0]['pi']:g} to {runs[-1][key]:.4f} at π = {runs[-1]['pi']:g}"


def _reading(result: JsPiResult) -> str:
    """What the numbers show, step by step; a trend that is missing is said to be missing."""
    parts = []
    if result.continuous:
        rho = result.continuous["spearman"]
        parts.append(f"Continuous: the exact fits show {_trend(rho['exact'])}, the adversarial fits "
                     f"{_trend(rho['adversarial'])}.")
    if result.toy:
        runs, summary = result.toy["runs"], result.toy["spearman_summary"]
        teacher = runs[0]
        parts.append(f"Sequences: teacher forcing ends at KL[P‖Q] = {teacher['kl_p_q']:.4f} and KL[Q‖P] = "
                     f"{teacher['kl_q_p']:.4f}.")
        names = {"exact": "exact JS_π descent", "adversarial": "adversarial training with a learned critic",
                 "adversarial_optimal": "adversarial training with D*"}
        for method in METHODS:
            rows = [r for r in runs if r["method"] == method]
            rho = {kl: summary[method][kl]["mean"] for kl in ("kl_p_q", "kl_q_p")}
            lowered = sum(r["js_pi"] < r["js_pi_start"] for r in rows)
            parts.append(f"From there, {names[method]} shows {_trend(rho)} (mean over seeds; worst seed "
                         f"{summary[method]['kl_p_q']['min']:+.2f} / {summary[method]['kl_q_p']['max']:+.2f}), "
                         f"and lowers JS_π below the teacher-forcing model's in {lowered} of {len(rows)} runs.")
    if result.oracle:
        adversarial = [r for r in result.oracle["runs"] if r["method"] == "adversarial"]
        below = [r for r in adversarial
                 if r["nll_test_tf_curve"] is not None and r["nll_test"] < r["nll_test_tf_curve"]]
        off = [r for r in adversarial if r["nll_test_tf_curve"] is None]
        parts.append(
            f"Oracle: {len(below)} of {len(adversarial)} JS_π runs lie below teacher forcing's temperature "
            "curve (a better quality-coverage trade-off than tempering the teacher-forcing model)"
            + (f" (π = {_grid([r['pi'] for r in below])})" if below else "")
            + (f"; {len(off)} lie outside the curve's range of NLL_oracle" if off else "") + ".")
    misses = [c for c in result.checks if not c["passed"]]
    parts.append("Missed: " + "; ".join(f"{c['step']}, {c['method']} ({c['claim'].split(' (')[0]})"
                                        for c in misses) + "." if misses else "Every expected trend is met.")
    return " ".join(parts)
