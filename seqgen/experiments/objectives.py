"""Which training objective gives the better samples: every objective seqgen has, from one teacher-forcing
model, measured against tempering that model, on two problems whose P is known.

1. The enumerable toy: the JS_π study's toy P (six symbols, length 2, x2 nearly a function of x1) and its
   generator too small to represent P (an LSTM with embedding 2 and hidden 2). Each fit Q (the model
   conditioned on the toy's support, as `seqgen.metrics.exact` does) is compared with P exactly:
   KL[P‖Q] (coverage), KL[Q‖P] (quality), total variation and JS_0.5; each seed of the size.
2. The oracle LSTM (the JS_π study's oracle step): NLL_oracle (quality: the oracle's NLL of the model's
   samples) and NLL_test (coverage: the model's NLL of the oracle's held-out samples); one run per method.

On each, teacher forcing trains the generator first; then, each from the teacher-forcing model
(`train.init_from`) and with one optimiser budget for every method (the JS_π study's adversarial budget
of that problem: steps, learning rate, schedule and batch):

- `teacher_forcing_continued`: teacher forcing itself with the same budget, the control: whatever a
  method gains from the extra steps alone, this gains too;
- `scheduled_sampling`: constant ε = 0.5, sequential;
- `js_pi_adversarial`: JS_π adversarial training at π = 0.5, the score-function estimator and a learned
  critic, as the JS_π study sets it up;
- `dft`, `mixce` (η = 0.5), `tailr` (γ = 0.5, min_weight 0.1): weighted likelihood presets;
- `teacher_js_pi{π}` for π in 0.1, 0.5, 0.9: JS_π per position against the data's own P
  (`objective.teacher=data`, `on_policy` 0).

Every model, teacher forcing included, is tempered by inverse temperatures α (logits × α): its
quality–diversity curve (`seqgen.metrics.frontier`). A fit beats tempering when its own point (α = 1) lies
below teacher forcing's curve: teacher forcing at no α is as good on both costs. Each curve is also
scored by the area of the plane it dominates and teacher forcing's does not (gain) and the reverse
(loss), inside the box below teacher forcing's worst costs over the reported α.

`run_objectives` writes into its folder one run folder per training run (`toy/<run>/`, `oracle/<run>/`),
the oracle's temperature sweep (`oracle/sweep/`), `results.json`, `report.md`, `objectives.png` (the toy)
and `objectives_oracle.png`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqgen.config import RunConfig
from seqgen.data.sources import split_seed, synthetic_distribution
from seqgen.data.synthetic import OracleLSTM, ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments import js_pi
from seqgen.experiments.inconsistency import describe_oracle
from seqgen.experiments.recipes import Recipe, group_overrides, merge, study_config
from seqgen.experiments.report import Row
from seqgen.experiments.runs import study_folder, train_run
from seqgen.experiments.sizes import study_size
from seqgen.metrics.exact import js_pi as js_pi_divergence
from seqgen.metrics.exact import kl, support_log_probs, toy_metrics
from seqgen.metrics.frontier import distance_above, dominated_beyond, lower_envelope
from seqgen.models.base import Generator

ALPHAS = (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0)
"""Inverse temperatures of the toy's curves as reported (tables), and whose range bounds the area box."""
DENSE_ALPHAS = tuple(sorted({*ALPHAS, *(round(10 ** (-1 + 2 * i / 400), 6) for i in range(401))}))
"""Inverse temperatures, 0.1 to 10 on a log grid with `ALPHAS`: the toy's curves (exact, so cheap)."""
ORACLE_ALPHAS = (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)
"""Inverse temperatures of the oracle's sweep (each a sampling and a scoring pass per model)."""
TOLERANCE = 1e-6
"""A fit beats tempering when it lies more than this (nats) below teacher forcing's curve."""
TEACHER_PIS = (0.1, 0.5, 0.9)
"""The class priors of JS_π against the data's own P."""
STUDY_KEYS = ("task", "output_dir", "seed", "data.source", "data.synthetic.kind", "tokenizer.kind",
              "objective.name", "train.init_from")
"""Recipe keys that the study sets for each run itself; an override may not change them."""
ORACLE = "oracle."
"""The prefix of overrides of the oracle's runs only."""


@dataclass(frozen=True)
class Method:
    """One training method from the teacher-forcing model.

    Attributes:
        name: the method's name (its runs' folders start with it; `NAME.key=value` overrides its runs).
        label: how the report names it.
        objective: its `objective` recipe (the JS_π adversarial one is completed by the problem's, see
            `Problem`).
    """

    name: str
    label: str
    objective: Recipe


METHODS = (
    Method("teacher_forcing_continued", "teacher forcing continued, same budget", {"name": "teacher_forcing"}),
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
class Problem:
    """The recipes of one problem's runs, before overrides.

    Attributes:
        recipe: the teacher-forcing recipe (the JS_π study's for that problem).
        budget: what every method's run changes in `recipe` besides its objective: the optimiser budget
            (`train`) and batch (`data`) of the JS_π study's adversarial runs, the same for every method.
        adversarial: the JS_π adversarial method's objective (critic, estimator, critic steps).
    """

    recipe: Recipe
    budget: Recipe
    adversarial: Recipe

    @classmethod
    def of(cls, recipe: Recipe, adversarial_run: Recipe) -> Problem:
        """The problem of a teacher-forcing recipe and what the JS_π study's adversarial runs change in it."""
        budget = {k: v for k, v in adversarial_run.items() if k != "objective"}
        return cls(recipe=recipe, budget=budget, adversarial=adversarial_run["objective"])


@dataclass(frozen=True)
class StudySize:
    """How big the study is.

    Attributes:
        name: its name in the studies' size vocabulary (`seqgen.experiments.sizes`).
        toy: the toy's recipes.
        oracle: the oracle's recipes.
        seeds: run seeds of the toy; every method is trained once per seed there (once on the oracle).
    """

    name: str
    toy: Problem
    oracle: Problem
    seeds: tuple[int, ...]


def _size(name: str, seeds: tuple[int, ...]) -> StudySize:
    spec = js_pi.SIZES[name]
    return StudySize(name, toy=Problem.of(spec.toy, spec.toy_adversarial),
                     oracle=Problem.of(spec.oracle, spec.oracle_adversarial), seeds=seeds)


SIZES = {"full": _size("full", (0, 1, 2)), "demo": _size("demo", (0, 1)), "tiny": _size("tiny", (0,))}


@dataclass
class Run(Row):
    """One fit of the toy: Q, the model conditioned on the support, against P (nats), and its curve."""

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
    """The lowest KL[P‖Q_α] of teacher forcing tempered to a KL[Q_α‖P] no larger than this fit's
    (`seqgen.metrics.frontier.lower_envelope`); None when no temperature reaches this fit's KL[Q‖P]."""
    distance_to_tf_curve: float | None
    """kl_p_q minus frontier_kl_p_q: below zero, no tempered teacher forcing is as good on both KLs."""
    beats_tempering: bool
    """distance_to_tf_curve < -TOLERANCE, or no temperature reaches this fit's KL[Q‖P]."""
    area_gain: float
    """Area (nats²) of the box that this model's temperature curve dominates and teacher forcing's does not."""
    area_loss: float
    """Area (nats²) that teacher forcing's curve dominates and this model's does not."""
    curve: list[dict[str, float]]
    """This model tempered, one dict per α of `ALPHAS` (see `temperature_curve`)."""
    steps: int
    seconds: float
    run_dir: str


@dataclass
class OracleRun(Row):
    """One run on the oracle, at α = 1 and over its temperature sweep (nats per token)."""

    name: str
    method: str
    nll_oracle: float
    nll_test: float
    frontier_nll_test: float | None
    """NLL_test of teacher forcing's curve at this run's NLL_oracle (its lower envelope); None when no α of
    teacher forcing reaches this NLL_oracle."""
    distance_to_tf_curve: float | None
    beats_tempering: bool
    area_gain: float
    """Area (nats²) that this run's curve dominates and teacher forcing's does not."""
    area_loss: float
    curve: list[dict[str, float]]
    """The sweep: "alpha", "nll_oracle", "nll_test", one per α of `ORACLE_ALPHAS`."""
    steps: int
    seconds: float
    run_dir: str


@dataclass
class MethodSummary(Row):
    """One method on the toy over its seeds, and on the oracle."""

    method: str
    label: str
    objective: Recipe
    """The method's objective recipe on the toy, as trained (overrides included)."""
    seeds: list[int]
    kl_p_q: list[float]
    kl_q_p: list[float]
    tv_p_q: list[float]
    js_half: list[float]
    distance_to_tf_curve: list[float | None]
    area_gain: list[float]
    area_loss: list[float]
    seeds_beating_tempering: int
    beats_tempering: bool
    """On the toy, in every seed."""
    oracle: OracleRun | None
    """Its oracle run; None when the oracle step was skipped."""


@dataclass
class OracleStep(Row):
    """The oracle step: the oracle, teacher forcing and every method's run."""

    oracle: dict[str, Any]
    budget: dict[str, Any]
    teacher_forcing: OracleRun
    runs: list[OracleRun]


@dataclass
class ObjectivesResult:
    """What `run_objectives` measured (the content of results.json) and where it wrote it.

    Attributes:
        size: the size's name.
        toy: the toy, the generator and the budget every method got.
        teacher_forcing: the teacher-forcing run every method starts from on the toy.
        runs: every method's toy runs (`Run`s, method by method, seed by seed).
        tf_curve: teacher forcing tempered on the toy, one dict per α of `ALPHAS`: "alpha", "kl_p_q",
            "kl_q_p", "tv_p_q", "js_half".
        corner: the toy's area box, (KL[Q‖P], KL[P‖Q]) of its upper-right corner.
        oracle: the oracle step; None when skipped.
        methods: one `MethodSummary` per method of `METHODS`.
        verdict: the sentences that say which methods, if any, beat tempering teacher forcing.
        files: `results`, `report` and the figures, by name.
    """

    size: str
    toy: dict[str, Any]
    teacher_forcing: Run
    runs: list[Run]
    tf_curve: list[dict[str, float]]
    corner: tuple[float, float]
    oracle: OracleStep | None
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
                   oracle: bool = True, overwrite: bool = False) -> ObjectivesResult:
    """Train teacher forcing, then every method of `METHODS` from it, on the toy (each seed) and on the
    oracle; measure each model and its temperature curve; write results.json, report.md and the figures.

    Args:
        out_dir: the study's folder (`toy/teacher_forcing/`, `toy/{method}_seed{s}/`, `oracle/...`).
        overrides: `key=value` recipe overrides of every toy run; `METHOD.key=value` of one method's toy
            runs (e.g. `tailr.objective.gamma=0.3`); `oracle.key=value` and `oracle.METHOD.key=value` the
            same for the oracle's runs (e.g. `oracle.data.synthetic.weights=PATH.npz`). The keys of
            `STUDY_KEYS` are the study's own.
        size: a `StudySize`, or its name: "full", "demo" or "tiny" (`SIZES`).
        oracle: run the oracle step.
        overwrite: replace what `out_dir` holds (otherwise a folder that is not empty is an error).

    Raises:
        UserError: an unknown size or a bad override, a folder that already holds something, or any
            error of the runs' recipes (all checked before the first run).
    """
    from seqgen.experiments.objectives_report import verdict, write

    spec = study_size(SIZES, size)
    out = study_folder(out_dir, overwrite)
    names = [m.name + "." for m in METHODS]
    groups = group_overrides(overrides, [*names, ORACLE, *(ORACLE + n for n in names)], STUDY_KEYS)
    if not oracle and any(groups[p] for p in groups if p.startswith(ORACLE)):
        raise UserError("oracle.* overrides were given but the oracle step is skipped")
    toy_plan = _Plan(spec.toy, groups, "", out / "toy")
    oracle_plan = _Plan(spec.oracle, groups, ORACLE, out / "oracle") if oracle else None
    # every recipe, and the toy and the oracle they name, is checked before the first run starts
    seeds = {"toy": spec.seeds, "oracle": (None,)}
    for plan in filter(None, (toy_plan, oracle_plan)):
        for method in METHODS:
            for seed in seeds["oracle" if plan is oracle_plan else "toy"]:
                plan.config(method, seed)
    toy_p = synthetic_distribution(toy_plan.config(None).data)
    oracle_p = synthetic_distribution(oracle_plan.config(None).data) if oracle_plan else None
    out.mkdir(parents=True, exist_ok=True)

    toy_step = _toy_study(toy_plan, toy_p, spec)
    oracle_step = _oracle_study(oracle_plan, oracle_p) if oracle_plan else None
    info, teacher, runs, tf_curve, corner = toy_step
    oracle_runs = {r.method: r for r in oracle_step.runs} if oracle_step else {}
    summaries = [_summary(method, toy_plan.config(method, spec.seeds[0]),
                          [r for r in runs if r.method == method.name], oracle_runs.get(method.name))
                 for method in METHODS]
    result = ObjectivesResult(size=spec.name, toy=info, teacher_forcing=teacher, runs=runs, tf_curve=tf_curve,
                              corner=corner, oracle=oracle_step, methods=summaries, verdict=verdict(summaries))
    result.files = write(result, out)
    return result


class _Plan:
    """The recipes of one problem's runs: teacher forcing, and each method from its model.

    Args:
        problem: the problem's recipes.
        groups: the user's overrides by prefix (`group_overrides`).
        prefix: this problem's prefix of `groups` ("" for the toy, `ORACLE`).
        folder: the problem's folder; each run gets a folder inside.
    """

    def __init__(self, problem: Problem, groups: dict[str, Recipe], prefix: str, folder: Path) -> None:
        self.problem, self.groups, self.prefix, self.folder = problem, groups, prefix, folder
        self.teacher = folder / "teacher_forcing"

    def config(self, method: Method | None, seed: int | None = None) -> RunConfig:
        """Teacher forcing's config (method None) or `method`'s (with run seed `seed` when given), checked
        as `seqgen train` would check it."""
        if method is None:
            return study_config(merge(self.problem.recipe, self.groups[self.prefix]), self.teacher)
        objective = merge(self.problem.adversarial, method.objective) \
            if method.objective["name"] == "adversarial" else method.objective
        study: Recipe = {"train": {"init_from": str(self.teacher)}}
        if seed is not None:
            study["seed"] = seed
        recipe = merge(self.problem.recipe, self.problem.budget, {"objective": objective},
                       self.groups[self.prefix], self.groups[self.prefix + method.name + "."], study)
        return study_config(recipe, self.folder / _run_name(method, seed))


def _run_name(method: Method, seed: int | None) -> str:
    return method.name if seed is None else f"{method.name}_seed{seed}"


def _toy_study(plan: _Plan, toy: ToyDistribution, spec: StudySize
               ) -> tuple[dict[str, Any], Run, list[Run], list[dict[str, float]], tuple[float, float]]:
    """Teacher forcing and every method from it on the toy, each seed: (the toy's description, teacher
    forcing's run, the methods' runs, teacher forcing's curve at `ALPHAS`, the area box's corner)."""
    base = plan.config(None)
    first = plan.config(METHODS[0], spec.seeds[0])
    info = {"kind": toy.kind, "vocab_size": toy.vocab_size, "length": toy.max_length,
            "concentration": base.data.synthetic.concentration, "seed": base.data.synthetic.seed,
            "num_train": base.data.synthetic.num_train, "entropy_p": toy.entropy(),
            "model": f"{base.model.cell.upper()}, embedding {base.model.embedding_dim}, hidden "
                     f"{base.model.hidden_dim}", "teacher_forcing_steps": base.train.max_steps,
            "budget": _budget(first), "seeds": list(spec.seeds)}
    print(f"objectives: toy P with {toy.vocab_size} symbols, length {toy.max_length}; generator {info['model']}; "
          f"{len(METHODS)} methods × {len(spec.seeds)} seed(s) from teacher forcing")
    total = 1 + len(METHODS) * len(spec.seeds)
    generator, seconds = train_run(base)
    tf_dense = temperature_curve(generator, toy, DENSE_ALPHAS)
    shown = [c for c in tf_dense if c["alpha"] in ALPHAS]
    corner = (max(c["kl_q_p"] for c in shown), max(c["kl_p_q"] for c in shown))
    measure = _ToyMeasure(toy, tf_dense, corner)
    teacher = measure("teacher_forcing", "teacher_forcing", None, generator, base, seconds)
    print(f"[1/{total}] {'teacher forcing':<34} {_kls(teacher)}  ({seconds:.1f} s)")
    runs = []
    for method in METHODS:
        for seed in spec.seeds:
            cfg = plan.config(method, seed)
            generator, seconds = train_run(cfg)
            runs.append(measure(_run_name(method, seed), method.name, seed, generator, cfg, seconds))
            print(f"[{len(runs) + 1}/{total}] {method.name + f', seed {seed}':<34} {_kls(runs[-1])}"
                  f"{'  below the TF curve' if runs[-1].beats_tempering else ''}  ({seconds:.1f} s)")
    return info, teacher, runs, shown, corner


def _budget(cfg: RunConfig) -> dict[str, Any]:
    return {"steps": cfg.train.max_steps, "lr": cfg.train.lr, "schedule": cfg.train.lr_schedule,
            "batch_size": cfg.data.batch_size}


def _kls(row: Run) -> str:
    return f"KL[P‖Q] = {row.kl_p_q:.4f}  KL[Q‖P] = {row.kl_q_p:.4f}"


class _ToyMeasure:
    """Measures a toy fit against P and against teacher forcing's curve `tf_dense` (box corner `corner`)."""

    def __init__(self, toy: ToyDistribution, tf_dense: list[dict[str, float]], corner: tuple[float, float]) -> None:
        self.toy, self.corner = toy, corner
        self.tf_points = _points(tf_dense, "kl_q_p", "kl_p_q")

    def __call__(self, name: str, method: str, seed: int | None, generator: Generator, cfg: RunConfig,
                 seconds: float) -> Run:
        metrics = toy_metrics(generator, self.toy, pis=(0.5,))
        level = lower_envelope(self.tf_points, metrics["kl_q_p"])
        distance = distance_above(metrics["kl_p_q"], level, TOLERANCE)
        dense = temperature_curve(generator, self.toy, DENSE_ALPHAS)
        gain, loss = dominated_beyond(_points(dense, "kl_q_p", "kl_p_q"), self.tf_points, self.corner)
        return Run(name=name, method=method, seed=seed, kl_p_q=metrics["kl_p_q"], kl_q_p=metrics["kl_q_p"],
                   tv_p_q=metrics["tv_p_q"], js_half=metrics["js_pi0.5"], q_mass_outside=metrics["q_mass_outside"],
                   frontier_kl_p_q=level, distance_to_tf_curve=distance,
                   beats_tempering=level is None or distance < -TOLERANCE, area_gain=gain, area_loss=loss,
                   curve=[c for c in dense if c["alpha"] in ALPHAS], steps=cfg.train.max_steps,
                   seconds=round(seconds, 2), run_dir=str(cfg.output_dir))


def _points(curve: Sequence[dict[str, float]], x: str, y: str) -> list[tuple[float, float]]:
    return [(c[x], c[y]) for c in curve]


def _oracle_study(plan: _Plan, oracle: OracleLSTM) -> OracleStep:
    """Teacher forcing and every method from it on the oracle LSTM, then every model's temperature sweep."""
    from seqgen.sweep import sweep

    base = plan.config(None)
    info = describe_oracle(base, oracle)
    n, seed = info["num_samples"], split_seed(base.seed, "test")  # the runs' test split
    total = 1 + len(METHODS)
    trained = []
    for i, method in enumerate([None, *METHODS], 1):
        cfg = plan.config(method)
        _, seconds = train_run(cfg)
        trained.append(("teacher_forcing" if method is None else method.name, cfg, seconds))
        print(f"[{i}/{total}] oracle {trained[-1][0]:<24} ({seconds:.1f} s)")
    # one sweep over every model: the same samples' seed and test split as every run's own figures
    rows = sweep([cfg.output_dir for _, cfg, _ in trained], ORACLE_ALPHAS, plan.folder / "sweep",
                 num_samples=n, seed=seed, overwrite=True)
    curves = {path: [{k: r[k] for k in ("alpha", "nll_oracle", "nll_test")} for r in rows if r["path"] == path]
              for path in dict.fromkeys(r["path"] for r in rows)}
    tf_curve = curves[str(trained[0][1].output_dir)]
    tf_points = _points(tf_curve, "nll_oracle", "nll_test")
    corner = (max(x for x, _ in tf_points), max(y for _, y in tf_points))
    runs = []
    for name, cfg, seconds in trained:
        curve = curves[str(cfg.output_dir)]
        (own,) = [c for c in curve if c["alpha"] == 1.0]
        level = lower_envelope(tf_points, own["nll_oracle"])
        distance = distance_above(own["nll_test"], level, TOLERANCE)
        gain, loss = dominated_beyond(_points(curve, "nll_oracle", "nll_test"), tf_points, corner)
        runs.append(OracleRun(name=name, method=name, nll_oracle=own["nll_oracle"], nll_test=own["nll_test"],
                              frontier_nll_test=level, distance_to_tf_curve=distance,
                              beats_tempering=level is None or distance < -TOLERANCE, area_gain=gain,
                              area_loss=loss, curve=curve, steps=cfg.train.max_steps, seconds=round(seconds, 2),
                              run_dir=str(cfg.output_dir)))
        print(f"oracle {name:<24} NLL_oracle = {own['nll_oracle']:.4f}  NLL_test = {own['nll_test']:.4f}"
              f"{'  below the TF curve' if runs[-1].beats_tempering and name != 'teacher_forcing' else ''}")
    info["corner"] = corner
    return OracleStep(oracle=info, budget=_budget(trained[1][1]), teacher_forcing=runs[0], runs=runs[1:])


def _summary(method: Method, cfg: RunConfig, runs: list[Run], oracle: OracleRun | None) -> MethodSummary:
    beating = sum(r.beats_tempering for r in runs)
    return MethodSummary(method=method.name, label=method.label, objective=dataclasses.asdict(cfg.objective),
                         seeds=[r.seed for r in runs], kl_p_q=[r.kl_p_q for r in runs],
                         kl_q_p=[r.kl_q_p for r in runs], tv_p_q=[r.tv_p_q for r in runs],
                         js_half=[r.js_half for r in runs], distance_to_tf_curve=[r.distance_to_tf_curve for r in runs],
                         area_gain=[r.area_gain for r in runs], area_loss=[r.area_loss for r in runs],
                         seeds_beating_tempering=beating, beats_tempering=beating == len(runs), oracle=oracle)


# ---------------------------------------------------------------------------------------------------
# Teacher forcing tempered


def temperature_curve(generator: Generator, toy: ToyDistribution, alphas: Sequence[float]) -> list[dict[str, float]]:
    """The model tempered: Q_α ∝ Q^α over the toy's support, for each α of `alphas`, with "alpha",
    "kl_p_q" (KL[P‖Q_α]), "kl_q_p" (KL[Q_α‖P]), "tv_p_q" and "js_half" (JS_0.5).

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
