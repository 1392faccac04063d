"""Which generator gradient estimator can be trusted at which π: measured exactly on the enumerable toy.

Adversarial training follows a sampled estimate of the gradient of its generator loss. On a toy whose
every sequence can be listed, the gradient it should follow is known exactly: at the optimal critic
D* = πP / (πP + (1 - π)Q), the minimax generator loss has the gradient of JS_π[P‖Q] itself. This
harness starts from the toy study's teacher-forcing model and, for each estimator, each π and each
critic (D*, or a CNN critic trained against the starting model as the study's runs train theirs),
draws many independent estimates through the training code's own generator player and reports:

- the cosine of the averaged estimate with the exact ∇JS_π (bias: 1 for an unbiased estimator, given
  enough estimates);
- the mean cosine of single estimates (what one step sees);
- the ratio of the averaged estimate's norm to the exact gradient's;
- the variance of one estimate (the trace of its covariance), relative to |∇JS_π|²;
- the seconds one estimate takes.

With the learned critic, the critic's own error is reported apart: its Q-weighted logit error against
D*, and the cosine with ∇JS_π of the gradient it implies (the exact expectation of the generator loss
it defines, with no estimator in between).

`run_estimators` writes results.json, report.md and estimators.png into its folder and names the
estimator it recommends: among those whose averaged cosine with D* is at least 0.8 at every π, the one
of least variance.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor

from seqgen.config import from_dict
from seqgen.data.batch import Batch
from seqgen.data.sources import synthetic_distribution
from seqgen.data.synthetic import ToyDistribution
from seqgen.errors import UserError
from seqgen.experiments.recipes import study_config
from seqgen.experiments.report import Row, aligned, markdown_table, write_results
from seqgen.experiments.runs import study_folder, train_run
from seqgen.experiments.sizes import study_size
from seqgen.metrics.exact import support_tokens
from seqgen.models.base import Generator
from seqgen.objectives import AdversarialConfig
from seqgen.objectives.adversarial import CriticPlayer, GeneratorPlayer, build_critic_from
from seqgen.objectives.optimal_critic import OracleCritic, cosine, critic_report, exact_js_pi_gradient

PIS = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The class priors of the harness."""
ESTIMATORS: dict[str, dict[str, Any]] = {
    "straight_through": {"estimator": "straight_through"},
    "reinforce": {"estimator": "reinforce", "baseline": "none"},
    "reinforce_batch": {"estimator": "reinforce", "baseline": "batch"},
    "reinforce_rloo4": {"estimator": "reinforce", "baseline": "rloo", "rollouts_per_context": 4},
    "rebar": {"estimator": "rebar", "baseline": "none", "cv_weight": 1.0},
}
"""The estimators compared, as changes of the adversarial section (named for the table)."""
CRITICS = ("optimal", "learned")
FAITHFUL = 0.8
"""The averaged cosine with ∇JS_π an estimator must reach at every π to be recommended."""


@dataclass(frozen=True)
class HarnessSize:
    """How much work the harness does.

    Attributes:
        name: its name in the studies' size vocabulary (`seqgen.experiments.sizes`).
        study: the JS_π study's size whose toy recipe trains the starting model and whose adversarial
            recipe sets the learned critic's architecture and learning rate.
        estimates: independent estimates per estimator, π and critic.
        batch: rollouts per estimate (RLOO: batch / K contexts of K rollouts each).
        critic_steps: updates of the learned critic against the starting model, per π.
    """

    name: str
    study: str
    estimates: int
    batch: int
    critic_steps: int


SIZES = {
    # near the teacher-forcing fit ∇JS_π is small at small π (it vanishes at the maximum-likelihood fit as
    # π → 0), and one estimate's variance is many times its square: thousands of estimates
    "full": HarnessSize("full", study="full", estimates=4000, batch=64, critic_steps=2000),
    "demo": HarnessSize("demo", study="demo", estimates=1000, batch=64, critic_steps=1000),
    "tiny": HarnessSize("tiny", study="tiny", estimates=20, batch=32, critic_steps=50),
}


@dataclass
class EstimatorRow(Row):
    """One estimator at one π with one critic: its estimates against the exact ∇JS_π (see `measure`)."""

    critic: str
    """"optimal" (D*) or "learned"."""
    pi: float
    estimator: str
    """A name of `ESTIMATORS`."""
    averaged_cosine: float
    batch_cosine: float
    norm_ratio: float
    relative_variance: float
    seconds: float
    """Per estimate."""
    exact_norm: float
    critic_error: float | None = None
    """Learned critics: the Q-weighted logit error against D* (`critic_report`); optimal rows have none."""
    critic_gradient_cosine: float | None = None
    """Learned critics: the cosine of the gradient the critic implies with ∇JS_π."""

    def absent(self) -> tuple[str, ...]:
        return ("critic_error", "critic_gradient_cosine") if self.critic == "optimal" else ()


@dataclass
class EstimatorsResult:
    """What `run_estimators` measured (results.json) and where it wrote it.

    Attributes:
        toy: the toy and the starting model's divergences.
        rows: one per critic, π and estimator.
        recommended: the recommended estimator's name, or None when none reaches `FAITHFUL`.
        files: results, report and figure paths by name.
    """

    toy: dict[str, Any]
    rows: list[EstimatorRow]
    recommended: str | None
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        lines = []
        for critic in CRITICS:
            rows = [r for r in self.rows if r.critic == critic]
            if rows:
                lines += [f"critic: {critic}", *aligned(*_rows(rows)), ""]
        lines.append(f"recommended: {self.recommended or 'none reaches an averaged cosine of 0.8 at every π'}")
        return "\n".join(lines)


def measure(player: GeneratorPlayer, batches: Sequence[Batch], exact: Sequence[Tensor],
            generator: torch.Generator) -> dict[str, float]:
    """Draw one gradient estimate per batch through `player` and compare them with `exact`.

    Args:
        player: the generator player (its generator in eval mode, gradients on), holding the critic it
            scores rollouts with.
        batches: the real batches (their sizes set the rollouts per estimate).
        exact: the exact gradient, one tensor per generator parameter.
        generator: the rollouts' randomness, shared by every estimate in turn.

    Returns:
        averaged_cosine, batch_cosine, norm_ratio, relative_variance, seconds (per estimate), exact_norm.
    """
    params = list(player.generator.parameters())
    target = torch.cat([t.reshape(-1).double() for t in exact])
    estimates = []
    started = time.perf_counter()
    for batch in batches:
        loss, _ = player(batch, 0, generator)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        estimates.append(torch.cat([(torch.zeros_like(w) if g is None else g).reshape(-1).double()
                                    for w, g in zip(params, grads)]))
    seconds = (time.perf_counter() - started) / len(batches)
    stacked = torch.stack(estimates)  # (M, P)
    mean = stacked.mean(0)
    squared = target.norm() ** 2
    return {"averaged_cosine": cosine([mean], [target]),
            "batch_cosine": float(torch.nn.functional.cosine_similarity(stacked, target[None], dim=1).mean()),
            "norm_ratio": float(mean.norm() / target.norm()),
            "relative_variance": float(((stacked - mean) ** 2).sum(1).mean() / squared),
            "seconds": seconds, "exact_norm": float(target.norm())}


def run_estimators(out_dir: str | Path, *, size: str | HarnessSize = "full", pis: Sequence[float] = PIS,
                   estimators: Sequence[str] = tuple(ESTIMATORS), critics: Sequence[str] = CRITICS,
                   seed: int = 0, overwrite: bool = False) -> EstimatorsResult:
    """Measure every estimator against the exact ∇JS_π on the toy; write results.json, report.md and
    estimators.png into `out_dir` (the starting model's run goes to `out_dir`/teacher_forcing).

    Args:
        out_dir: the harness's folder.
        size: a `HarnessSize`, or its name: "full", "demo" or "tiny" (`SIZES`).
        pis: class priors, each in (0, 1).
        estimators: names of `ESTIMATORS`.
        critics: "optimal" (D*) and/or "learned".
        seed: seeds the batches, rollouts and critics.
        overwrite: replace what `out_dir` holds.

    Raises:
        UserError: an unknown size, estimator or critic, a bad π, or a folder that holds something.
    """
    spec = study_size(SIZES, size)
    unknown = [name for name in estimators if name not in ESTIMATORS] + [c for c in critics if c not in CRITICS]
    if unknown:
        raise UserError(f"unknown estimator or critic {unknown[0]!r}; estimators: {', '.join(ESTIMATORS)}; "
                        f"critics: {', '.join(CRITICS)}")
    pis = sorted(dict.fromkeys(float(pi) for pi in pis))
    if not pis or not all(0 < pi < 1 for pi in pis):
        raise UserError(f"every class prior pi must be in (0, 1), got {pis}")
    out = study_folder(out_dir, overwrite)
    from seqgen.experiments import js_pi  # the study's recipes (js_pi imports this module's results)

    study = study_size(js_pi.SIZES, spec.study)
    cfg = study_config(study.toy, out / "teacher_forcing")
    toy = synthetic_distribution(cfg.data)
    print(f"estimators: teacher forcing on the toy ({toy.vocab_size} symbols, length {toy.max_length}) as the start")
    model, _ = train_run(cfg)
    model.requires_grad_(True)
    start = js_pi.measure_toy(model, toy, None)
    adversarial = from_dict(AdversarialConfig, study.toy_adversarial["objective"], "objective.")
    rng = torch.Generator().manual_seed(seed)
    real = _RealBatches(model, toy, rng)
    rows = []
    for pi in pis:
        exact = exact_js_pi_gradient(model, toy, pi)
        base = dataclasses.replace(adversarial, pi=pi, tau_schedule="constant")
        for critic_kind in critics:
            critic, extra = _critic(critic_kind, base, model, toy, spec, real, rng)
            for name in estimators:
                cfg_e = dataclasses.replace(base, **ESTIMATORS[name])
                k = cfg_e.rollouts_per_context
                batches = [real.draw(spec.batch // k) for _ in range(spec.estimates)]
                row = EstimatorRow(critic=critic_kind, pi=pi, estimator=name,
                                   **measure(GeneratorPlayer(model, critic, cfg_e, 1), batches, exact, rng), **extra)
                rows.append(row)
                print(f"  π = {pi:<5g} {critic_kind:<8} {name:<17} averaged cosine {row.averaged_cosine:+.3f}  "
                      f"per batch {row.batch_cosine:+.3f}  norm ratio {row.norm_ratio:.2f}  "
                      f"variance {row.relative_variance:.3g}")
    result = EstimatorsResult(toy={"vocab_size": toy.vocab_size, "length": toy.max_length,
                                   "start": start, "size": spec.name, "seed": seed},
                              rows=rows, recommended=recommend(rows))
    result.files = _write(result, out)
    return result


def recommend(rows: Sequence[EstimatorRow]) -> str | None:
    """Among estimators whose averaged cosine with D* reaches `FAITHFUL` at every π, the one of least
    mean relative variance; None if there is none (or no optimal-critic rows)."""
    names = dict.fromkeys(r.estimator for r in rows if r.critic == "optimal")
    faithful = {name: [r for r in rows if r.critic == "optimal" and r.estimator == name] for name in names}
    faithful = {name: rs for name, rs in faithful.items() if all(r.averaged_cosine >= FAITHFUL for r in rs)}
    if not faithful:
        return None
    return min(faithful, key=lambda name: sum(r.relative_variance for r in faithful[name]) / len(faithful[name]))


def _critic(kind: str, cfg: AdversarialConfig, model: Generator, toy: ToyDistribution, spec: HarnessSize,
            real: _RealBatches, rng: torch.Generator) -> tuple[torch.nn.Module, dict[str, float]]:
    """D* at the model, or a critic of the study's architecture trained against the fixed model (with its
    error against D* and the cosine of its implied gradient)."""
    if kind == "optimal":
        critic = OracleCritic(toy, model.vocab, cfg.pi)
        critic.track(model)
        return critic, {}
    critic = build_critic_from(cfg, model.vocab, "lm")
    player = CriticPlayer(critic, GeneratorPlayer(model, critic, cfg, 1), cfg)
    optimizer = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_lr)
    for _ in range(spec.critic_steps):
        loss, _ = player(real.draw(spec.batch), 0, rng)  # one stream, drawn in turn by every consumer
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    critic.eval().requires_grad_(False)
    return critic, critic_report(critic, model, toy, cfg.pi, cfg.generator_loss)


class _RealBatches:
    """Batches of sequences of P, drawn from its support (listed once) by its probabilities."""

    def __init__(self, model: Generator, toy: ToyDistribution, rng: torch.Generator) -> None:
        self.tokens = support_tokens(model.vocab, toy)[0]  # (N, L + 2): BOS x_1 .. x_n EOS PAD ..
        self.p = toy.enumerate()[1].float()  # (N,)
        self.pad_id, self.rng = model.vocab.pad_id, rng

    def draw(self, size: int) -> Batch:
        """`size` sequences of P as a language-model batch."""
        chosen = self.tokens[torch.multinomial(self.p, size, replacement=True, generator=self.rng)]
        return Batch(tokens=chosen, mask=chosen != self.pad_id)


# ---------------------------------------------------------------------------------------------------
# Output


COLUMNS = (("averaged_cosine", "cos(mean, ∇JS_π)", 3), ("batch_cosine", "cos per batch", 3),
           ("norm_ratio", "|mean| / |∇JS_π|", 2), ("relative_variance", "variance / |∇JS_π|²", 3),
           ("seconds", "ms per estimate", 1), ("critic_error", "critic error", 3),
           ("critic_gradient_cosine", "critic's implied cos", 3))


def _cell(row: EstimatorRow, key: str, digits: int) -> str:
    value = getattr(row, key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key == "seconds":
        return f"{1000 * value:.{digits}f}"
    if key == "relative_variance":
        return f"{value:.{digits}g}"
    return f"{value:+.{digits}f}" if "cosine" in key else f"{value:.{digits}f}"


def _rows(rows: Sequence[EstimatorRow]) -> tuple[list[str], list[list[str]]]:
    learned = any(r.critic != "optimal" for r in rows)
    columns = [c for c in COLUMNS if learned or not c[0].startswith("critic")]
    header = ["π", "estimator", *(title for _, title, _ in columns)]
    return header, [[f"{r.pi:g}", r.estimator, *(_cell(r, key, d) for key, _, d in columns)] for r in rows]


def _write(result: EstimatorsResult, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"results": out / "results.json", "report": out / "report.md", "figure": out / "estimators.png"}
    write_results(files["results"], {"toy": result.toy, "rows": result.rows, "recommended": result.recommended})
    _plot(result.rows, files["figure"])
    start = result.toy["start"]
    lines = ["# Generator gradient estimators against the exact ∇JS_π", "",
             (f"Toy P: {result.toy['vocab_size']} symbols, length {result.toy['length']}; the starting model is "
              f"the toy study's teacher-forcing run (KL[P‖Q] = {start['kl_p_q']:.4f}, KL[Q‖P] = "
              f"{start['kl_q_p']:.4f}). Each row: independent estimates of the minimax generator loss's "
              "gradient through the training code's generator player, compared with the exact gradient of "
              "JS_π summed over the support. `optimal`: the critic is D*, so only the estimator errs; "
              "`learned`: a CNN critic trained against the starting model, whose own error against D* "
              "and implied gradient are reported beside it."), ""]
    for critic in CRITICS:
        rows = [r for r in result.rows if r.critic == critic]
        if rows:
            lines += [f"## Critic: {critic}", "", markdown_table(*_rows(rows)), ""]
    lines += ["## Recommendation", "",
              (f"`{result.recommended}`: its averaged cosine with ∇JS_π reaches {FAITHFUL} at every π with D*, "
               "with the least variance among those that do." if result.recommended else
               f"No estimator reaches an averaged cosine of {FAITHFUL} at every π with D*."), "",
              "![estimators](estimators.png)", ""]
    files["report"].write_text("\n".join(lines), encoding="utf-8")
    return files


def _plot(rows: Sequence[EstimatorRow], path: Path) -> None:
    """Averaged cosine and relative variance against π, one line per estimator, a column per critic."""
    critics = [c for c in CRITICS if any(r.critic == c for r in rows)]
    fig = Figure(figsize=(5.2 * len(critics), 7.2))
    for j, critic in enumerate(critics):
        top = fig.add_subplot(2, len(critics), j + 1)
        bottom = fig.add_subplot(2, len(critics), len(critics) + j + 1)
        for name in dict.fromkeys(r.estimator for r in rows):
            points = sorted((r.pi, r.averaged_cosine, r.relative_variance) for r in rows
                            if r.critic == critic and r.estimator == name)
            if points:
                pis, cosines, variances = zip(*points)
                top.plot(pis, cosines, marker="o", label=name)
                bottom.plot(pis, variances, marker="o", label=name)
        top.axhline(FAITHFUL, color="0.6", linestyle=":")
        top.set_ylim(-1.05, 1.05)
        top.set_title(f"critic: {critic}")
        top.set_ylabel("cosine of averaged estimate with ∇JS_π")
        bottom.set_yscale("log")
        bottom.set_xlabel("π")
        bottom.set_ylabel("variance of one estimate / |∇JS_π|²")
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
