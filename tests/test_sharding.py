"""Sharded training (train.sharding=fsdp, torch's FSDP2 on gloo): two sharded processes end with the
weights of one unsharded process for every objective (of two unsharded ones for adversarial training),
sampling inside the step included; the exported
folders are whole; a killed sharded run resumes from its shards to the uninterrupted run's weights."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqgen.tracking import read_log
from tests import dist_worker

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
COMMON = ["data.batch_size=8", "train.max_steps=8", "train.eval_every=4", "train.save_every=4",
          "train.num_samples=1", "train.log_every=4", "train.tensorboard=false", "model.dropout=0.0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
ACCELERATE = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no"]

CASES = {
    "lm-rnn": ("recipes/debug/lm.yaml", []),
    "lm-gpt2": ("recipes/debug/lm_transformer.yaml", []),
    "translation-rnn": ("recipes/debug/translation.yaml", []),
    "scheduled-sampling-sequential": ("recipes/debug/lm.yaml", [
        "objective.name=scheduled_sampling", "objective.schedule=constant", "objective.epsilon=0.5",
        "objective.mode=sequential", "objective.feed=sample"]),
    "scheduled-sampling-parallel-gpt2": ("recipes/debug/lm_transformer.yaml", [
        "objective.name=scheduled_sampling", "objective.schedule=constant", "objective.epsilon=0.5",
        "objective.mode=parallel", "objective.passes=2", "objective.feed=gumbel"]),
    # Adversarial runs draw each process's rollouts as that process's own (the DDP tests check the ranks
    # agree, not that they match one process): their reference is two unsharded (DDP) processes.
    "adversarial-reinforce": ("recipes/debug/lm_adv.yaml", ["objective.critic_steps=2"]),
    "adversarial-straight-through": ("recipes/debug/lm_adv.yaml", ["objective.estimator=straight_through"]),
    "translation-adversarial-rloo": ("recipes/debug/translation.yaml", [
        "objective.name=adversarial", "objective.estimator=reinforce", "objective.baseline=rloo",
        "objective.rollouts_per_context=2", "objective.critic.hidden_dim=8"]),
}


def launch(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)


def _exported(run: Path) -> dict[str, torch.Tensor]:
    """model/'s weights and every other module the run exported beside them (NAME.*)."""
    weights = load_file(run / "model" / "model.safetensors")
    for extra in (run / "model").glob("*.safetensors"):
        if extra.name != "model.safetensors":
            weights.update({f"{extra.stem}.{k}": v for k, v in load_file(extra).items()})
    return weights


@pytest.mark.parametrize("case", list(CASES))
def test_two_sharded_processes_match_one(case, tmp_path):
    recipe, objective = CASES[case]
    two = launch([*ACCELERATE, "tests/dist_worker.py", recipe, str(tmp_path / "two"), *COMMON, *objective,
                  "train.sharding=fsdp"])
    assert two.returncode == 0, two.stderr[-3000:]
    if "adversarial" in case:
        one = launch([*ACCELERATE, "tests/dist_worker.py", recipe, str(tmp_path / "one"), *COMMON, *objective])
        assert one.returncode == 0, one.stderr[-3000:]
    else:
        dist_worker.run(str(ROOT / recipe), str(tmp_path / "one"), *COMMON, *objective)

    assert json.loads((tmp_path / "two" / "logs" / "config.json").read_text())["num_processes"] == 2
    assert (tmp_path / "two" / "checkpoints" / "step-0000008" / "shards").is_dir()  # really sharded
    rank0, rank1 = (load_file(tmp_path / "two" / f"rank{r}.safetensors") for r in (0, 1))
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    assert rank0.keys() == single.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=2e-5, rtol=1e-4, msg=f"{name} differs")
    sharded, unsharded = _exported(tmp_path / "two"), _exported(tmp_path / "one")
    assert sharded.keys() == unsharded.keys()
    for name in sharded:
        torch.testing.assert_close(sharded[name], unsharded[name], atol=2e-5, rtol=1e-4, msg=f"export: {name}")
    losses = [[r["train/loss"] for r in read_log(tmp_path / run / "logs" / "metrics.jsonl") if "train/loss" in r]
              for run in ("two", "one")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_a_killed_sharded_run_resumes_to_the_uninterrupted_weights(tmp_path):
    args = ["recipes/debug/lm_transformer.yaml", "train.max_steps=200", "train.save_every=5",
            "train.eval_every=100", "train.log_every=10", "train.num_samples=0", "train.tensorboard=false", "data.batch_size=8",
            "model.dropout=0.1", "train.sharding=fsdp"]
    train = [*ACCELERATE, "-m", "seqgen", "train"]
    full = launch([*train, *args, f"output_dir={tmp_path / 'full'}"])
    assert full.returncode == 0, full.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([*train, *args, f"output_dir={out}"], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    latest, deadline = out / "checkpoints" / "latest", time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once a few checkpoints exist, mid-step
        if latest.exists() and int(latest.read_text().strip().split("-")[1]) >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    # the launcher and its workers, which torchrun starts in sessions of their own
    os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", f"output_dir={out}"], check=False)
    proc.wait()
    while subprocess.run(["pgrep", "-f", f"output_dir={out}"], capture_output=True, check=False).returncode == 0:
        time.sleep(0.1)
    assert not (out / "model").exists(), "killed after the end of training"
    resumed = launch([*train, *args, f"output_dir={out}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step" in resumed.stdout + resumed.stderr

    a, b = _exported(tmp_path / "full"), _exported(out)
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=0, msg=f"{name} differs")


def test_a_sharded_checkpoint_is_not_resumed_unsharded(tmp_path):
    run = tmp_path / "run"
    two = launch([*ACCELERATE, "-m", "seqgen", "train", "recipes/debug/lm.yaml", f"output_dir={run}",
                  "train.max_steps=4", "train.save_every=2", "train.sharding=fsdp", "train.num_samples=0"])
    assert two.returncode == 0, two.stderr[-3000:]
    shutil.rmtree(run / "model")  # as if stopped before the export
    (run / "checkpoints" / "latest").write_text("step-0000002")
    one = launch([sys.executable, "-m", "seqgen", "train", "recipes/debug/lm.yaml", f"output_dir={run}",
                  "train.max_steps=4", "--resume"])
    assert one.returncode == 2
    assert one.stderr.strip().splitlines()[-1].endswith(
        "it holds shards (train.sharding=fsdp); resume it with train.sharding=fsdp, launched as several processes")


@pytest.mark.parametrize("objective, layers", [("teacher_forcing", 2), ("scheduled_sampling", 0)])
def test_only_objectives_that_call_each_layer_equally_often_shard_layer_by_layer(objective, layers):
    """Teacher forcing gives each GPT-2 block a unit of its own besides the root; scheduled sampling,
    whose rollouts stop at EOS after a length that differs between processes, keeps the one root unit.
    Either way a sharded player's loss and gradients are the unsharded ones (one process, gloo), before and
    after the parameters were gathered whole for an evaluation."""
    from seqgen.config import load_config
    from seqgen.data.batch import Batch, Vocab
    from seqgen.models import build_generator
    from seqgen.objectives import build_objective
    from seqgen.sharding import Sharding

    cfg = load_config(ROOT / "recipes/debug/lm_transformer.yaml",
                      [f"objective.name={objective}", "model.dropout=0.0"])
    vocab = Vocab(size=30, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    torch.manual_seed(0)
    generator = build_generator(cfg.model, vocab, cfg.task)
    tokens = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 4, 2, 0, 0]])
    batch = Batch(tokens=tokens, mask=tokens != 0)

    def loss_and_grads(call) -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(1)
        loss, _ = call(batch, 0, None)
        loss.backward()
        return loss.detach(), [p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad.clone()
                               for p in generator.parameters()]

    plain = build_objective(cfg.objective, generator)
    expected = loss_and_grads(plain.players()[0].module)
    generator.zero_grad()
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    try:
        sharded = build_objective(cfg.objective, generator)
        sharding = Sharding([p.module for p in sharded.players()], [generator], main=True,
                            layers=sharded.fixed_calls)
        assert len(sharding.layers) == layers
        got = loss_and_grads(sharding.call(0))
        with sharding.gathered():  # as an evaluation between steps: whole during, sharded again after
            assert not any(hasattr(p, "to_local") for p in generator.parameters())
            generator(tokens)
            generator(tokens[:, :3])
        assert all(hasattr(p, "to_local") for p in generator.parameters())
        generator.zero_grad()
        again = loss_and_grads(sharding.call(0))
    finally:
        torch.distributed.destroy_process_group()
    for loss, grads in (got, again):
        torch.testing.assert_close(loss, expected[0])
        for g, e in zip(grads, expected[1], strict=True):
            torch.testing.assert_close(g, e)
