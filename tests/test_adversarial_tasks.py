"""JS_π adversarial fine-tuning of the conditional tasks end to end, through the command line: a
teacher-forcing run of a shipped recipe, its adversarial recipe started from it (train.init_from),
then `seqgen eval` and `seqgen generate` on the result. Everything is shrunk by overrides to seconds."""

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqgen.cli import main
from seqgen.config import load_config
from seqgen.data.batch import Context, Vocab
from seqgen.data.images import load_pixels
from seqgen.data.synthetic.shapes import SYMBOLS, random_scene, render
from seqgen.functional import binary_entropy
from seqgen.models.critics import build_critic
from seqgen.tracking import read_log

ROOT = Path(__file__).resolve().parents[1]
STEPS = 2
# Shared by both runs of a task, so that the adversarial run's model section matches the one it starts from.
RUN = ["train.num_samples=0", "train.tensorboard=false", "train.log_every=1", "train.eval_every=100",
       "train.save_every=100", f"train.max_steps={STEPS}", "decode.beam_size=2", "decode.max_new_tokens=8",
       "model.embedding_dim=8", "model.hidden_dim=8"]
CRITIC = ["objective.critic.embedding_dim=8", "objective.critic.hidden_dim=8"]
IMAGE_SIZE = 16
pytestmark = pytest.mark.slow


@dataclass
class Task:
    name: str
    teacher_forcing: str
    adversarial: str
    overrides: list[str]


TASKS = [
    Task("captioning", "recipes/captioning/shapes_lstm.yaml", "recipes/captioning/shapes_lstm_adv.yaml",
         ["data.synthetic.num_train=32", "data.synthetic.num_validation=8", "data.synthetic.num_test=8",
          "data.batch_size=8", f"data.image_size={IMAGE_SIZE}"]),
    # The shipped recipe reads Multi30k; the debug recipe's small parallel corpus stands in for it.
    Task("translation", "recipes/translation/multi30k_lstm.yaml", "recipes/translation/multi30k_lstm_adv.yaml",
         [*(f"data.{split}=recipes/debug/data/{name}.{{lang}}"
            for split, name in (("train", "train"), ("validation", "val"), ("test", "test"))),
          "data.max_tokens=null", "data.batch_size=16", "tokenizer.vocab_size=300", "tokenizer.min_frequency=1",
          "model.num_layers=1", "train.warmup_steps=0"]),
]


def seqgen(*args) -> None:
    main([str(a) for a in args])


def write_inputs(task: str, tmp_path: Path) -> list[str]:
    """Three inputs for `seqgen generate`: image files of shapes scenes, or German sentences."""
    if task == "captioning":
        paths = []
        for i in range(3):
            path = tmp_path / f"scene{i}.png"
            render(random_scene(seed=123, index=i, image_size=32), 32).save(path)
            paths.append(str(path))
        return paths
    return (ROOT / "recipes/debug/data/test.de").read_text(encoding="utf-8").splitlines()[:3]


def critic_context(task: str, inputs: list[str]) -> Context:
    """Contexts for the exported critic: the generate inputs' images, or made-up source ids."""
    if task == "captioning":
        return Context(pixels=torch.stack([load_pixels(p, IMAGE_SIZE) for p in inputs]))
    source = torch.arange(4, 4 + 3 * 5).view(3, 5)
    return Context(source=source, source_mask=torch.ones_like(source, dtype=torch.bool))


@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_adversarial_fine_tuning_end_to_end(task, tmp_path, capsys):
    tf, adv = tmp_path / "tf", tmp_path / "adv"
    seqgen("train", task.teacher_forcing, f"output_dir={tf}", *RUN, *task.overrides)
    seqgen("train", task.adversarial, f"output_dir={adv}", f"train.init_from={tf}", *RUN, *CRITIC,
           *task.overrides)
    cfg = load_config(adv / "recipe.yaml")
    assert cfg.task == task.name and cfg.objective.name == "adversarial"
    assert cfg.objective.tf_weight > 0  # the shipped recipes keep a teacher-forcing term

    # The generator started from the teacher-forcing model and moved: a few AdamW steps of size about
    # train.lr each, far less than the distance to a fresh initialisation.
    start, end = load_file(tf / "model" / "model.safetensors"), load_file(adv / "model" / "model.safetensors")
    assert start.keys() == end.keys()
    moved = max((end[k] - start[k]).abs().max().item() for k in start)
    assert 0 < moved <= 10 * STEPS * cfg.train.lr
    assert (tf / "tokenizer.json").read_text() == (adv / "tokenizer.json").read_text()

    # The exported critic is a conditional critic of the recipe's kind, and it reads the context.
    state = load_file(adv / "model" / "critic.safetensors")
    assert any(k.startswith("context_encoder.") for k in state)
    vocab = Vocab(size=state["embeddings.0.weight"].shape[0], pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    critic = build_critic(vocab_size=vocab.size, task=task.name, **dataclasses.asdict(cfg.objective.critic))
    critic.load_state_dict(state)
    critic.eval()
    inputs = write_inputs(task.name, tmp_path)
    context = critic_context(task.name, inputs)
    tokens = torch.arange(4, 4 + 3 * 6).view(3, 6) % state["embeddings.0.weight"].shape[0]
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        same = critic(tokens, mask, context)
        swapped = critic(tokens, mask, context.select(torch.tensor([1, 2, 0])))
    assert torch.isfinite(same).all() and not torch.allclose(same, swapped)

    # Both players' metrics at every step, finite and consistent: the critic's loss is -V_π and its
    # JS_π estimate V_π + H(π) <= H(π); τ follows the recipe's exponential schedule.
    a = cfg.objective
    logs = [r for r in read_log(adv / "logs" / "metrics.jsonl") if "critic/js_pi" in r]
    assert [r["step"] for r in logs] == list(range(1, STEPS + 1))
    for n, r in enumerate(logs):
        values = {k: v for k, v in r.items() if k.startswith(("critic/", "train/"))}
        assert all(math.isfinite(v) for v in values.values()), values
        assert 0 <= r["critic/acc_real"] <= 1 and 0 <= r["critic/acc_fake"] <= 1
        assert r["critic/loss"] == pytest.approx(binary_entropy(a.pi) - r["critic/js_pi"], abs=1e-5)
        assert r["critic/js_pi"] <= binary_entropy(a.pi) + 1e-6
        assert r["critic/js_pi_over_pi"] == pytest.approx(r["critic/js_pi"] / a.pi)
        assert 0 < r["train/d_fake"] < 1 and r["train/generator_loss"] <= 0  # minimax: (1-π) E_Q log(1-D)
        assert r["train/tf_nll"] > 0
        assert r["train/tau"] == pytest.approx(a.beta_max ** (-n / STEPS))

    capsys.readouterr()
    seqgen("eval", adv, "--split", "test")
    metrics = json.loads((adv / "metrics-test.json").read_text())["metrics"]
    assert {"eval/nll", "eval/sacrebleu_bleu", "eval/sacrebleu_chrf", "eval/outputs_distinct1"} <= set(metrics)
    assert ("eval/cider_d" in metrics) == (task.name == "captioning")
    # The outputs' n-gram statistics are undefined (NaN) exactly when no output has n tokens.
    longest = metrics["eval/outputs_length_max"]
    for key, value in metrics.items():
        order = re.fullmatch(r"eval/outputs_(?:distinct|ngram_entropy)(\d)(?:_nats)?", key)
        assert math.isnan(value) == bool(order and int(order[1]) > longest), (key, value)
    assert metrics["eval/nll"] > 0 and 0 <= metrics["eval/sacrebleu_bleu"] <= 100

    capsys.readouterr()
    inputs_file = tmp_path / "inputs.txt"
    inputs_file.write_text("\n".join(inputs) + "\n", encoding="utf-8")
    seqgen("generate", adv, "--input", inputs_file, "--strategy", "greedy")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == inputs
    outputs = [line.split("\t")[1] for line in lines]
    if task.name == "captioning":
        assert all(set(output.split()) <= set(SYMBOLS) for output in outputs), outputs
