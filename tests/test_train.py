"""The training loop's invariances and its checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from seqgen.checkpoints import Checkpoints, TrainerState
from seqgen.config import load_config
from seqgen.tracking import read_log
from seqgen.train import train


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    """8 sentences x 1 step == 1 sentence x 8 accumulated micro-batches. The sentences differ in
    length, so this holds only because each micro-batch is weighted by its share of the step's tokens."""
    words = "the a dog cat runs sleeps in on park grass red big".split()
    rng = torch.Generator().manual_seed(0)
    lines = [" ".join(words[int(i)] for i in torch.randint(len(words), (int(n),), generator=rng))
             for n in torch.randint(1, 12, (64,), generator=rng)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    common = [f"data.train={tmp_path / 'train.txt'}", "data.source=text", "data.shuffle=false",
              "train.max_steps=3", "train.eval_every=100", "train.save_every=100", "train.num_samples=0",
              "model.embedding_dim=16", "model.hidden_dim=16", "model.dropout=0.0", "train.lr=0.01"]
    big, _ = train(load_config(None, [*common, f"output_dir={tmp_path / 'big'}", "data.batch_size=8"]))
    small, _ = train(load_config(None, [*common, f"output_dir={tmp_path / 'small'}", "data.batch_size=1",
                                        "train.gradient_accumulation_steps=8"]))
    for (name, a), (_, b) in zip(big.state_dict().items(), small.state_dict().items()):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5, msg=f"{name} differs")


def test_interrupted_checkpoint_write_keeps_the_latest_loadable(tmp_path, monkeypatch):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    checkpoints = Checkpoints(tmp_path, keep_last=2)
    checkpoints.save(accelerator, TrainerState(step=1, epoch=0, batch_in_epoch=1))
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    real_save = accelerator.save_state

    def dies_half_way(output_dir, **kw):
        (Path(output_dir) / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(accelerator, "save_state", dies_half_way)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(accelerator, TrainerState(step=2))
    assert checkpoints.latest().name == "step-0000001"
    state = checkpoints.load(accelerator, checkpoints.latest())
    assert state.step == 1 and state.batch_in_epoch == 1
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())

    # The next complete saves clear the leftover, move `latest`, and keep the last 2 plus the best.
    monkeypatch.setattr(accelerator, "save_state", real_save)
    for step in (2, 3, 4):
        checkpoints.save(accelerator, TrainerState(step=step, best_step=1))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-0000001", "step-0000003", "step-0000004"]
    assert checkpoints.latest().name == "step-0000004"


def _early_stopping_config(tmp_path: Path, name: str, *extra: str):
    """Training lowers the validation NLL, so with best_mode max nothing improves after the first
    evaluation (step 2): patience 2 stops the run at the third evaluation (step 6)."""
    (tmp_path / "train.txt").write_text("a b c\nb c d\nc d e a\n" * 4)
    return load_config(None, [f"data.train={tmp_path / 'train.txt'}", f"data.validation={tmp_path / 'train.txt'}",
                              "data.source=text", f"output_dir={tmp_path / name}", "train.lr=0.01",
                              "train.max_steps=100", "train.eval_every=2", "train.save_every=2",
                              "train.keep_last=1", "train.early_stopping_patience=2", "train.num_samples=0",
                              "train.best_metric=eval/nll", "train.best_mode=max",
                              "model.embedding_dim=8", "model.hidden_dim=8", "data.batch_size=4", *extra])


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_and_best_checkpoint(tmp_path, capsys):
    """The run stops at the third evaluation and says why; the best checkpoint (the first) survives
    pruning, model/ holds its weights (those of best/), and metrics.json names it."""
    cfg = _early_stopping_config(tmp_path, "run")
    _, returned = train(cfg)
    printed = capsys.readouterr().out
    assert ("early stopping at step 6: eval/nll did not improve in 2 evaluations "
            "(train.early_stopping_patience=2); best eval/nll = ") in printed and " at step 2" in printed
    assert "model written to" in printed and "step 2, the best eval/nll" in printed
    run = tmp_path / "run"
    assert _same(_weights(run / "model"), _weights(run / "best"))
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["step"] == 6 and summary["stopped_early"] is True and summary["best_step"] == 2
    assert summary["checkpoint"] == {"path": "model", "step": 2, "export": "best"}
    assert json.loads((run / "model" / "seqgen.json").read_text())["step"] == 2
    evaluations = [r for r in read_log(run / "logs" / "metrics.jsonl") if "eval/nll" in r]
    assert summary["eval/nll"] == evaluations[0]["eval/nll"] == returned["eval/nll"]  # the exported step's
    assert summary["scored"]["split"] == "validation" and summary["scored"]["num_sequences"] == 12
    evaluations = [r for r in read_log(tmp_path / "run" / "logs" / "metrics.jsonl") if "eval/nll" in r]
    assert [r["step"] for r in evaluations] == [2, 4, 6]
    nll = [r["eval/nll"] for r in evaluations]
    assert nll[0] > nll[1] > nll[2]  # the premise: no later evaluation is better under best_mode max
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-0000002", "step-0000006"]
    assert (checkpoints / "latest").read_text() == "step-0000006"


def test_export_last_keeps_the_last_step_in_model(tmp_path, capsys):
    """train.export=last: model/ holds the weights of the step the run stopped at, not best/'s."""
    train(_early_stopping_config(tmp_path, "run", "train.export=last"))
    run = tmp_path / "run"
    assert "model written to" in capsys.readouterr().out
    assert not _same(_weights(run / "model"), _weights(run / "best"))
    # the last step's: the checkpoint holds the objective's module (the generator under `generator.`),
    # tied weights once
    last = {k.removeprefix("generator."): v for k, v in _weights(run / "checkpoints" / "step-0000006").items()}
    exported = _weights(run / "model")
    assert last.keys() <= exported.keys() and _same(last, {k: exported[k] for k in last})
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["checkpoint"] == {"path": "model", "step": 6, "export": "last"}
    assert summary["stopped_early"] is True and summary["best_step"] == 2
    evaluations = [r for r in read_log(run / "logs" / "metrics.jsonl") if "eval/nll" in r]
    assert summary["eval/nll"] == evaluations[-1]["eval/nll"]


def test_a_run_without_validation_exports_its_last_step(tmp_path):
    (tmp_path / "train.txt").write_text("a b c\nb c d\nc d e a\n" * 4)
    train(load_config(None, [f"data.train={tmp_path / 'train.txt'}", "data.source=text", "train.max_steps=3",
                             f"output_dir={tmp_path / 'run'}", "model.embedding_dim=8", "model.hidden_dim=8"]))
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["checkpoint"] == {"path": "model", "step": 3, "export": "last"}
    assert summary["best_step"] is None and summary["stopped_early"] is False and summary["scored"] is None
    assert not (tmp_path / "run" / "best").exists()
