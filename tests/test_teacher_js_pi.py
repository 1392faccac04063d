"""JS_π against a teacher: the exact per-position divergence, its limits, and training through the CLI."""

import json
import math
from pathlib import Path

import pytest
import torch

from seqgen.data.batch import Batch, Vocab
from seqgen.errors import UserError
from seqgen.functional import js_pi_per_position
from seqgen.metrics.exact import js_pi, kl
from seqgen.models import build_generator
from seqgen.models.configs import RNNConfig
from seqgen.objectives import TeacherJsPi, TeacherJsPiConfig

ROOT = Path(__file__).resolve().parents[1]
VOCAB = Vocab(size=9, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def _generator(seed: int):
    torch.manual_seed(seed)
    return build_generator(RNNConfig(embedding_dim=8, hidden_dim=8), VOCAB, "lm")


def _batch() -> Batch:
    tokens = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 4, 2, 0, 0], [1, 4, 4, 4, 5, 2]])
    return Batch(tokens=tokens, mask=tokens != 0)


def test_the_per_position_divergence_is_the_exact_js_pi():
    g = torch.Generator().manual_seed(0)
    logits_p, logits_q = torch.randn(4, 7, generator=g, dtype=torch.float64), torch.randn(4, 7, generator=g,
                                                                                         dtype=torch.float64)
    for pi in (0.1, 0.5, 0.9):
        got = js_pi_per_position(logits_p.log_softmax(-1), logits_q.log_softmax(-1), pi)
        for row in range(4):
            assert got[row].item() == pytest.approx(js_pi(logits_p[row].softmax(-1), logits_q[row].softmax(-1), pi),
                                                    rel=1e-10)


@pytest.mark.parametrize("pi, limit", [(1e-4, "forward"), (1 - 1e-4, "reverse")])
def test_the_normalised_divergence_tends_to_the_two_kls(pi, limit):
    g = torch.Generator().manual_seed(1)
    log_p = torch.randn(10, generator=g, dtype=torch.float64).log_softmax(-1)
    log_q = torch.randn(10, generator=g, dtype=torch.float64).log_softmax(-1)
    normalised = js_pi_per_position(log_p, log_q, pi).item() / (pi * (1 - pi))
    expected = kl(log_p.exp(), log_q.exp()) if limit == "forward" else kl(log_q.exp(), log_p.exp())
    assert normalised == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("normalize", [True, False])
def test_the_loss_is_the_mean_divergence_over_target_positions(normalize):
    student, teacher, batch = _generator(0), _generator(1), _batch()
    cfg = TeacherJsPiConfig(teacher="unused", pi=0.3, normalize=normalize, temperature=1.5)
    loss, metrics = TeacherJsPi(student, cfg, teacher=teacher.eval())(batch, 0)
    with torch.no_grad():
        log_q = (student(batch.inputs, None) / 1.5).log_softmax(-1)
        log_p = (teacher(batch.inputs, None) / 1.5).log_softmax(-1)
    terms = [js_pi(log_p[b, t].exp(), log_q[b, t].exp(), 0.3) for b in range(len(batch))
             for t in range(batch.targets.shape[1]) if batch.target_mask[b, t]]
    mean = sum(terms) / len(terms)
    assert metrics["js_pi"].item() == pytest.approx(mean, rel=1e-5)
    assert loss.item() == pytest.approx(mean / (0.3 * 0.7) if normalize else mean, rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())  # frozen, not trained


@pytest.mark.parametrize("key, value, message", [
    ("pi", 0.0, "objective.pi must be in (0, 1)"), ("on_policy", 1.5, "objective.on_policy must be in [0, 1]"),
    ("temperature", 0.0, "objective.temperature must be positive")])
def test_settings_out_of_range_are_refused(key, value, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        TeacherJsPiConfig(**{key: value})


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    from seqgen.cli import main

    out = tmp_path_factory.mktemp("teacher") / "run"
    main(["train", str(ROOT / "recipes/debug/lm.yaml"), f"output_dir={out}", "train.max_steps=10",
          "train.num_samples=0"])
    return out


def test_a_teacher_of_another_vocabulary_or_task_is_one_line(teacher_run, tmp_path, seqgen):
    proc = seqgen("train", ROOT / "recipes/debug/lm.yaml", "objective.name=teacher_js_pi",
                  f"objective.teacher={teacher_run}", f"output_dir={tmp_path / 'student'}",
                  "data.synthetic.vocab_size=20")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "has another vocabulary (34 tokens) than the run (24 tokens)" in proc.stderr
    proc = seqgen("train", ROOT / "recipes/debug/translation.yaml", "objective.name=teacher_js_pi",
                  f"objective.teacher={teacher_run}", f"output_dir={tmp_path / 'student2'}")
    assert proc.returncode == 2 and "is a lm model; the run's task is translation" in proc.stderr


def trained_whole_and_resumed(seqgen, common: list, tmp_path) -> list[float]:
    """Train `common` (4 steps) at once and as 2 steps then --resume; assert the exported weights are equal;
    the logged JS_π of each step of the whole run."""
    from safetensors.torch import load_file

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert seqgen("train", *common, f"output_dir={whole}").returncode == 0
    assert seqgen("train", *common, f"output_dir={cut}", "train.max_steps=2").returncode == 0
    assert seqgen("train", *common, f"output_dir={cut}", "--resume").returncode == 0
    a, b = load_file(whole / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(line) for line in (whole / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [r["train/js_pi"] for r in logged if "train/js_pi" in r]


def test_on_policy_training_through_the_cli_resumes_exactly(teacher_run, tmp_path, seqgen):
    common = [ROOT / "recipes/debug/lm.yaml", "objective.name=teacher_js_pi", f"objective.teacher={teacher_run}",
              "objective.pi=0.7", "objective.on_policy=0.5", "train.max_steps=4", "train.save_every=2",
              "train.eval_every=4", "train.log_every=1", "train.num_samples=0", "model.dropout=0"]
    js = trained_whole_and_resumed(seqgen, common, tmp_path)
    assert len(js) == 4 and all(0 < v < 0.61 for v in js)  # between 0 and H(0.7)
    assert not (tmp_path / "whole" / "model" / "teacher.safetensors").exists()  # nothing trained beside the student


def test_the_oracle_teacher_is_the_oracles_own_conditionals():
    from seqgen.data.synthetic.oracle import OracleLSTM
    from seqgen.objectives.teachers import OracleTeacher

    oracle = OracleLSTM.random(vocab_size=6, hidden_dim=5, length=4, seed=0)
    vocab = Vocab(size=10, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    teacher = OracleTeacher(oracle, vocab)
    x = oracle.sample(5, seed=1)  # (5, 4) symbols
    ids = x + 4
    inputs = torch.cat([torch.full((5, 1), vocab.bos_id), ids], 1)  # BOS, 4 symbols: 5 positions
    log_p = teacher(inputs).log_softmax(-1)
    targets = torch.cat([ids, torch.full((5, 1), vocab.eos_id)], 1)
    scored = log_p.gather(-1, targets[..., None]).squeeze(-1)  # (5, 5)
    torch.testing.assert_close(scored[:, :4].sum(1).double(), oracle.log_prob(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(scored[:, 4], torch.zeros(5))  # EOS for sure after the oracle's length
    assert torch.isinf(teacher(inputs)[:, :4, :4]).all()  # specials have no mass while the oracle runs
    off = inputs.clone()
    off[0, 2] = vocab.unk_id  # a prefix P cannot produce
    assert torch.isinf(teacher(off)[0, 2:]).all() and torch.isfinite(teacher(off)[0, :2]).any(-1).all()


def test_the_data_oracle_as_teacher_trains_through_the_cli(tmp_path, seqgen):
    out = tmp_path / "run"
    proc = seqgen("train", ROOT / "recipes/debug/lm.yaml", "objective.name=teacher_js_pi", "objective.teacher=data",
                  "objective.on_policy=0.5", "train.max_steps=30", "train.log_every=10", "train.eval_every=30",
                  "train.num_samples=0", f"output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    js = [json.loads(line)["train/js_pi"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()
          if "train/js_pi" in line]
    assert len(js) == 3 and js[-1] < js[0]  # the student moves toward the known P
    refused = seqgen("train", ROOT / "recipes/debug/translation.yaml", "objective.name=teacher_js_pi",
                     "objective.teacher=data", f"output_dir={tmp_path / 'other'}")
    assert refused.returncode == 2 and "objective.teacher=data needs data.source=toy or oracle" in refused.stderr


@pytest.mark.parametrize("kind", ["markov", "joint"])
def test_the_toy_teacher_is_the_toys_own_conditionals(kind):
    from seqgen.data.synthetic.toy import ToyDistribution
    from seqgen.objectives.teachers import ToyTeacher

    toy = ToyDistribution(vocab_size=3, length=3, kind=kind, seed=2)
    vocab = Vocab(size=7, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    teacher = ToyTeacher(toy, vocab)
    seqs, probs = toy.enumerate()
    for seq, prob in zip(seqs, probs.tolist()):
        ids = [4 + x for x in seq]
        inputs = torch.tensor([[vocab.bos_id, *ids]])
        log_p = teacher(inputs).log_softmax(-1)[0]  # (len + 1, V)
        targets = [*ids, vocab.eos_id]
        total = sum(log_p[t, target].item() for t, target in enumerate(targets))
        assert total == pytest.approx(math.log(prob), abs=1e-5)
    off = torch.tensor([[vocab.bos_id, vocab.unk_id, 4]])
    assert torch.isinf(teacher(off)[0, 1:]).all()  # no conditional after a prefix P cannot produce


# A `transformers` model folder as the teacher: a tiny GPT-2 saved with `save_pretrained`, no seqgen files.

DEBUG_VOCAB = Vocab(size=34, pad_id=0, bos_id=1, eos_id=2, unk_id=3)  # recipes/debug/lm_transformer.yaml's


def _gpt2_folder(folder: Path, vocab_size: int, seed: int = 0):
    """A tiny GPT-2 of `vocab_size` tokens saved into `folder` with `save_pretrained`; the model, in eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=16, n_layer=1, n_head=2, n_positions=16))
    model.eval().save_pretrained(folder)
    return model


def _transformer_student(vocab: Vocab):
    from seqgen.models.configs import TransformerConfig

    torch.manual_seed(0)
    return build_generator(TransformerConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                                             max_positions=16), vocab, "lm")


def test_a_transformers_teacher_is_the_models_own_distribution(tmp_path):
    from seqgen.objectives.teachers import load_teacher

    model = _gpt2_folder(tmp_path, DEBUG_VOCAB.size)
    teacher = load_teacher(str(tmp_path), _transformer_student(DEBUG_VOCAB), "lm")
    inputs = torch.randint(4, DEBUG_VOCAB.size, (3, 9), generator=torch.Generator().manual_seed(1))
    inputs[:, 0] = DEBUG_VOCAB.bos_id
    with torch.no_grad():
        expected = model(input_ids=inputs).logits.log_softmax(-1)  # (3, 9, 34)
        got = teacher(inputs, teacher.encode(None)).log_softmax(-1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_a_transformers_teacher_gives_no_mass_to_the_special_tokens_added_to_its_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from seqgen.data.tokenizer import load_tokenizer
    from seqgen.objectives.teachers import load_teacher

    # a tokenizer without PAD, as GPT-2's: seqgen appends <pad> (id 13), which the model has no output for
    words = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: 3 + i for i, w in enumerate("abcdefghij")}}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(tmp_path)
    model = _gpt2_folder(tmp_path, len(words))
    _, vocab = load_tokenizer(tmp_path)
    assert vocab.size == 14 and vocab.pad_id == 13
    teacher = load_teacher(str(tmp_path), _transformer_student(vocab), "lm")
    inputs = torch.tensor([[1, 4, 5, 6, 2, 13, 13], [1, 7, 13, 8, 9, 2, 13]])  # PAD inside the second prefix
    logits = teacher(inputs)  # (2, 7, 14)
    with torch.no_grad():
        expected = model(input_ids=inputs.clamp(max=12)).logits.log_softmax(-1)
    torch.testing.assert_close(logits[0, :5].log_softmax(-1)[..., :13], expected[0, :5], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[1, :2].log_softmax(-1)[..., :13], expected[1, :2], rtol=1e-5, atol=1e-5)
    assert torch.isinf(logits[:, :, 13]).all()  # no mass on the token it never learnt
    assert torch.isinf(logits[0, 5:]).all() and torch.isinf(logits[1, 2:]).all()  # no conditional after it


def test_a_transformers_teacher_of_another_vocabulary_or_task_is_refused(tmp_path):
    from transformers import BartConfig, BartForConditionalGeneration

    from seqgen.data.tokenizer import fixed_tokenizer
    from seqgen.objectives.teachers import load_teacher

    student = _transformer_student(DEBUG_VOCAB)
    _gpt2_folder(tmp_path / "wider", 40)
    with pytest.raises(UserError, match="is a transformers model of 40 tokens; the run's vocabulary has 34"):
        load_teacher(str(tmp_path / "wider"), student, "lm")
    _gpt2_folder(tmp_path / "tokenized", 34)  # the right size, but its tokenizer is another vocabulary
    fixed_tokenizer([f"w{i}" for i in range(20)]).save_pretrained(tmp_path / "tokenized")
    with pytest.raises(UserError, match=r"has another vocabulary \(24 tokens\) than the run \(34 tokens\)"):
        load_teacher(str(tmp_path / "tokenized"), student, "lm")
    BartForConditionalGeneration(BartConfig(vocab_size=34, d_model=16, encoder_layers=1, decoder_layers=1,
                                            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                                            decoder_ffn_dim=16)).save_pretrained(tmp_path / "bart")
    with pytest.raises(UserError, match="is a translation model; the run's task is lm"):
        load_teacher(str(tmp_path / "bart"), student, "lm")


def test_a_transformers_teacher_trains_the_debug_transformer_through_the_cli(tmp_path, seqgen):
    teacher = tmp_path / "gpt2"
    _gpt2_folder(teacher, DEBUG_VOCAB.size)
    out = tmp_path / "run"
    proc = seqgen("train", ROOT / "recipes/debug/lm_transformer.yaml", "objective.name=teacher_js_pi",
                  f"objective.teacher={teacher}", "objective.on_policy=0.5", "train.max_steps=1", "train.log_every=1",
                  "train.eval_every=1", "train.num_samples=0", f"output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    js = [json.loads(line)["train/js_pi"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()
          if "train/js_pi" in line]
    assert len(js) == 1 and 0 < js[0] < math.log(2)  # JS_0.5 is at most H(0.5)
    assert (out / "model" / "model.safetensors").is_file()


def test_a_transformers_teacher_of_another_size_is_one_line_through_the_cli(tmp_path, seqgen):
    teacher = tmp_path / "gpt2"
    _gpt2_folder(teacher, 40)
    proc = seqgen("train", ROOT / "recipes/debug/lm_transformer.yaml", "objective.name=teacher_js_pi",
                  f"objective.teacher={teacher}", f"output_dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is a transformers model of 40 tokens; the run's vocabulary has 34" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("task", ["translation", "captioning"])
def test_conditional_tasks_train_against_a_teacher_and_resume_exactly(task, tmp_path, seqgen):
    recipe = ROOT / f"recipes/debug/{task}.yaml"
    fast = ["train.num_samples=0", "train.log_every=1", "model.dropout=0"]
    teacher = tmp_path / "teacher"
    assert seqgen("train", recipe, f"output_dir={teacher}", "train.max_steps=4", "train.eval_every=4",
                  *fast).returncode == 0
    common = [recipe, "objective.name=teacher_js_pi", f"objective.teacher={teacher}", "objective.pi=0.3",
              "objective.on_policy=0.5", "train.max_steps=4", "train.save_every=2", "train.eval_every=4",
              "train.export=last", *fast]  # the cut run also evaluates at its first end, which may pick step 2
    js = trained_whole_and_resumed(seqgen, common, tmp_path)
    assert len(js) == 4 and all(0 < v < 0.62 for v in js)  # between 0 and H(0.3) = 0.611 nats
