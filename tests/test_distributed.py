"""Two processes (gloo on CPU) end with identical weights, equal to one process with the same global
batch; and a run killed with SIGKILL mid-training and resumed ends with the same weights as an
uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# Same global batch (8 sentences) either way; no dropout, so both runs compute the same function.
COMMON = ["data.batch_size=8", "train.max_steps=12", "train.eval_every=12", "train.save_every=12",
          "train.num_samples=0", "train.log_every=4"]


def launch(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, **kw)


@pytest.mark.parametrize("recipe", ["recipes/debug/lm.yaml", "recipes/debug/translation.yaml"])
def test_two_processes_match_one(recipe, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no",
                  "tests/dist_worker.py", recipe, str(tmp_path / "two"), *COMMON])
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch([sys.executable, "tests/dist_worker.py", recipe, str(tmp_path / "one"), *COMMON])
    assert one.returncode == 0, one.stderr[-3000:]

    rank0, rank1 = (load_file(tmp_path / "two" / f"rank{r}.safetensors") for r in (0, 1))
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    # A real 2-process run, not two lone processes that happen to agree.
    assert json.loads((tmp_path / "two" / "logs" / "config.json").read_text())["num_processes"] == 2
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=2e-5, rtol=1e-4, msg=f"{name} differs")


@pytest.mark.parametrize("recipe, estimator", [
    ("recipes/debug/lm_adv.yaml", ["objective.adversarial.estimator=reinforce"]),
    ("recipes/debug/lm_adv.yaml", ["objective.adversarial.estimator=straight_through"]),
    ("recipes/debug/lm_adv.yaml", ["objective.adversarial.estimator=rebar"]),
    ("recipes/debug/translation.yaml", ["objective.adversarial.estimator=reinforce",
                                        "objective.adversarial.baseline=rloo",
                                        "objective.adversarial.rollouts_per_context=2"]),
], ids=["lm-reinforce", "lm-straight-through", "lm-rebar", "translation-reinforce-rloo"])
def test_two_processes_agree_on_both_adversarial_players(recipe, estimator, tmp_path):
    """Each process draws its own rollouts, yet both players' weights stay identical across processes."""
    accelerate = Path(sys.executable).with_name("accelerate")
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "tests/dist_worker.py", recipe,
                  str(tmp_path), "data.batch_size=8", "train.max_steps=4", "train.eval_every=4",
                  "train.save_every=4", "train.num_samples=0", "train.tensorboard=false",
                  "objective.name=adversarial", "objective.adversarial.critic_steps=2",
                  "objective.adversarial.critic_hidden_dim=8", "objective.adversarial.spectral_norm=true",
                  "objective.adversarial.tf_weight=0.1", "model.dropout=0.1", *estimator])
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "logs" / "config.json").read_text())["num_processes"] == 2
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert any(k.startswith("critic.") for k in rank0) and rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
    # The critic exported by rank 0 is the one both ranks hold.
    exported = load_file(tmp_path / "model" / "critic.safetensors")
    assert all(torch.equal(v, rank0[f"critic.{k}"]) for k, v in exported.items())


def test_sigkill_and_resume_matches_uninterrupted(tmp_path):
    overrides = ["train.max_steps=150", "train.save_every=3", "train.eval_every=50", "train.log_every=10",
                 "train.num_samples=0", "model.dropout=0.2", "data.batch_size=16"]
    base = [sys.executable, "-m", "seqgen", "train", "recipes/debug/lm.yaml"]
    full = launch(base + [f"output_dir={tmp_path / 'full'}", *overrides])
    assert full.returncode == 0, full.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(base + [f"output_dir={out}", *overrides], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 300
    # Kill once a few checkpoints exist, at whatever moment the process is in (often mid-save).
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and int(latest.read_text().strip().split("-")[1]) >= 30:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest.read_text().strip()
    assert not (out / "model").exists()

    resumed = launch(base + [f"output_dir={out}", *overrides, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from step {int(killed_at.split('-')[1])}" in resumed.stdout + resumed.stderr
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(out / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resume"


@pytest.mark.parametrize("recipe", ["recipes/debug/lm.yaml", "recipes/debug/translation.yaml"])
def test_two_process_evaluation_equals_one_process(recipe, tmp_path):
    """Likelihood, oracle samples, decoding and the two-sample test, sharded and gathered."""
    run = tmp_path / "run"
    trained = launch([sys.executable, "-m", "seqgen", "train", recipe, f"output_dir={run}", "train.max_steps=20",
                      "train.num_samples=0", "train.tensorboard=false"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    accelerate = Path(sys.executable).with_name("accelerate")
    evaluation = ["-m", "seqgen", "eval", str(run), "--two-sample", "eval.num_samples=1100"]
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", *evaluation,
                  "--out", str(tmp_path / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    assert "work shared by 2 processes" in two.stdout
    one = launch([sys.executable, *evaluation, "--out", str(tmp_path / "one.json")])
    assert one.returncode == 0, one.stderr[-3000:]
    two_metrics = json.loads((tmp_path / "two.json").read_text())
    assert two_metrics == json.loads((tmp_path / "one.json").read_text())
    assert len(two_metrics["metrics"]) > 8
