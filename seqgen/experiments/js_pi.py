"""The JS_π interpolation, measured (SCIENCE.md sections 3 and 5).

JS_π[P‖Q] behaves like KL[P‖Q] (maximum likelihood, mass-covering) as π → 0 and like KL[Q‖P]
(mode-seeking) as π → 1. When the model class cannot represent P, the two fits differ, and training by
JS_π over a grid of π should move the fit from one to the other: KL[Q‖P] falls and KL[P‖Q] rises as
π grows. The study measures that in three steps:

1. continuous: one isotropic Gaussian Q fitted to a 2-D mixture of Gaussians P, exactly and
   adversarially (`seqgen.experiments.gaussians`);
2. sequences: on an enumerable two-token toy P whose x2 nearly follows from x1, a generator too small
   to represent P (an LSTM with two hidden units) is trained by teacher forcing, then by JS_π
   adversarial training at each π, every adversarial run starting from the teacher-forcing model
   (`train.init_from`). Each fit is compared with P exactly (`seqgen.metrics.exact`). Beside every
   adversarial run, the same model is also fitted by exact gradient descent on JS_π itself, summed
   over the toy's support: that is what the objective asks of this model class, free of the critic's
   and the straight-through Gumbel-softmax estimator's errors;
3. oracle LSTM: teacher forcing, then JS_π adversarial training at a few π from its checkpoint, each
   scored by NLL_oracle (quality) and NLL_test (coverage) and drawn over the quality-coverage curve
   that teacher forcing traces when its sampling temperature is swept (`seqgen.sweep`).

Measured at demo size (`seqgen demo`): exact descent shows the trend (KL[Q‖P] from 0.175 at π = 0.05 to
0.102 at π = 0.95, KL[P‖Q] from 0.055 to 0.474); adversarial training lowers KL[Q‖P] as π grows (0.64
to 0.40) but lowers its own JS_π only at π ≥ 0.75, and at small π moves away from P instead of staying
near the teacher-forcing fit: its gradient estimate, not the objective, misses the trend.

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
from torch import Tensor

from seqgen.config import RunConfig, load_config
from seqgen.data.sources import split_seed
from seqgen.data.synthetic import OracleLSTM, ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments import gaussians
from seqgen.experiments.inconsistency import describe_oracle
from seqgen.experiments.plots import plot_kl_against_pi, plot_oracle_tradeoff
from seqgen.experiments.runs import as_overrides, train_run, yaml_value
from seqgen.experiments.tables import aligned, markdown_table
from seqgen.metrics.exact import symbol_token_ids, toy_metrics
from seqgen.metrics.oracle import oracle_metrics
from seqgen.models.base import Generator

PIS = gaussians.PIS
"""The class priors of the continuous and sequence steps."""
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
        toy_adversarial: what the toy's JS_π runs change in `toy` (the objective and training).
        exact_steps: Adam steps of each exact JS_π fit on the toy.
        exact_lr: their learning rate.
        oracle: the oracle's teacher-forcing recipe; its test split (`data.synthetic.num_test`
            sequences) gives NLL_test, and as many model samples give NLL_oracle.
        oracle_adversarial: what the oracle's JS_π runs change in `oracle`.
    """

    continuous: str
    toy: dict[str, Any]
    toy_adversarial: dict[str, Any]
    exact_steps: int
    exact_lr: float
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
                 tau: float) -> dict[str, Any]:
    return {"objective": {"name": "adversarial",
                          "adversarial": {"critic": "cnn", "critic_embedding_dim": critic_dim,
                                          "critic_hidden_dim": 2 * critic_dim, "critic_lr": critic_lr,
                                          "critic_steps": critic_steps, "generator_loss": "minimax",
                                          "temperature": "constant", "tau": tau}},
            "train": {"max_steps": steps, "lr": lr, "lr_schedule": "linear", "warmup_steps": 0,
                      # the critic's JS_π estimate is read from the last tenth of the steps
                      "log_every": max(1, steps // 10)}}


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
                      toy_adversarial=_adversarial(1000, 0.001, 32, 0.01, 1, 1.0),
                      exact_steps=1000, exact_lr=0.01,
                      oracle=_oracle_recipe(100, 20, 10_000, 5_000, 3000),
                      oracle_adversarial=_adversarial(1000, 0.0001, 64, 0.001, 1, 1.0)),
    # `seqgen demo` runs the continuous and sequence steps: about three minutes on one CPU core
    "demo": StudySize(continuous="demo", toy=_toy_recipe(20_000, 2000, 0.03),
                      toy_adversarial=_adversarial(300, 0.001, 16, 0.01, 1, 1.0),
                      exact_steps=500, exact_lr=0.01,
                      oracle=_oracle_recipe(30, 10, 5_000, 2_000, 300),
                      oracle_adversarial=_adversarial(200, 0.0001, 32, 0.001, 1, 1.0)),
    # tests: seconds per run
    "tiny": StudySize(continuous="tiny", toy=_toy_recipe(2_000, 200, 0.03),
                      toy_adversarial=_adversarial(80, 0.003, 8, 0.01, 1, 1.0),
                      exact_steps=100, exact_lr=0.01,
                      oracle=_oracle_recipe(20, 6, 500, 200, 30),
                      oracle_adversarial=_adversarial(10, 0.0001, 8, 0.001, 1, 1.0)),
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


def support_log_probs(model: Generator, toy: ToyDistribution) -> Tensor:
    """log Q(x) = Σ_t log Q(x_t | x_<t) + log Q(EOS | x) of every sequence of a fixed-length toy's
    support, differentiable in the model's parameters (`seqgen.metrics.exact.model_log_probs` is the
    gradient-free version for any toy).

    Returns:
        (N,) float64 in `toy.support()` order.
    """
    vocab = model.vocab
    ids = symbol_token_ids(vocab, toy.vocab_size)
    symbols = torch.tensor(toy.support())  # (N, L)
    column = torch.ones_like(symbols[:, :1])
    tokens = torch.cat([column * vocab.bos_id, ids[symbols], column * vocab.eos_id], 1)  # (N, L + 2)
    tokens = tokens.to(model.input_embeddings.device)
    log_q = model(tokens[:, :-1], model.encode(None)).double().log_softmax(-1)  # (N, L + 1, V)
    return log_q.gather(-1, tokens[:, 1:, None]).squeeze(-1).sum(1).cpu()


def js_pi_with_leak(p: Tensor, log_q: Tensor, pi: float) -> Tensor:
    """JS_π[P‖Q] between P on the support and the model Q, whose mass outside the support (where P is 0)
    counts as one more outcome, as it does for a critic that sees the model's every sample.

    Args:
        p: (N,) float64 probabilities of P on the support.
        log_q: (N,) float64 log Q on the support (differentiable: so is the result).
        pi: the class prior π in (0, 1).

    Returns:
        JS_π in nats, a 0-dim tensor.
    """
    q = log_q.exp()
    q = torch.cat([q, (1 - q.sum()).clamp(min=torch.finfo(q.dtype).tiny)[None]])  # (N + 1,)
    p = torch.cat([p, p.new_zeros(1)])
    m = pi * p + (1 - pi) * q
    return (pi * (torch.xlogy(p, p) - torch.xlogy(p, m)).sum()
            + (1 - pi) * (torch.xlogy(q, q) - torch.xlogy(q, m)).sum())


def fit_exact_js_pi(generator: Generator, toy: ToyDistribution, pi: float, steps: int,
                    lr: float) -> Generator:
    """Minimise the exact JS_π[P‖Q] (`js_pi_with_leak`) over a copy of `generator`'s parameters by Adam.

    Every step scores the whole support in one forward pass, so the gradient is exact: no critic, no
    sampled rollouts.

    Args:
        generator: the starting point (not modified), a language model over the toy's fixed vocabulary.
        toy: a fixed-length toy P.
        pi: the class prior π in (0, 1).
        steps: Adam steps.
        lr: Adam's learning rate.

    Returns:
        The fitted copy, in eval mode.
    """
    _check_pis([pi], "pi")
    model = copy.deepcopy(generator).eval()  # eval: no dropout, so the objective is deterministic
    model.requires_grad_(True)
    p = toy.enumerate()[1]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        js_pi_with_leak(p, support_log_probs(model, toy), pi).backward()
        optimizer.step()
    return model.requires_grad_(False)


# ---------------------------------------------------------------------------------------------------
# The study


def run_js_pi(out_dir: str | Path, overrides: Sequence[str] = (), *, size: str = "full",
              pis: Sequence[float] = PIS, oracle_pis: Sequence[float] = ORACLE_PIS, continuous: bool = True,
              toy: bool = True, oracle: bool = True, overwrite: bool = False) -> JsPiResult:
    """Run the study's steps; write results.json, report.md and the figures.

    Toy runs (`JsPiResult.toy["runs"]`, in this order): `teacher_forcing`; `js_pi{π}` for each π of
    `pis` (JS_π adversarial training from the teacher-forcing model); `exact_pi{π}` (exact JS_π descent
    from it, see `fit_exact_js_pi`). Each entry holds: name, method ("teacher_forcing" |
    "adversarial" | "exact"), pi (None for teacher forcing), kl_p_q, kl_q_p, js_pi, js_pi_over_pi,
    js_pi_over_1mpi (at the run's π; None for teacher forcing), js_pi_start (JS_π of the teacher-forcing
    model at the run's π, where the run's objective started), critic_js_pi (adversarial runs: the
    critic's JS_π estimate V_π + H(π), averaged over the last logged tenth of training), entropy_q,
    tv_p_q, q_mass_outside, steps, seconds, run_dir. Q is the model conditioned on the toy's support
    (see `seqgen.metrics.exact`). `toy["spearman"]` holds Spearman's ρ of each KL against π, per method.

    Oracle runs (`oracle["runs"]`): `teacher_forcing`, then `js_pi{π}` for each π of `oracle_pis`, each
    with name, method, pi, nll_oracle, nll_test, nll_test_tf_curve (NLL_test of teacher forcing's
    temperature curve at the run's NLL_oracle, linearly interpolated; None outside the curve), steps,
    seconds, run_dir; `oracle["sweep"]` is that curve (`seqgen.sweep.sweep` rows, one per α of ALPHAS).

    Args:
        out_dir: the study's folder.
        overrides: `key=value` recipe overrides: of every toy run; `adversarial.key=value` of the toy's
            JS_π runs only (e.g. `adversarial.train.lr=0.003`,
            `adversarial.objective.adversarial.critic=rnn`); `oracle.key=value` of every oracle run and
            `oracle.adversarial.key=value` of its JS_π runs (e.g. `oracle.data.synthetic.weights=PATH.npz`).
            The keys of `STUDY_KEYS` are the study's own.
        size: "full", "demo" or "tiny" (`SIZES`): the recipes before overrides.
        pis: the class priors of the continuous and toy steps, each in (0, 1), at least two.
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
    pis, oracle_pis = _check_pis(pis, "pis"), _check_pis(oracle_pis, "oracle pis")
    if len(pis) < 2 and (continuous or toy):
        raise UserError(f"the study needs at least two values of pi to show a trend, got {pis}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} is not empty; pass --overwrite (overwrite=True) to replace the study there")
    groups = _split_overrides(overrides)
    if (groups["oracle"] or groups["oracle_adversarial"]) and not oracle:
        raise UserError("oracle.* overrides were given but the oracle step is skipped")
    if (groups["toy"] or groups["toy_adversarial"]) and not toy:
        raise UserError("toy overrides were given but the sequence step is skipped")

    if oracle and not oracle_pis:
        raise UserError("the oracle step needs at least one value of pi")

    # Every recipe, and the toy and the oracle they name, is checked before the first run starts.
    spec = SIZES[size]
    toy_plan = oracle_plan = toy_p = oracle_p = None
    if toy:
        toy_plan = _Plan(spec.toy, spec.toy_adversarial, groups["toy"], groups["toy_adversarial"],
                         out / "toy")
        toy_p = ToyDistribution.from_config(toy_plan.config(None).data.synthetic)  # a joint table
        toy_plan.config(pis[0])
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
        print(f"continuous: one Gaussian fitted to a 2-D mixture by JS_π at π = {_grid(pis)}")
        started = time.perf_counter()
        continuous_result = gaussians.run_gaussians(out / "continuous", pis, spec.continuous)
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

    def config(self, pi: float | None) -> RunConfig:
        """The teacher-forcing run's config (pi None) or the JS_π run's at `pi`, checked as `seqgen
        train` would check it."""
        from seqgen.recipes import check_recipe

        if pi is None:
            items = [*as_overrides(self.recipe), *self.overrides,
                     f"output_dir={json.dumps(str(self.teacher))}"]
        else:
            items = [*as_overrides(_merged(self.recipe, self.adversarial)), *self.overrides,
                     *self.adversarial_overrides, f"objective.adversarial.pi={yaml_value(pi)}",
                     f"train.init_from={json.dumps(str(self.teacher))}",
                     f"output_dir={json.dumps(str(self.folder / _run_name(pi)))}"]
        cfg = load_config(None, items)
        check_recipe(cfg)
        return cfg


def _run_name(pi: float) -> str:
    return f"js_pi{pi:g}"


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with the leaves of `changes` replaced, recursively."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _toy_study(plan: _Plan, toy: ToyDistribution, pis: list[float], spec: StudySize) -> dict[str, Any]:
    """Teacher forcing, JS_π adversarial training and exact JS_π descent at each π, on the toy."""
    base = plan.config(None)
    syn = base.data.synthetic
    info = {"kind": toy.kind, "vocab_size": toy.vocab_size, "length": toy.max_length,
            "concentration": syn.concentration, "seed": syn.seed, "num_train": syn.num_train,
            "entropy_p": toy.entropy(), "multi_information_p": toy.multi_information(),
            "model": f"{base.model.cell.upper()}, embedding {base.model.embedding_dim}, hidden "
                     f"{base.model.hidden_dim}"}
    print(f"sequences: toy P with {toy.vocab_size} symbols, length {toy.max_length}, H(P) = "
          f"{info['entropy_p']:.4f} nats; generator: {info['model']}")
    teacher, seconds = train_run(base)
    # every fit starts from teacher forcing: its own JS_π at each π is where each fit's objective starts
    start = toy_metrics(teacher, toy, pis)
    runs = [{"name": "teacher_forcing", "method": "teacher_forcing", "pi": None,
             **_measure_toy(teacher, toy, None), "js_pi_start": None, "critic_js_pi": None,
             "steps": base.train.max_steps, "seconds": round(seconds, 2), "run_dir": str(base.output_dir)}]
    total = 1 + 2 * len(pis)
    print(f"[1/{total}] teacher forcing     {_kls(runs[-1])}  ({seconds:.1f} s)")
    for i, pi in enumerate(pis, 2):
        cfg = plan.config(pi)
        generator, seconds = train_run(cfg)
        runs.append({"name": _run_name(pi), "method": "adversarial", "pi": pi,
                     **_measure_toy(generator, toy, pi), "js_pi_start": start[f"js_pi{pi:g}"],
                     "critic_js_pi": _critic_estimate(Path(cfg.output_dir)), "steps": cfg.train.max_steps,
                     "seconds": round(seconds, 2), "run_dir": str(cfg.output_dir)})
        print(f"[{i}/{total}] JS_π adversarial π = {pi:<4g} {_kls(runs[-1])}  ({seconds:.1f} s)")
    for i, pi in enumerate(pis, 2 + len(pis)):
        started = time.perf_counter()
        fitted = fit_exact_js_pi(teacher, toy, pi, spec.exact_steps, spec.exact_lr)
        seconds = time.perf_counter() - started
        runs.append({"name": f"exact_pi{pi:g}", "method": "exact", "pi": pi, **_measure_toy(fitted, toy, pi),
                     "js_pi_start": start[f"js_pi{pi:g}"], "critic_js_pi": None, "steps": spec.exact_steps,
                     "seconds": round(seconds, 2),
                     "run_dir": None})
        print(f"[{i}/{total}] exact JS_π      π = {pi:<4g} {_kls(runs[-1])}  ({seconds:.1f} s)")
    spearman = {method: {kl: gaussians.spearman(pis, [r[kl] for r in runs if r["method"] == method])
                         for kl in ("kl_p_q", "kl_q_p")} for method in ("adversarial", "exact")}
    return {"toy": info, "runs": runs, "spearman": spearman}


def _kls(row: dict[str, Any]) -> str:
    return f"KL[P‖Q] = {row['kl_p_q']:.4f}  KL[Q‖P] = {row['kl_q_p']:.4f}"


def _measure_toy(generator: Generator, toy: ToyDistribution, pi: float | None) -> dict[str, Any]:
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


def _critic_estimate(run_dir: Path) -> float | None:
    """The critic's JS_π estimate of the last logged window of training (logs/metrics.jsonl)."""
    estimate = None
    with open(run_dir / "logs" / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            estimate = json.loads(line).get("critic/js_pi", estimate)
    return estimate


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
    curve = sweep([plan.teacher], ALPHAS, plan.folder / "sweep", num_samples=n, seed=seed)
    curve = [{k: r[k] for k in ("alpha", "nll_oracle", "nll_test")} for r in curve]
    for r in runs:
        r["nll_test_tf_curve"] = _on_curve(curve, r["nll_oracle"]) if r["pi"] is not None else None
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


def _checks(continuous: dict[str, Any] | None, toy: dict[str, Any] | None) -> list[dict[str, Any]]:
    """As π grows, KL[Q‖P] should fall and KL[P‖Q] rise: Spearman's ρ of each against π, per method."""
    checks = []
    for step, result, methods in (("continuous", continuous, ("exact", "adversarial")),
                                  ("toy", toy, ("exact", "adversarial"))):
        if result is None:
            continue
        for method in methods:
            rho = result["spearman"][method]
            checks.append({"step": step, "method": method, "claim": "ρ(KL[Q‖P], π) < 0 (mode-seeking grows "
                           "with π)", "value": rho["kl_q_p"], "passed": rho["kl_q_p"] < 0})
            checks.append({"step": step, "method": method, "claim": "ρ(KL[P‖Q], π) > 0 (coverage falls with "
                           "π)", "value": rho["kl_p_q"], "passed": rho["kl_p_q"] > 0})
    if toy is not None:
        adversarial = [r for r in toy["runs"] if r["method"] == "adversarial"]
        low, high = adversarial[0], adversarial[-1]
        checks.append({"step": "toy", "method": "adversarial",
                       "claim": f"KL[Q‖P] at π = {high['pi']:g} below KL[Q‖P] at π = {low['pi']:g}",
                       "value": high["kl_q_p"] - low["kl_q_p"], "passed": high["kl_q_p"] < low["kl_q_p"]})
    return checks


# ---------------------------------------------------------------------------------------------------
# Output


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


TOY_COLUMNS = (("kl_p_q", "KL[P‖Q]"), ("kl_q_p", "KL[Q‖P]"), ("js_pi", "JS_π"),
               ("js_pi_start", "JS_π at start"), ("js_pi_over_pi", "JS_π/π"),
               ("js_pi_over_1mpi", "JS_π/(1−π)"), ("critic_js_pi", "critic's JS_π"), ("entropy_q", "H(Q)"),
               ("q_mass_outside", "mass outside"))


def _toy_rows(toy: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "π", *(title for _, title in TOY_COLUMNS), "seconds"]
    rows = [[r["name"], "—" if r["pi"] is None else f"{r['pi']:g}", *(_number(r[k]) for k, _ in TOY_COLUMNS),
             f"{r['seconds']:.1f}"] for r in toy["runs"]]
    return header, rows


def _spearman_rows(spearman: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "ρ(KL[P‖Q], π)", "ρ(KL[Q‖P], π)"]
    return header, [[m, _number(rho["kl_p_q"], 2), _number(rho["kl_q_p"], 2)] for m, rho in spearman.items()]


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
    header = ["run", "π", "NLL_oracle", "NLL_test", "TF curve's NLL_test there", "seconds"]
    rows = [[r["name"], "—" if r["pi"] is None else f"{r['pi']:g}", _number(r["nll_oracle"]),
             _number(r["nll_test"]), _number(r["nll_test_tf_curve"]), f"{r['seconds']:.1f}"]
            for r in oracle["runs"]]
    rows.append(["oracle itself", "—", _number(oracle["oracle"]["nll_oracle_own_samples"]), "—", "—", "—"])
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
                  *aligned(*_toy_rows(result.toy)), *aligned(*_spearman_rows(result.toy["spearman"])), ""]
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
                  (f"P: a mixture of {len(c['mixture']['weights'])} isotropic Gaussians (seed {c['seed']}, "
                   "Theis et al. 2016); Q: one isotropic Gaussian, fitted by exact JS_π (numerical "
                   "integration, L-BFGS) and adversarially (an MLP critic, reparameterised samples of Q); "
                   f"size `{c['size']}` (`seqgen.experiments.gaussians`)."), "",
                  markdown_table(*_continuous_rows(c)), "", markdown_table(*_spearman_rows(c["spearman"])), ""]
    if result.toy:
        info = result.toy["toy"]
        adversarial = [r for r in result.toy["runs"] if r["method"] == "adversarial"]
        lines += ["## 2. Sequences: an enumerable toy and a generator too small for it", "",
                  (f"P: a random `{info['kind']}` table over {info['vocab_size']} symbols × length "
                   f"{info['length']} (Dirichlet concentration {info['concentration']:g}, seed "
                   f"{info['seed']}), "
                   f"H(P) = {info['entropy_p']:.4f}, multi-information {info['multi_information_p']:.4f}; "
                   f"{info['num_train']} training samples. Generator: {info['model']}. Teacher forcing "
                   "trains it first; every `js_pi*` run is JS_π adversarial training from that model "
                   f"({adversarial[0]['steps'] if adversarial else 0} steps, minimax generator loss, "
                   "straight-through Gumbel-softmax rollouts, CNN critic), and every `exact_pi*` row is "
                   "the same model fitted from the same start by exact gradient descent on JS_π summed "
                   "over the support (what the objective asks of this model class, without a critic or "
                   "sampled gradients). Q is the model conditioned on the support; `critic's JS_π` is "
                   "the critic's own estimate V_π + H(π) at the end of training."), "",
                  markdown_table(*_toy_rows(result.toy)), "",
                  markdown_table(*_spearman_rows(result.toy["spearman"])), ""]
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
        runs, rho = result.toy["runs"], result.toy["spearman"]
        teacher = runs[0]
        exact = [r for r in runs if r["method"] == "exact"]
        adversarial = [r for r in runs if r["method"] == "adversarial"]
        parts.append(
            f"Sequences: teacher forcing ends at KL[P‖Q] = {teacher['kl_p_q']:.4f} and KL[Q‖P] = "
            f"{teacher['kl_q_p']:.4f}. From there, exact JS_π descent shows {_trend(rho['exact'])}: "
            f"KL[Q‖P] from {_span(exact, 'kl_q_p')}, KL[P‖Q] from {_span(exact, 'kl_p_q')}. Adversarial "
            f"training shows {_trend(rho['adversarial'])}: KL[Q‖P] from {_span(adversarial, 'kl_q_p')}, "
            f"KL[P‖Q] from {_span(adversarial, 'kl_p_q')}.")
        lowered = {m: [r for r in rows if r["js_pi"] < r["js_pi_start"]]
                   for m, rows in (("adversarial", adversarial), ("exact", exact))}
        parts.append(
            "Adversarial training lowered its own objective, the exact JS_π, below the teacher-forcing "
            f"model's at {len(lowered['adversarial'])} of {len(adversarial)} values of π"
            + (f" ({_grid([r['pi'] for r in lowered['adversarial']])})" if lowered["adversarial"] else "")
            + f"; exact descent at {len(lowered['exact'])} of {len(exact)}.")
        away = [(a, e) for a, e in zip(adversarial, exact)
                if a["pi"] < 0.5 and a["kl_p_q"] > teacher["kl_p_q"] > e["kl_p_q"]]
        if away:
            parts.append(
                "At " + ", ".join(f"π = {a['pi']:g}" for a, _ in away) + ", where JS_π/π approaches the "
                "maximum-likelihood objective, adversarial training moved away from P (KL[P‖Q] "
                + ", ".join(f"{a['kl_p_q']:.4f}" for a, _ in away) + ") while exact descent on the same "
                "objective from the same start moved towards it ("
                + ", ".join(f"{e['kl_p_q']:.4f}" for _, e in away) + "): the difference lies in the "
                "adversarial gradient estimate (the critic, the straight-through Gumbel-softmax relaxation, "
                "the sampling noise), not in the objective.")
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
