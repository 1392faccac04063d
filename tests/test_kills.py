"""A run stopped at any phase resumes to a complete, exported run equal to the uninterrupted one.

Each phase is reached in-process and ended by an exception that nothing in seqgen catches (as a kill
would end it: files half-written, nothing cleaned up but the run folder's lock, which the system
releases for a killed process too); then `--resume` runs to the end.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import seqgen.checkpoints
import seqgen.run_folder
import seqgen.train
from seqgen.config import load_config
from seqgen.train import train

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "debug" / "lm.yaml"
SETTINGS = ["train.max_steps=6", "train.save_every=2", "train.eval_every=3", "train.log_every=1",
            "train.num_samples=0", "model.dropout=0.2"]


class Killed(BaseException):
    """The end of the process, as far as the run can tell."""


def on_call(target, name: str, when, monkeypatch, after: bool = False) -> None:
    """Replace target.name by a version that raises Killed on the call where `when(*args)` first holds
    (before the real call, or after it when `after`)."""
    real = getattr(target, name)

    def wrapped(*args, **kwargs):
        if not when(*args, **kwargs):
            return real(*args, **kwargs)
        monkeypatch.setattr(target, name, real)  # once
        if after:
            real(*args, **kwargs)
        raise Killed(name)

    monkeypatch.setattr(target, name, wrapped)


def nth(n: int):
    calls = []

    def when(*args, **kwargs):
        calls.append(1)
        return len(calls) == n
    return when


def phases() -> dict:
    """Each phase: where to stop the run (fresh call counters for every test)."""
    return {
        "before the first checkpoint": (seqgen.checkpoints.Checkpoints, "save", nth(1), False),
        "writing a checkpoint, before its rename": (seqgen.checkpoints, "usual_permissions", nth(2), False),
        "after a checkpoint's rename, before latest points at it": (seqgen.checkpoints, "_write_atomic", nth(2), False),
        "after the best checkpoint, before best/": (seqgen.train, "export",
                                                   lambda g, t, c, d, e=None, **kw: Path(d).name == "best", False),
        "exporting the best model": (seqgen.run_folder, "save_tokenizer",
                                     lambda tok, d: Path(d).name == ".tmp-best", False),
        "after the last checkpoint, before the export": (seqgen.train, "export",
                                                         lambda g, t, c, d, e=None, **kw: Path(d).name == "model", False),
        "writing the export": (seqgen.run_folder, "save_tokenizer", lambda tok, d: Path(d).name == ".tmp-model", False),
        "after the export, before metrics.json": (seqgen.train, "export",
                                                  lambda g, t, c, d, e=None, **kw: Path(d).name == "model", True),
    }


# Training lowers the NLL: by default the best evaluation is the last one; under best_mode=max it is the
# first (step 3), and model/ is made of best/'s weights at the end.
SELECTIONS = {"best at the last step": [], "best at an earlier step": ["train.best_mode=max"]}


@pytest.fixture(scope="module", params=list(SELECTIONS))
def uninterrupted(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    train(load_config(RECIPE, [*SETTINGS, *SELECTIONS[request.param], f"output_dir={out}"]))
    return out, SELECTIONS[request.param]


@pytest.mark.parametrize("phase", list(phases()))
def test_a_run_stopped_at_any_phase_resumes_to_the_uninterrupted_result(phase, uninterrupted, tmp_path,
                                                                       monkeypatch):
    uninterrupted, selection = uninterrupted
    target, name, when, after = phases()[phase]
    cfg = load_config(RECIPE, [*SETTINGS, *selection, f"output_dir={tmp_path / 'run'}"])
    with monkeypatch.context() as patch:
        on_call(target, name, when, patch, after)
        with pytest.raises(Killed):
            train(cfg)
    train(cfg, resume=True)

    out = tmp_path / "run"
    assert json.loads((out / "metrics.json").read_text()) == json.loads((uninterrupted / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["checkpoint"]["step"] == (3 if selection else 6)
    for folder in ("model", "best"):
        ours, theirs = load_file(out / folder / "model.safetensors"), load_file(uninterrupted / folder / "model.safetensors")
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), f"{folder}/{key} differs after a stop {phase}"
    assert not list(out.rglob(".tmp-*"))  # nothing half-written is left behind
    assert logged_steps(out) == logged_steps(uninterrupted)  # each record once, as if never stopped


def logged_steps(run: Path) -> list[tuple[int, bool]]:
    records = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], "eval/nll" in r) for r in records]
