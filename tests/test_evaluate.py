"""`seqgen eval`'s sample-quality metrics per data source, and the classifier two-sample test."""

import json
import math
import random
from dataclasses import replace

import pytest
import torch

from seqgen.cli import main
from seqgen.config import load_config
from seqgen.data import load_data, load_tokenizer
from seqgen.data.sources import split_seed
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.inference import evaluate_model, run_config
from seqgen.metrics.exact import toy_metrics
from seqgen.metrics.likelihood import sequence_nll
from seqgen.metrics.oracle import nll_test
from seqgen.metrics.two_sample import two_sample_test
from seqgen.models import load_generator
from seqgen.train import _report, train
from tests.test_sweep import _write_corpus as _corpus
from tests.test_sweep import untrained_run

QUIET = ["train.eval_every=1000", "train.save_every=1000", "train.log_every=1000", "train.tensorboard=false",
         "train.num_samples=0"]
SMALL = ["model.embedding_dim=32", "model.hidden_dim=32"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Word-level text LMs (trained and untrained), a toy LM and an oracle LM."""
    tmp = tmp_path_factory.mktemp("evaluate")
    rnd = random.Random(0)
    _corpus(tmp / "train.txt", 400, rnd)
    _corpus(tmp / "test.txt", 60, rnd)
    text = ["data.source=text", f"data.train={tmp / 'train.txt'}", f"data.test={tmp / 'test.txt'}",
            "train.lr=0.01", "decode.max_new_tokens=12", *SMALL, *QUIET]
    train(load_config(None, [*text, f"output_dir={tmp / 'text'}", "train.max_steps=80"]), overwrite=True)
    untrained_run(load_config(None, [*text, f"output_dir={tmp / 'text_untrained'}"]))
    train(load_config(None, ["data.source=toy", "tokenizer.kind=fixed", "data.synthetic.vocab_size=3",
                             "data.synthetic.num_train=500", "data.synthetic.num_test=50", "train.max_steps=30",
                             f"output_dir={tmp / 'toy'}", *SMALL, *QUIET]), overwrite=True)
    train(load_config("recipes/debug/lm.yaml", [f"output_dir={tmp / 'oracle'}", "train.max_steps=30", *QUIET]),
          overwrite=True)
    return tmp


def test_text_samples_are_scored_against_the_split(runs):
    trained, _ = evaluate_model(runs / "text", split="test")
    again, _ = evaluate_model(runs / "text", split="test")
    untrained, _ = evaluate_model(runs / "text_untrained", split="test")
    m = trained.metrics
    assert m == again.metrics  # samples are seeded
    for n in (2, 3, 4, 5):
        assert 0 <= m[f"eval/bleu{n}_texygen"] <= 1 and 0 <= m[f"eval/self_bleu{n}"] <= 1
    assert m["eval/samples_distinct1"] > 0 and m["eval/samples_length_mean"] > 0
    # A trained model's samples look like the corpus; an untrained model's word salad does not.
    assert m["eval/bleu3_texygen"] > untrained.metrics["eval/bleu3_texygen"] + 0.2
    assert "eval/bleu" not in m  # every BLEU says which one it is


def test_toy_quality_is_the_exact_divergences(runs):
    result, _ = evaluate_model(runs / "toy", split="test")
    model, *_ = load_generator(runs / "toy" / "model")
    model.eval()
    cfg = load_config(runs / "toy" / "recipe.yaml")
    exact = toy_metrics(model, ToyDistribution.from_config(cfg.data.synthetic))
    for key in ("kl_p_q", "kl_q_p", "kl_q_prod_marginals", "multi_information_p", "js_pi0.5"):
        assert result.metrics[f"eval/{key}"] == pytest.approx(exact[key], rel=1e-9, abs=1e-12)


def test_oracle_quality_scores_the_split_and_the_model_samples(runs):
    result, _ = evaluate_model(runs / "oracle", split="test")
    model, *_ = load_generator(runs / "oracle" / "model")
    model.eval()
    cfg = load_config(runs / "oracle" / "recipe.yaml")
    oracle = OracleLSTM.from_config(cfg.data.synthetic)
    n = cfg.data.synthetic.num_test
    expected = nll_test(model, oracle, n, split_seed(cfg.seed, "test"))
    assert result.metrics["eval/nll_test"] == pytest.approx(expected, rel=1e-9)
    # The model's samples are worse for the oracle than its own, better than uniform ones.
    own = oracle.nll_per_token(oracle.sample(2000, seed=123))
    assert own < result.metrics["eval/nll_oracle"] < math.log(oracle.vocab_size)


def test_eval_command_flags(runs, capsys):
    out = runs / "toy_metrics.json"
    main(["eval", str(runs / "toy"), "--no-quality", "--out", str(out)])
    metrics = json.loads(out.read_text())["metrics"]
    assert "eval/nll" in metrics and "eval/kl_p_q" not in metrics
    main(["eval", str(runs / "toy"), "--two-sample", "--out", str(out), "eval.num_samples=200"])
    metrics = json.loads(out.read_text())["metrics"]
    assert "eval/kl_p_q" in metrics and 0 <= metrics["eval/two_sample_accuracy"] <= 1
    assert "two_sample_accuracy" in capsys.readouterr().out


def test_eval_file_records_the_checkpoint_the_data_and_the_samples(runs, capsys):
    out = runs / "text_metrics.json"
    main(["eval", str(runs / "text"), "--split", "test", "--out", str(out), "eval.num_samples=50"])
    saved = json.loads(out.read_text())
    assert saved["checkpoint"] == {"path": str(runs / "text" / "model"), "step": 80}
    scored = saved["scored"]
    assert scored["split"] == "test" and scored["data"] == str(runs / "test.txt")
    assert scored["num_sequences"] == 60 and scored["num_tokens"] == saved["metrics"]["eval/tokens"]
    assert scored["samples"] == {"num": 50, "strategy": "sample", "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                                 "max_new_tokens": 12}
    assert "decoding" not in scored  # a language model decodes nothing but its samples
    assert f"measured {runs / 'text' / 'model'} (step 80) on test" in capsys.readouterr().out


# --- whether a conditional model reads its context


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    """The debug GRU translator after 20 steps: by then it translates its test sentences exactly."""
    out = tmp_path_factory.mktemp("translator")
    train(load_config("recipes/debug/translation.yaml", [f"output_dir={out}", "train.max_steps=20", *QUIET]),
          overwrite=True)
    return out


@pytest.mark.parametrize("batch_size", [3, 7])  # 40 sentences: batches of 3 end with one, of 7 with 5
def test_context_gain_scores_each_target_with_the_context_half_a_batch_away(translator, batch_size):
    overrides = [f"data.batch_size={batch_size}"]
    result, _ = evaluate_model(translator, split="test", bleu=False, quality=False, overrides=overrides)
    # by hand: one example at a time, its target under its own source and under the one half a batch away
    cfg, model_dir = run_config(translator, overrides, None, "test")
    tokenizer, _ = load_tokenizer(model_dir / "tokenizer.json")
    part = load_data(cfg, tokenizer, splits=("test",)).splits["test"]
    model = load_generator(model_dir)[0].eval()
    own = other = tokens = 0.0
    sizes = []
    for batch in part.loader(cfg.data, shuffle=False, seed=cfg.seed):
        sizes.append(len(batch))
        for row in range(len(batch) if len(batch) > 1 else 0):
            example = batch.select(torch.tensor([row]))
            away = batch.select(torch.tensor([(row - len(batch) // 2) % len(batch)]))
            own += float(sequence_nll(model, example))
            other += float(sequence_nll(model, replace(example, context=away.context)))
            tokens += example.num_target_tokens
    assert sum(sizes) == 40 and (1 in sizes) == (batch_size == 3)  # a batch of one is left out
    m = result.metrics
    assert m["eval/nll_other_context"] == pytest.approx(other / tokens, rel=1e-4)
    assert m["eval/context_gain"] == pytest.approx((other - own) / tokens, rel=1e-4)
    assert m["eval/context_gain"] > 1  # here the source decides every word


def test_training_says_when_a_model_does_not_read_its_contexts(capsys):
    class Bar:
        write = staticmethod(print)

    _report(Bar(), 100, {"eval/nll": 3.5, "eval/context_gain": 0.0024}, [])
    assert "gains 0.0024 nats per token from its own contexts" in capsys.readouterr().out
    _report(Bar(), 100, {"eval/nll": 3.1, "eval/context_gain": 0.47}, [])
    _report(Bar(), 100, {"eval/nll": 3.1}, [])
    assert "gains" not in capsys.readouterr().out


# --- the two-sample test


def _sentences(rnd, n, symbols):
    return [[rnd.randrange(symbols) for _ in range(rnd.randint(3, 8))] for _ in range(n)]


def test_two_sample_test_tells_different_sources_apart():
    rnd = random.Random(0)
    real = _sentences(rnd, 600, 10)
    same = two_sample_test(real, _sentences(rnd, 600, 10), 10)
    different = two_sample_test(real, _sentences(rnd, 600, 5), 10)  # half the symbols never appear
    assert 0.4 < same["two_sample_accuracy"] < 0.6
    assert same["two_sample_js_fano_bound"] < 0.02 and same["two_sample_js_lower_bound"] < 0.05
    assert different["two_sample_accuracy"] > 0.95
    # Sentences of length ≥ 3 over half the symbols: JS_1/2 is close to log 2, and both bounds see it.
    assert 0.5 < different["two_sample_js_fano_bound"] <= math.log(2)
    assert 0.5 < different["two_sample_js_lower_bound"] <= math.log(2)
    assert different["two_sample_heldout"] == 300


def test_two_sample_test_leaves_the_global_rng_alone_and_checks_its_input():
    rnd = random.Random(1)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    two_sample_test(_sentences(rnd, 40, 4), _sentences(rnd, 40, 4), 4, max_epochs=1)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(UserError, match="at least 8"):
        two_sample_test([[1]] * 5, [[1]] * 50, 4)
    with pytest.raises(UserError, match="token ids"):
        two_sample_test([[1, 9]] * 10, [[1]] * 10, 4)
