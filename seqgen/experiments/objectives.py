"""Which training objective gives the better fit: every objective seqgen has, compared on the enumerable toy.

The JS_π study's toy P (six symbols, length 2, x2 nearly a function of x1) and its generator too small to
represent P (an LSTM with embedding 2 and hidden 2) are reused (`seqgen.experiments.js_pi.SIZES`).
Teacher forcing trains the generator first; then, each from the teacher-forcing model (`train.init_from`)
and with one optimiser budget for every method (the JS_π study's adversarial budget: steps, learning
rate, schedule and batch), each seed of the size:

- `scheduled_sampling`: constant ε = 0.5, sequential;
- `js_pi_adversarial`: JS_π adversarial training at π = 0.5, the score-function estimator and a learned
  CNN critic, as the JS_π study's toy step sets it up;
- `dft`, `mixce` (η = 0.5), `tailr` (γ = 0.5, min_weight 0.1): weighted likelihood presets;
- `teacher_js_pi{π}` for π in 0.1, 0.5, 0.9: JS_π per position against the data's own P
  (`objective.teacher=data`, `on_policy` 0).

Each fit Q (the model conditioned on the toy's support, as `seqgen.metrics.exact` does) is compared with
P exactly: KL[P‖Q] (coverage), KL[Q‖P] (quality), total variation and JS_0.5. Teacher forcing's
temperature curve, Q_α ∝ Q^α over the support, is what tempering the maximum-likelihood model reaches;
a fit beats tempering when its KL[P‖Q] is lower than the best KL[P‖Q_α] of every α whose KL[Q_α‖P] is
no larger than the fit's (`frontier`): no temperature of teacher forcing matches both its divergences.

`run_objectives` writes into its folder one run folder per training run, `results.json`, `report.md` and
`objectives.png`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqgen.config import RunConfig
from seqgen.data.sources import synthetic_distribution
from seqgen.data.synthetic import ToyDistribution
from seqgen.experiments import js_pi
from seqgen.experiments.recipes import Recipe, group_overrides, merge, study_config
from seqgen.experiments.report import Row
from seqgen.experiments.runs import study_folder, train_run
from seqgen.experiments.sizes import study_size
from seqgen.metrics.exact import js_pi as js_pi_divergence
from seqgen.metrics.exact import kl, support_log_probs, toy_metrics
from seqgen.models.base import Generator

ALPHAS = (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0)
"""Inverse temperatures of teacher forcing's curve as reported (table and figure)."""
DENSE_ALPHAS = tuple(sorted({*ALPHAS, *(round(10 ** (-1 + 2 * i / 400), 6) for i in range(401))}))
"""Inverse temperatures, 0.1 to 10 on a log grid with `ALPHAS`, of the frontier each fit is compared with."""
TOLERANCE = 1e-6
"""A fit beats tempering when it lies more than this (nats of KL[P‖Q]) below the frontier."""
TEACHER_PIS = (0.1, 0.5, 0.9)
"""The class priors of JS_π against the data's own P."""
STUDY_KEYS = ("task", "output_dir", "seed", "data.source", "data.synthetic.kind", "tokenizer.kind",
              "objective.name", "train.init_from")
"""Recipe keys that the study sets for each run itself; an override may not change them."""


@dataclass(frozen=True)
class Method:
    """One training method from the teacher-forcing model.

    Attributes:
        name: the method's name (its runs' folders start with it; `NAME.key=value` overrides its runs).
        label: how the report names it.
        objective: its `objective` recipe (the JS_π adversarial one is the size's, see `StudySize`).
    """

    name: str
    label: str
    objective: Recipe


METHODS = (
    Method("scheduled_sampling", "scheduled sampling, ε = 0.5",
           {"name": "scheduled_sampling", "schedule": "constant", "epsilon": 0.5, "mode": "sequential"}),
    Method("js_pi_adversarial", "JS_π adversarial, π = 0.5, learned critic", {"name": "adversarial", "pi": 0.5}),
    Method("dft", "weighted likelihood, dft", {"name": "weighted_likelihood", "preset": "dft"}),
    Method("mixce", "weighted likelihood, mixce η = 0.5",
           {"name": "weighted_likelihood", "preset": "mixce", "eta": 0.5}),
    Method("tailr", "weighted likelihood, tailr γ = 0.5",
           {"name": "weighted_likelihood", "preset": "tailr", "gamma": 0.5, "min_weight": 0.1}),
    *(Method(f"teacher_js_pi{pi:g}", f"JS_π against the data's P, π = {pi:g}",
             {"name": "teacher_js_pi", "teacher": "data", "pi": pi, "on_policy": 0.0}) for pi in TEACHER_PIS),
)
"""Every method the study trains from teacher forcing, in the report's order."""


@dataclass(frozen=True)
class StudySize:
    """How big the study is: the recipes of its runs, before overrides.

    Attributes:
        name: its name in the studies' size vocabulary (`seqgen.experiments.sizes`).
        toy: the teacher-forcing recipe (the JS_π study's toy step's).
        budget: what every method's run changes in `toy` besides its objective: the optimiser budget
            (`train`) and batch (`data`) of the JS_π study's adversarial toy runs, the same for every method.
        adversarial: the JS_π adversarial method's objective (critic, estimator, critic steps).
        seeds: run seeds; every method is trained once per seed.
    """

    name: str
    toy: Recipe
    budget: Recipe
    adversarial: Recipe
    seeds: tuple[int, ...]


def _size(name: str, seeds: tuple[int, ...]) -> StudySize:
    spec = js_pi.SIZES[name]
    budget = {k: v for k, v in spec.toy_adversarial.items() if k != "objective"}
    return StudySize(name, toy=spec.toy, budget=budget, adversarial=spec.toy_adversarial["objective"], seeds=seeds)


SIZES = {"full": _size("full", (0, 1, 2)), "demo": _size("demo", (0, 1)), "tiny": _size("tiny", (0,))}


@dataclass
class Run(Row):
    """One fit of the toy: Q, the model conditioned on the support, against P (nats)."""

    name: str
    method: str
    """"teacher_forcing" or a name of `METHODS`."""
    seed: int | None
    """The run seed; None for teacher forcing."""
    kl_p_q: float
    kl_q_p: float
    tv_p_q: float
    js_half: float
    """JS_0.5[P‖Q]."""
    q_mass_outside: float
    frontier_kl_p_q: float | None
    """The lowest KL[P‖Q_α] of teacher forcing tempered to a KL[Q_α‖P] no larger than this fit's (see
    `frontier`); None when no temperature reaches this fit's KL[Q‖P]."""
    distance_to_tf_curve: float | None
    """kl_p_q minus frontier_kl_p_q: below zero, no tempered teacher forcing is as good on both KLs."""
    beats_tempering: bool
    """distance_to_tf_curve < -TOLERANCE, or no temperature reaches this fit's KL[Q‖P]."""
    steps: int
    seconds: float
    run_dir: str


@dataclass
class MethodSummary(Row):
    """One method over its seeds."""

    method: str
    label: str
    objective: Recipe
    """The method's objective recipe, as trained (overrides included)."""
    seeds: list[int]
    kl_p_q: list[float]
    kl_q_p: list[float]
    tv_p_q: list[float]
    js_half: list[float]
    distance_to_tf_curve: list[float | None]
    seeds_beating_tempering: int
    beats_tempering: bool
    """In every seed."""


@dataclass
class ObjectivesResult:
    """What `run_objectives` measured (the content of results.json) and where it wrote it.

    Attributes:
        size: the size's name.
        toy: the toy, the generator and the budget every method got.
        teacher_forcing: the teacher-forcing run every method starts from.
        runs: every method's runs (`Run`s, method by method, seed by seed).
        tf_curve: teacher forcing tempered, one dict per α of `ALPHAS`: "alpha", "kl_p_q", "kl_q_p",
            "tv_p_q", "js_half".
        methods: one `MethodSummary` per method of `METHODS`.
        verdict: the sentence that says which methods, if any, beat tempering teacher forcing.
        files: `results`, `report` and `figure`, by name.
    """

    size: str
    toy: dict[str, Any]
    teacher_forcing: Run
    runs: list[Run]
    tf_curve: list[dict[str, float]]
    methods: list[MethodSummary]
    verdict: str
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        """The study's numbers as plain-text tables."""
        from seqgen.experiments.objectives_report import text_table

        return text_table(self)


# ---------------------------------------------------------------------------------------------------
# The study


def run_objectives(out_dir: str | Path, overrides: Sequence[str] = (), *, size: str | StudySize = "full",
                   overwrite: bool = False) -> ObjectivesResult:
    """Train teacher forcing, then every method of `METHODS` from it with each seed; measure each fit and
    teacher forcing's temperature curve exactly; write results.json, report.md and objectives.png.

    Args:
        out_dir: the study's folder (`teacher_forcing/`, then `{method}_seed{s}/` per run).
        overrides: `key=value` recipe overrides of every run; `METHOD.key=value` of one method's runs
            (e.g. `tailr.objective.gamma=0.3`, `js_pi_adversarial.objective.critic_steps=2`). The keys
            of `STUDY_KEYS` are the study's own.
        size: a `StudySize`, or its name: "full", "demo" or "tiny" (`SIZES`).
        overwrite: replace what `out_dir` holds (otherwise a folder that is not empty is an error).

    Raises:
        UserError: an unknown size or a bad override, a folder that already holds something, or any
            error of the runs' recipes (all checked before the first run).
    """
    from seqgen.experiments.objectives_report import verdict, write

    spec = study_size(SIZES, size)
    out = study_folder(out_dir, overwrite)
    groups = group_overrides(overrides, [m.name + "." for m in METHODS], STUDY_KEYS)
    plan = _Plan(spec, groups, out)
    base = plan.config(None)
    toy = synthetic_distribution(base.data)
    configs = {(m.name, seed): plan.config(m, seed) for m in METHODS for seed in spec.seeds}  # all checked first
    out.mkdir(parents=True, exist_ok=True)

    first = configs[(METHODS[0].name, spec.seeds[0])]
    info = {"kind": toy.kind, "vocab_size": toy.vocab_size, "length": toy.max_length,
            "concentration": base.data.synthetic.concentration, "seed": base.data.synthetic.seed,
            "num_train": base.data.synthetic.num_train, "entropy_p": toy.entropy(),
            "model": f"{base.model.cell.upper()}, embedding {base.model.embedding_dim}, hidden "
                     f"{base.model.hidden_dim}", "teacher_forcing_steps": base.train.max_steps,
            "budget": {"steps": first.train.max_steps, "lr": first.train.lr, "schedule": first.train.lr_schedule,
                       "batch_size": first.data.batch_size}, "seeds": list(spec.seeds)}
    print(f"objectives: toy P with {toy.vocab_size} symbols, length {toy.max_length}; generator {info['model']}; "
          f"{len(METHODS)} methods × {len(spec.seeds)} seed(s) from teacher forcing")
    total = 1 + len(configs)
    teacher, seconds = train_run(base)
    curve = temperature_curve(teacher, toy, DENSE_ALPHAS)
    tf = _run("teacher_forcing", "teacher_forcing", None, teacher, toy, curve, base, seconds)
    print(f"[1/{total}] {'teacher forcing':<34} {_kls(tf)}  ({seconds:.1f} s)")
    runs = []
    for method in METHODS:
        for seed in spec.seeds:
            cfg = configs[(method.name, seed)]
            generator, seconds = train_run(cfg)
            runs.append(_run(_run_name(method, seed), method.name, seed, generator, toy, curve, cfg, seconds))
            print(f"[{len(runs) + 1}/{total}] {method.name + f', seed {seed}':<34} {_kls(runs[-1])}"
                  f"{'  below the TF curve' if runs[-1].beats_tempering else ''}  ({seconds:.1f} s)")
    summaries = [_summary(method, configs[(method.name, spec.seeds[0])], [r for r in runs if r.method == method.name])
                 for method in METHODS]
    shown = [p for p in curve if p["alpha"] in ALPHAS]
    result = ObjectivesResult(size=spec.name, toy=info, teacher_forcing=tf, runs=runs, tf_curve=shown,
                              methods=summaries, verdict=verdict(summaries))
    result.files = write(result, out, curve)
    return result


class _Plan:
    """The recipes of the study's runs: teacher forcing, and each method from its model."""

    def __init__(self, spec: StudySize, groups: dict[str, Recipe], folder: Path) -> None:
        self.spec, self.groups, self.folder = spec, groups, folder
        self.teacher = folder / "teacher_forcing"

    def config(self, method: Method | None, seed: int | None = None) -> RunConfig:
        """Teacher forcing's config (method None) or `method`'s with run seed `seed`, checked as
        `seqgen train` would check it."""
        if method is None:
            return study_config(merge(self.spec.toy, self.groups[""]), self.teacher)
        objective = merge(self.spec.adversarial, method.objective) if method.objective["name"] == "adversarial" \
            else method.objective
        study: Recipe = {"seed": seed, "train": {"init_from": str(self.teacher)}}
        recipe = merge(self.spec.toy, self.spec.budget, {"objective": objective}, self.groups[""],
                       self.groups[method.name + "."], study)
        return study_config(recipe, self.folder / _run_name(method, seed))


def _run_name(method: Method, seed: int | None) -> str:
    return f"{method.name}_seed{seed}"


def _kls(row: Run) -> str:
    return f"KL[P‖Q] = {row.kl_p_q:.4f}  KL[Q‖P] = {row.kl_q_p:.4f}"


def _run(name: str, method: str, seed: int | None, generator: Generator, toy: ToyDistribution,
         curve: list[dict[str, float]], cfg: RunConfig, seconds: float) -> Run:
    metrics = toy_metrics(generator, toy, pis=(0.5,))
    level = frontier(curve, metrics["kl_q_p"])
    distance = None if level is None else metrics["kl_p_q"] - level
    if distance is not None and abs(distance) <= TOLERANCE:  # on the curve (teacher forcing's own point)
        distance = 0.0
    return Run(name=name, method=method, seed=seed, kl_p_q=metrics["kl_p_q"], kl_q_p=metrics["kl_q_p"],
               tv_p_q=metrics["tv_p_q"], js_half=metrics["js_pi0.5"], q_mass_outside=metrics["q_mass_outside"],
               frontier_kl_p_q=level, distance_to_tf_curve=distance,
               beats_tempering=level is None or distance < -TOLERANCE, steps=cfg.train.max_steps,
               seconds=round(seconds, 2), run_dir=str(cfg.output_dir))


def _summary(method: Method, cfg: RunConfig, runs: list[Run]) -> MethodSummary:
    beating = sum(r.beats_tempering for r in runs)
    objective = dataclasses.asdict(cfg.objective)
    return MethodSummary(method=method.name, label=method.label, objective=objective,
                         seeds=[r.seed for r in runs], kl_p_q=[r.kl_p_q for r in runs],
                         kl_q_p=[r.kl_q_p for r in runs], tv_p_q=[r.tv_p_q for r in runs],
                         js_half=[r.js_half for r in runs], distance_to_tf_curve=[r.distance_to_tf_curve for r in runs],
                         seeds_beating_tempering=beating, beats_tempering=beating == len(runs))


# ---------------------------------------------------------------------------------------------------
# Teacher forcing tempered


def temperature_curve(generator: Generator, toy: ToyDistribution, alphas: Sequence[float]) -> list[dict[str, float]]:
    """Teacher forcing tempered: Q_α ∝ Q^α over the toy's support, for each α of `alphas`, with
    "alpha", "kl_p_q" (KL[P‖Q_α]), "kl_q_p" (KL[Q_α‖P]), "tv_p_q" and "js_half" (JS_0.5).

    Q is conditioned on the support first, as `seqgen.metrics.exact.toy_metrics` does, so that α = 1 is
    the model's own point."""
    _, p = toy.enumerate()
    with torch.no_grad():
        log_q = support_log_probs(generator, toy)
    out = []
    for alpha in alphas:
        q = (alpha * log_q).log_softmax(0).exp()
        out.append({"alpha": float(alpha), "kl_p_q": kl(p, q), "kl_q_p": kl(q, p),
                    "tv_p_q": float(0.5 * (p - q).abs().sum()), "js_half": js_pi_divergence(p, q, 0.5)})
    return out


def frontier(curve: Sequence[dict[str, float]], kl_q_p: float) -> float | None:
    """The lowest KL[P‖Q_α] over the tempered curve (a polyline through its points in α order) where
    KL[Q_α‖P] <= `kl_q_p`: the best coverage tempering reaches at a quality no worse than `kl_q_p`; None
    when no point of the curve has a KL[Q_α‖P] that low."""
    best = math.inf
    points = [(c["kl_q_p"], c["kl_p_q"]) for c in curve]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        for x, y in ((x0, y0), (x1, y1)):
            if x <= kl_q_p:
                best = min(best, y)
        if min(x0, x1) < kl_q_p < max(x0, x1):  # the segment crosses the run's quality
            best = min(best, y0 + (y1 - y0) * (kl_q_p - x0) / (x1 - x0))
    if len(points) == 1 and points[0][0] <= kl_q_p:
        best = points[0][1]
    return None if best == math.inf else best
