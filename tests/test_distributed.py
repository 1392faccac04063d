"""Two processes (gloo on CPU) end with identical weights, equal to one process with the same global
batch (teacher forcing, scheduled sampling, both adversarial players); and a run killed mid-training
and resumed ends with the same weights as an uninterrupted one (teacher forcing killed with SIGKILL,
scheduled sampling stopped after a checkpoint)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqgen.cli import main
from seqgen.processes import DEEPSPEED
from seqgen.tracking import read_log
from tests import dist_worker

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# Same global batch (8 sentences) either way; no dropout, so both runs compute the same function.
COMMON = ["data.batch_size=8", "train.max_steps=12", "train.eval_every=12", "train.save_every=12",
          "train.num_samples=0", "train.log_every=4"]


def launch(args, env=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
                          **kw)


@pytest.mark.parametrize("recipe, objective", [
    ("recipes/debug/lm.yaml", []),
    ("recipes/debug/translation.yaml", []),
    ("recipes/debug/translation.yaml", ["objective.name=weighted_likelihood", "objective.preset=tailr",
                                        "objective.gamma=0.5", "objective.min_weight=0.1"]),
], ids=["lm", "translation", "translation-tailr"])
def test_two_processes_match_one(recipe, objective, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipes' data paths are relative to the repository
    accelerate = Path(sys.executable).with_name("accelerate")
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
                  "--mixed_precision", "no", "--dynamo_backend", "no",
                  "tests/dist_worker.py", recipe, str(tmp_path / "two"), *COMMON, *objective])
    assert two.returncode == 0, two.stderr[-3000:]
    dist_worker.run(recipe, str(tmp_path / "one"), *COMMON, *objective)  # one process: this one

    rank0, rank1 = (load_file(tmp_path / "two" / f"rank{r}.safetensors") for r in (0, 1))
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    # A real 2-process run, not two lone processes that happen to agree.
    assert json.loads((tmp_path / "two" / "logs" / "config.json").read_text())["num_processes"] == 2
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=2e-5, rtol=1e-4, msg=f"{name} differs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_over_loopback_match_one_process(tmp_path):
    """2 "nodes" x 1 process each, joined over the loopback interface by `accelerate launch
    --num_machines 2` (torchrun underneath, node ranks 0 and 1), end with the weights of one process."""
    accelerate = Path(sys.executable).with_name("accelerate")
    port = str(_free_port())
    nodes = [subprocess.Popen(
        [str(accelerate), "launch", "--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank),
         "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", port,
         "--mixed_precision", "no", "--dynamo_backend", "no", "tests/dist_worker.py", "recipes/debug/lm.yaml",
         str(tmp_path / "two"), *COMMON], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}) for rank in (0, 1)]
    for rank, node in enumerate(nodes):
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, f"node {rank}: {err[-3000:]}"
    dist_worker.run("recipes/debug/lm.yaml", str(tmp_path / "one"), *COMMON)

    config = json.loads((tmp_path / "two" / "logs" / "config.json").read_text())
    assert config["num_processes"] == 2
    rank0, rank1 = (load_file(tmp_path / "two" / f"rank{r}.safetensors") for r in (0, 1))
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"nodes differ in {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=2e-5, rtol=1e-4, msg=f"{name} differs")


@pytest.mark.parametrize("recipe, estimator", [
    ("recipes/debug/lm_adv.yaml", ["objective.estimator=reinforce"]),
    ("recipes/debug/lm_adv.yaml", ["objective.estimator=straight_through"]),
    ("recipes/debug/lm_adv.yaml", ["objective.estimator=rebar"]),
    ("recipes/debug/translation.yaml", ["objective.estimator=reinforce", "objective.baseline=rloo",
                                        "objective.rollouts_per_context=2"]),
], ids=["lm-reinforce", "lm-straight-through", "lm-rebar", "translation-reinforce-rloo"])
def test_two_processes_agree_on_both_adversarial_players(recipe, estimator, tmp_path):
    """Each process draws its own rollouts, yet both players' weights stay identical across processes."""
    accelerate = Path(sys.executable).with_name("accelerate")
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "tests/dist_worker.py", recipe,
                  str(tmp_path), "data.batch_size=8", "train.max_steps=4", "train.eval_every=4",
                  "train.save_every=4", "train.num_samples=0", "train.tensorboard=false",
                  "objective.name=adversarial", "objective.critic_steps=2",
                  "objective.critic.hidden_dim=8", "objective.critic.spectral_norm=true",
                  "objective.tf_weight=0.1", "model.dropout=0.1", *estimator])
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "logs" / "config.json").read_text())["num_processes"] == 2
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert any(k.startswith("critic.") for k in rank0) and rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
    # The critic exported by rank 0 is the one both ranks hold.
    exported = load_file(tmp_path / "model" / "critic.safetensors")
    assert all(torch.equal(v, rank0[f"critic.{k}"]) for k, v in exported.items())


# Scheduled sampling with ε = 0.5 from the first step, so that about half the inputs are model tokens
# drawn from the rows' noise: two processes match one only if each draws for its rows what one
# process draws for them.
SCHEDULED_SAMPLING = ["objective.name=scheduled_sampling", "objective.schedule=constant", "objective.epsilon=0.5",
                      "train.tensorboard=false"]


MODES = {"sequential": ["objective.mode=sequential", "objective.feed=sample"],
         "parallel": ["objective.mode=parallel", "objective.passes=2", "objective.feed=gumbel"]}


@pytest.mark.parametrize("mode", list(MODES))
def test_two_process_scheduled_sampling_matches_one(mode, tmp_path):
    """The 1-process run is made in this process (the worker's `run`), which saves starting one."""
    run = [ROOT / "recipes/debug/lm.yaml", tmp_path / "two", *COMMON, *SCHEDULED_SAMPLING, *MODES[mode],
           "model.dropout=0.0"]
    accelerate = Path(sys.executable).with_name("accelerate")
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "tests/dist_worker.py", *map(str, run)])
    assert two.returncode == 0, two.stderr[-3000:]
    run[1] = tmp_path / "one"
    dist_worker.run(*map(str, run))
    check_two_match_one(tmp_path / "two", tmp_path / "one", mode)


def check_two_match_one(two: Path, one: Path, mode: str) -> None:
    assert json.loads((two / "logs" / "config.json").read_text())["num_processes"] == 2
    assert json.loads((one / "logs" / "config.json").read_text())["num_processes"] == 1
    rank0, rank1 = (load_file(two / f"rank{r}.safetensors") for r in (0, 1))
    single = load_file(one / "rank0.safetensors")
    assert rank0.keys() == single.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{mode}: ranks differ in {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=2e-5, rtol=1e-4, msg=f"{mode}: {name} differs")

    def train_logs(run):
        return [r for r in read_log(run / "logs" / "metrics.jsonl") if "train/loss" in r]

    logs_two, logs_one = train_logs(two), train_logs(one)
    assert [r["step"] for r in logs_two] == [r["step"] for r in logs_one] == [4, 8, 12]
    for a, b in zip(logs_two, logs_one):
        assert a["train/epsilon"] == b["train/epsilon"] == pytest.approx(0.5)
        assert 0.2 < b["train/model_input_fraction"] < 0.8, mode  # model tokens were really fed
        # (the fraction is a function of the coins alone; its weighting by target tokens is exact here,
        # where every sentence has the same length)
        for key in ("train/loss", "train/grad_norm", "train/model_input_fraction"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), f"{mode}: {key} at step {a['step']}"


def test_resumed_scheduled_sampling_matches_uninterrupted(tmp_path):
    """A scheduled-sampling run stopped right after its step-3 checkpoint (a copy of the uninterrupted
    run's folder as it stood then) and resumed ends with the uninterrupted run's weights and losses: the
    coins and model tokens of steps 4-6 do not depend on the process having drawn those of steps 1-3."""
    overrides = ["train.max_steps=6", "train.save_every=3", "train.eval_every=100", "train.log_every=1",
                 "train.num_samples=0", "train.tensorboard=false", "data.batch_size=16", "objective.passes=2"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    for mode in ("sequential", "parallel"):
        args = ["train", ROOT / "recipes/debug/lm_ss.yaml", *overrides, f"objective.mode={mode}", "objective.epsilon_min=0.3",
                "objective.c=0.1"]
        run_cli([*args, f"output_dir={full}", "--overwrite"])
        # The folder as a run killed after writing checkpoint 3 leaves it.
        shutil.rmtree(cut, ignore_errors=True)
        shutil.copytree(full, cut)
        shutil.rmtree(cut / "checkpoints" / "step-0000006")
        shutil.rmtree(cut / "model")
        (cut / "checkpoints" / "latest").write_text("step-0000003")
        log = cut / "logs" / "metrics.jsonl"
        log.write_text("".join(line for line in log.read_text().splitlines(keepends=True)
                               if json.loads(line)["step"] <= 3))
        run_cli([*args, f"output_dir={cut}", "--resume"])

        a = load_file(full / "model" / "model.safetensors")
        b = load_file(cut / "model" / "model.safetensors")
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=0, msg=f"{mode}: {name} differs")
        losses = [{r["step"]: r["train/loss"] for r in read_log(run / "logs" / "metrics.jsonl") if "train/loss" in r}
                  for run in (full, cut)]
        assert list(losses[0]) == list(losses[1]) == [1, 2, 3, 4, 5, 6]
        assert losses[1] == pytest.approx(losses[0], rel=1e-6), mode
        fractions = [r["train/model_input_fraction"] for r in read_log(cut / "logs" / "metrics.jsonl")
                     if "train/loss" in r and r["step"] > 3]
        assert min(fractions) > 0.1, f"{mode}: too few model tokens fed to test anything: {fractions}"


def run_cli(args):
    """`seqgen ARGS` in this process; fails the test unless it exits normally."""
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        pytest.fail(f"seqgen {' '.join(map(str, args))} exited with {e.code}")


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
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
                  "--mixed_precision", "no", "--dynamo_backend", "no", *evaluation,
                  "--out", str(tmp_path / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    assert "work shared by 2 processes" in two.stdout
    one = launch([sys.executable, *evaluation, "--out", str(tmp_path / "one.json")])
    assert one.returncode == 0, one.stderr[-3000:]
    two_metrics = json.loads((tmp_path / "two.json").read_text())
    assert two_metrics == json.loads((tmp_path / "one.json").read_text())
    assert len(two_metrics["metrics"]) > 8


def test_a_mistake_under_accelerate_launch_is_said_once(tmp_path):
    """Every process meets the same bad recipe; one of them says so (the launcher then adds its own report
    of the failed processes)."""
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "run"
    proc = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "seqgen", "train",
                   "recipes/debug/lm.yaml", "model.hidden_dim=-1", f"output_dir={out}"])
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if line.startswith("seqgen: error:")]
    assert said == ["seqgen: error: model.hidden_dim must be >= 1, got -1"]
    assert not out.exists()


def test_two_processes_match_one_against_a_teacher_on_policy(tmp_path, monkeypatch):
    """JS_π against a teacher with half the rows' prefixes sampled from the student: the coins and the
    samples are the rows' own, so 2 processes train what 1 does."""
    from seqgen.cli import main

    monkeypatch.chdir(ROOT)
    teacher = tmp_path / "teacher"
    main(["train", "recipes/debug/lm.yaml", f"output_dir={teacher}", "train.max_steps=10", "train.num_samples=0"])
    objective = ["objective.name=teacher_js_pi", f"objective.teacher={teacher}", "objective.pi=0.7",
                 "objective.on_policy=0.5", "model.dropout=0"]
    accelerate = Path(sys.executable).with_name("accelerate")
    two = launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", "0",
                  "--mixed_precision", "no", "--dynamo_backend", "no",
                  "tests/dist_worker.py", "recipes/debug/lm.yaml", str(tmp_path / "two"), *COMMON, *objective])
    assert two.returncode == 0, two.stderr[-3000:]
    dist_worker.run("recipes/debug/lm.yaml", str(tmp_path / "one"), *COMMON, *objective)
    rank0, rank1 = (load_file(tmp_path / "two" / f"rank{r}.safetensors") for r in (0, 1))
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks differ in {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=2e-5, rtol=1e-4, msg=f"{name} differs")


def test_a_deepspeed_launch_is_refused_in_one_line(tmp_path):
    """`accelerate launch --use_deepspeed --zero_stage 2` hands its processes these variables; seqgen says
    it does not run under DeepSpeed (on a CPU Accelerate would silently train replicated instead)."""
    out = tmp_path / "run"
    env = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}
    proc = launch([sys.executable, "-m", "seqgen", "train", "recipes/debug/lm.yaml", f"output_dir={out}"], env=env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"seqgen: error: {DEEPSPEED}"]
    assert "train.sharding=fsdp" in DEEPSPEED
    assert not out.exists()
