"""The training loop's invariances and its checkpoints."""

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

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


def test_early_stopping_and_best_checkpoint(tmp_path):
    """Training lowers the validation NLL, so with best_mode max nothing improves after the first
    evaluation: patience 2 stops the run at the third evaluation, and the best checkpoint (the first)
    survives pruning."""
    (tmp_path / "train.txt").write_text("a b c\nb c d\nc d e a\n" * 4)
    cfg = load_config(None, [f"data.train={tmp_path / 'train.txt'}", f"data.validation={tmp_path / 'train.txt'}",
                             "data.source=text", f"output_dir={tmp_path / 'run'}", "train.lr=0.01",
                             "train.max_steps=100", "train.eval_every=2", "train.save_every=2",
                             "train.keep_last=1", "train.early_stopping_patience=2", "train.num_samples=0",
                             "train.best_metric=eval/nll", "train.best_mode=max",
                             "model.embedding_dim=8", "model.hidden_dim=8", "data.batch_size=4"])
    train(cfg)
    evaluations = [r for r in read_log(tmp_path / "run" / "logs" / "metrics.jsonl") if "eval/nll" in r]
    assert [r["step"] for r in evaluations] == [2, 4, 6]
    nll = [r["eval/nll"] for r in evaluations]
    assert nll[0] > nll[1] > nll[2]  # the premise: no later evaluation is better under best_mode max
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-0000002", "step-0000006"]
    assert (checkpoints / "latest").read_text() == "step-0000006"
