"""The rows every language-model reproduction trains from its teacher-forcing baseline, with the settings
the published methods (or seqgen's own studies) use."""

from __future__ import annotations

import math

from seqgen.reproduce.benchmark import Row, Size

ADVERSARIAL_PIS = (0.25, 0.5, 0.75)
"""The critic priors π of the JS_π adversarial rows (π = 0.5 is the GAN of SeqGAN and its successors)."""

ADVERSARIAL = {"name": "adversarial", "critic": {"kind": "cnn", "embedding_dim": 64, "hidden_dim": 64},
               "critic_lr": 1e-4, "critic_steps": 5, "generator_loss": "minimax", "estimator": "reinforce",
               "baseline": "batch"}
"""JS_π adversarial training as the estimator study recommends it: score-function gradients (REINFORCE
with the batch-mean baseline) against a learned CNN critic, 5 critic steps per generator step."""


def inverse_sigmoid_k(steps: int) -> float:
    """Steepness k of Bengio et al.'s inverse-sigmoid decay ε_i = k / (k + exp(i / k)) that passes ε = 0.5
    half way through `steps` (k·ln k = steps / 2, solved by Newton's method; at least 1)."""
    target, k = max(steps, 2) / 2, max(steps, 2) / 2
    for _ in range(50):
        k = max(1.0, k - (k * math.log(k) - target) / (math.log(k) + 1))
    return round(k, 3)


def annealed(size: Size) -> dict:
    """Scheduled sampling annealed over the size's row budget (inverse sigmoid, as Bengio et al.)."""
    steps = size.rows["train"]["max_steps"]
    return {"objective": {"name": "scheduled_sampling", "schedule": "inverse_sigmoid", "k": inverse_sigmoid_k(steps),
                          "mode": "sequential"}}


def language_model_rows(*, teacher: bool, published: dict[str, str]) -> tuple[Row, ...]:
    """Teacher forcing and every method trained from it with the size's row budget.

    Args:
        teacher: add JS_π against the data's own P (for a synthetic source whose P is known).
        published: row name to the published row it is compared with.
    """
    rows = [
        Row("teacher_forcing", "teacher forcing (MLE)", published=published.get("teacher_forcing")),
        # the control: what the rows' extra steps alone give, so that a row is read against it too
        Row("teacher_forcing_continued", "teacher forcing continued (control)", {"objective": {"name": "teacher_forcing"}}),
        Row("scheduled_sampling", "scheduled sampling, inverse sigmoid", annealed,
            published=published.get("scheduled_sampling")),
        *(Row(f"adversarial_pi{pi:g}", f"JS_π adversarial, π = {pi:g}", {"objective": {**ADVERSARIAL, "pi": pi}},
              published=published.get(f"adversarial_pi{pi:g}")) for pi in ADVERSARIAL_PIS),
        Row("mixce", "weighted likelihood, MixCE η = 0.5",
            {"objective": {"name": "weighted_likelihood", "preset": "mixce", "eta": 0.5}}),
        Row("tailr", "weighted likelihood, TaiLr γ = 0.5",
            {"objective": {"name": "weighted_likelihood", "preset": "tailr", "gamma": 0.5, "min_weight": 0.1}}),
    ]
    if teacher:
        rows.append(Row("teacher_js_pi", "JS_π against the oracle, π = 0.5",
                        {"objective": {"name": "teacher_js_pi", "teacher": "data", "pi": 0.5, "on_policy": 0.0}}))
    return tuple(rows)
