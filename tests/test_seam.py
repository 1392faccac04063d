"""The objective seam: an objective written outside the package, registered with one line in
`seqgen.objectives.OBJECTIVES`, trains end to end through the CLI with nothing else to change: its
recipe keys are checked, its metrics logged under its players' namespaces, each player's rate logged,
and its exports written beside the model.

Two objectives live in a module written to a temporary folder:

- `focal`: the focal loss (Lin et al. 2017) on the next token, mean over target tokens of
  (1 - p_t)^γ · (-log p_t), a genuinely different loss with one key, γ ≥ 0 (γ = 0 is teacher forcing,
  which the test checks to the bit). It exports a module of statistics it kept while training.
- `duo`: two players: a scalar baseline regressed on the generator's per-sequence NLL (its own
  constant rate, two updates per step and one warm-up update), then the generator by teacher forcing.
"""

import importlib
import json
import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqgen.objectives import OBJECTIVES
from seqgen.tracking import read_log

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.max_steps=4", "train.log_every=1", "train.eval_every=4", "train.save_every=4",
        "train.num_samples=0", "train.tensorboard=false", "eval.max_batches=1"]

MODULE = '''
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from seqgen.config import ObjectiveConfig
from seqgen.errors import UserError
from seqgen.objectives.base import Objective, Player


@dataclass
class FocalConfig(ObjectiveConfig):
    """Focal loss on the next token."""

    name: Literal["focal"] = "focal"
    gamma: float = 2.0
    """The focusing exponent γ >= 0 (0: teacher forcing)."""

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise UserError(f"objective.gamma must be >= 0, got {self.gamma}")

    def check_run(self, run) -> None:
        if run.task != "lm":
            raise UserError(f"objective focal trains language models only, got task {run.task}")


class Stats(nn.Module):
    """What the focal objective saw while training (exported as focal_stats.safetensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("tokens", torch.zeros((), dtype=torch.long))


class Focal(nn.Module, Objective):
    def __init__(self, generator, cfg, run) -> None:
        super().__init__()
        self.generator, self.cfg, self.stats = generator, cfg, Stats()

    def players(self):
        return [Player(self)]

    def forward(self, batch, step, noise):
        logits = self.generator(batch.inputs, self.generator.encode(batch.context))
        log_p = logits.float().log_softmax(-1).gather(-1, batch.targets[..., None]).squeeze(-1)  # (B, T)
        mask = batch.target_mask
        focal = (1 - log_p.exp()).pow(self.cfg.gamma) if self.cfg.gamma else torch.ones_like(log_p)
        tokens = mask.sum().clamp(min=1)
        loss = (focal * -log_p * mask).sum() / tokens
        if self.training:
            self.stats.updates += 1
            self.stats.tokens += mask.sum()
        return loss, {"loss": loss.detach(), "nll": ((-log_p * mask).sum() / tokens).detach(),
                      "focal_weight": ((focal * mask).sum() / tokens).detach()}

    def exports(self):
        return {"focal_stats": self.stats}


@dataclass
class DuoConfig(ObjectiveConfig):
    name: Literal["duo"] = "duo"
    baseline_lr: float = 0.05


class Baseline(nn.Module):
    """A scalar b regressed on the generator's per-sequence NLL (held, not trained, by this player)."""

    def __init__(self, generator) -> None:
        super().__init__()
        self._generator = (generator,)  # not a submodule: its parameters belong to the other player
        self.value = nn.Parameter(torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, batch, step, noise):
        generator = self._generator[0]
        with torch.no_grad():
            logits = generator(batch.inputs, generator.encode(batch.context)).float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch.targets, reduction="none")
            per_sequence = (nll * batch.target_mask).sum(1)  # (B,)
        self.updates += 1
        loss = ((self.value - per_sequence) ** 2).mean()
        return loss, {"loss": loss.detach(), "value": self.value.detach().clone()}


class TeacherForced(nn.Module):
    def __init__(self, generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, batch, step, noise):
        logits = self.generator(batch.inputs, self.generator.encode(batch.context)).float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch.targets, reduction="none")
        loss = (nll * batch.target_mask).sum() / batch.target_mask.sum()
        return loss, {"loss": loss.detach()}


class Duo(Objective):
    def __init__(self, generator, cfg, run) -> None:
        self.generator, self.cfg = generator, cfg
        self.baseline = Baseline(generator)
        self.teacher_forced = TeacherForced(generator)

    def players(self):
        return [Player(self.baseline, namespace="baseline", lr=self.cfg.baseline_lr, repeats=2, warmup=1),
                Player(self.teacher_forced)]

    def weight(self, batch):
        return len(batch)

    def exports(self):
        return {"baseline": self.baseline}
'''


@pytest.fixture
def mine(tmp_path, monkeypatch):
    """The temporary module, imported, with its objectives registered (one line each) for this test only."""
    monkeypatch.chdir(ROOT)
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "seqgen_test_objectives.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("seqgen_test_objectives")
    monkeypatch.setitem(OBJECTIVES, "focal", (module.Focal, module.FocalConfig))
    monkeypatch.setitem(OBJECTIVES, "duo", (module.Duo, module.DuoConfig))
    yield module
    sys.modules.pop("seqgen_test_objectives", None)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqgen: error: "), proc.stderr[-2000:]
    return lines[0]


def train_records(run: Path) -> list[dict]:
    return [r for r in read_log(run / "logs" / "metrics.jsonl") if "train/epoch" in r]


def test_registered_objective_trains_through_the_cli(mine, seqgen, tmp_path):
    run = tmp_path / "focal"
    proc = seqgen("train", "recipes/debug/lm.yaml", "objective.name=focal", "objective.gamma=2",
                  f"output_dir={run}", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]

    records = train_records(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for r in records:
        for key in ("train/loss", "train/nll", "train/focal_weight", "train/lr"):
            assert math.isfinite(r[key]), (key, r)
        # (1 - p)^2 < 1, so the focal loss is below the NLL it weights
        assert 0 < r["train/focal_weight"] < 1 and r["train/loss"] < r["train/nll"]
    assert records[-1]["train/nll"] < records[0]["train/nll"]  # it learns

    # Its export, beside the model, holds what the objective kept: 4 updates of 32 sentences of 9 targets.
    stats = load_file(run / "model" / "focal_stats.safetensors")
    assert int(stats["updates"]) == 4 and int(stats["tokens"]) == 4 * 32 * 9
    assert (run / "model" / "model.safetensors").is_file()
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    assert "name: focal" in (run / "recipe.yaml").read_text()


def test_registered_objective_at_gamma_zero_is_teacher_forcing(mine, seqgen, tmp_path):
    """The seam hands the registered objective exactly what it hands a built-in one: at γ = 0 the focal
    loss is the NLL, and the run ends with teacher forcing's weights; at γ = 2 it does not."""
    weights = {}
    for name, overrides in {"tf": ["objective.name=teacher_forcing"],
                            "focal0": ["objective.name=focal", "objective.gamma=0"],
                            "focal2": ["objective.name=focal", "objective.gamma=2"]}.items():
        proc = seqgen("train", "recipes/debug/lm.yaml", *overrides, f"output_dir={tmp_path / name}", *FAST)
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights[name] = load_file(tmp_path / name / "model" / "model.safetensors")
    for key, value in weights["tf"].items():
        torch.testing.assert_close(weights["focal0"][key], value, rtol=1e-6, atol=1e-7, msg=key)
    assert any(not torch.allclose(weights["focal2"][k], v, atol=1e-4) for k, v in weights["tf"].items())


def test_registered_objective_keys_are_checked(mine, seqgen, tmp_path):
    common = ["recipes/debug/lm.yaml", "objective.name=focal", f"output_dir={tmp_path / 'run'}", *FAST]
    # A bad value, refused by the config class's own check before anything is written.
    line = one_error_line(seqgen("train", *common, "objective.gamma=-1"))
    assert "objective.gamma" in line and "-1" in line
    # A value of the wrong type, refused by the recipe's type check.
    line = one_error_line(seqgen("train", *common, "objective.gamma=steep"))
    assert "objective.gamma" in line and "float" in line
    # A key of another objective (or none): named, with the objective that was chosen.
    line = one_error_line(seqgen("train", *common, "objective.epsilon=0.5"))
    assert "objective.epsilon" in line and "objective.name=focal" in line
    line = one_error_line(seqgen("train", *common, "objective.gama=1"))
    assert "objective.gama" in line and "objective.name=focal" in line and "objective.gamma" in line
    # A check across sections (its `check_run`).
    line = one_error_line(seqgen("train", "recipes/debug/translation.yaml", "objective.name=focal",
                                 f"output_dir={tmp_path / 'run'}", *FAST))
    assert "focal" in line and "translation" in line
    assert not (tmp_path / "run").exists()

    # `seqgen check` on recipe files: one line per recipe, the bad one naming the key.
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    recipe = (ROOT / "recipes/debug/lm.yaml").read_text()
    good.write_text(recipe + "objective: {name: focal, gamma: 1.5}\n")
    bad.write_text(recipe + "objective: {name: focal, gamma: -0.5}\n")
    assert seqgen("check", good).returncode == 0
    proc = seqgen("check", good, bad)
    assert one_error_line(proc) == "seqgen: error: 1 recipe(s) failed the check"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("ok ") and lines[1].startswith("error ")
    assert str(bad) in lines[1] and "objective.gamma" in lines[1]


def test_unregistered_objective_is_refused(seqgen, tmp_path, monkeypatch):
    """Without its registry line, the name is an error naming the registered ones (and the registration
    above does not outlive its test)."""
    monkeypatch.chdir(ROOT)
    assert "focal" not in OBJECTIVES
    line = one_error_line(seqgen("train", "recipes/debug/lm.yaml", "objective.name=focal",
                                 f"output_dir={tmp_path / 'run'}", *FAST))
    assert "objective.name" in line and "teacher_forcing" in line


def test_two_player_objective_needs_nothing_more(mine, seqgen, tmp_path):
    """A second player with its own namespace, constant rate, two updates per step and a warm-up update:
    the loop updates it as declared and logs it under its namespace."""
    run = tmp_path / "duo"
    proc = seqgen("train", "recipes/debug/lm.yaml", "objective.name=duo", "objective.baseline_lr=0.05",
                  f"output_dir={run}", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]

    records = train_records(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert r["baseline/lr"] == pytest.approx(0.05)  # its own rate, constant
        assert r["train/lr"] == pytest.approx(0.01)  # the recipe's train.lr for the generator
        for key in ("baseline/loss", "baseline/value", "baseline/grad_norm", "train/loss"):
            assert math.isfinite(r[key]), (key, r)
    # b climbs towards the NLL of a sentence (~30 nats) by about the rate per Adam update.
    values = [r["baseline/value"] for r in records]
    assert values == sorted(values) and values[0] > 0

    # warm-up + repeats · steps updates, each moving b by at most the rate (Adam): so the rate used was
    # 0.05 and the updates 9 (train.lr = 0.01 or 5 updates could not bring b past 0.25).
    exported = load_file(run / "model" / "baseline.safetensors")
    assert int(exported["updates"]) == 1 + 2 * 4
    assert 0.4 < float(exported["value"]) <= 9 * 0.05 + 1e-4
    # The generator was trained too (by the second player), and evaluated.
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    assert "eval/nll" in read_log(run / "logs" / "metrics.jsonl")[-1]
