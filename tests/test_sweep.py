"""Temperature sweeps: tables, figures, the tempered NLL, and the direction temperature moves quality in."""

import csv
import json
import math
import random
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from seqgen.config import RunConfig, load_config
from seqgen.data import load_data, load_tokenizer
from seqgen.errors import UserError
from seqgen.inference import evaluate_model
from seqgen.metrics.likelihood import nll_metrics, sequence_nll
from seqgen.models import build_generator, load_generator
from seqgen.run_folder import export, start_output_dir
from seqgen.sweep import DESCRIPTION, sweep, tempered_nll
from seqgen.train import train

QUIET = ["train.eval_every=1000", "train.save_every=1000", "train.log_every=1000", "train.tensorboard=false"]
ALPHAS = [0.5, 1.0, 3.0]


def untrained_run(cfg: RunConfig) -> None:
    """The run folder `train` would write for `cfg` before its first step: the recipe, the tokenizer and
    the freshly initialised model (a run cannot stop at step 0: train.max_steps must be positive)."""
    out = Path(cfg.output_dir)
    torch.manual_seed(cfg.seed)
    data = load_data(cfg)
    generator = build_generator(cfg.model, data.vocab, cfg.task, cfg.data.image_size)
    start_output_dir(cfg, out, data.tokenizer, Accelerator(cpu=True))
    export(generator, data.tokenizer, cfg, out / "model")


def _write_corpus(path, n, rnd):
    subjects, verbs = ["the cat", "a dog", "my friend", "the old man", "a bird"], ["sees", "likes", "eats"]
    objects = ["the ball", "a fish", "some bread", "the red car"]
    path.write_text("".join(f"{rnd.choice(subjects)} {rnd.choice(verbs)} {rnd.choice(objects)} .\n"
                            for _ in range(n)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained and an untrained oracle run (recipes/debug/lm.yaml) and a trained word-level text LM."""
    tmp = tmp_path_factory.mktemp("sweep")
    train(load_config("recipes/debug/lm.yaml", [f"output_dir={tmp / 'oracle_trained'}", "train.max_steps=150",
                                                *QUIET]), overwrite=True)
    untrained_run(load_config("recipes/debug/lm.yaml", [f"output_dir={tmp / 'oracle_untrained'}", *QUIET]))
    rnd = random.Random(0)
    _write_corpus(tmp / "train.txt", 400, rnd)
    _write_corpus(tmp / "test.txt", 50, rnd)
    train(load_config(None, ["data.source=text", f"data.train={tmp / 'train.txt'}", f"data.test={tmp / 'test.txt'}",
                             f"output_dir={tmp / 'text'}", "train.max_steps=60", "train.lr=0.01",
                             "model.embedding_dim=32", "model.hidden_dim=32", "decode.max_new_tokens=12",
                             *QUIET]), overwrite=True)
    return tmp


@pytest.fixture(scope="module")
def swept(runs):
    models = [runs / "oracle_trained", runs / "oracle_untrained", runs / "text" / "model"]
    rows = sweep(models, ALPHAS, runs / "out", num_samples=200, seed=0)
    return rows, runs / "out"


def test_tables_hold_one_row_per_model_and_alpha(swept):
    rows, out = swept
    names = ["oracle_trained", "oracle_untrained", "text/model"]
    assert [(r["model"], r["alpha"]) for r in rows] == [(m, a) for m in names for a in ALPHAS]
    assert json.loads((out / "sweep.json").read_text()) == rows
    with open(out / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["model"], float(r["alpha"])) for r in table] == [(r["model"], r["alpha"]) for r in rows]
    for row, line in zip(rows, table):
        oracle = row["data_source"] == "oracle"
        metrics = ["nll_oracle", "nll_test"] if oracle else ["bleu5_texygen", "self_bleu5", "nll_test"]
        assert set(row) == {*DESCRIPTION, *metrics}
        assert row["num_samples"] == 200 and row["split"] == "test" and row["strategy"] == "sample"
        assert row["temperature"] == pytest.approx(1 / row["alpha"])
        # which checkpoint, on which test data, how many sequences
        assert row["checkpoint_step"] == {"oracle_trained": 150, "oracle_untrained": None, "text/model": 60}[row["model"]]
        assert row["checkpoint"].endswith("model")
        assert row["num_test_sequences"] == (64 if oracle else 50)
        assert row["data"] == ("oracle (synthetic test draw)" if oracle else str(Path(row["checkpoint"]).parents[1] / "test.txt"))
        assert row["max_new_tokens"] == (None if oracle else 12)
        for key in metrics:
            assert math.isfinite(row[key]) and float(line[key]) == pytest.approx(row[key])
        assert all(line[k] == "" for k in ("bleu5_texygen", "self_bleu5") if oracle)
        assert line["nll_oracle"] == "" or oracle
        if not oracle:
            assert 0 <= row["bleu5_texygen"] <= 1 and 0 <= row["self_bleu5"] <= 1


def test_figures_are_images(swept):
    _, out = swept
    for name in ("nll_oracle_vs_nll_test", "bleu5_texygen_vs_self_bleu5", "bleu5_texygen_vs_nll_test"):
        with Image.open(out / f"{name}.png") as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100


def test_sharper_sampling_trades_diversity_for_quality(swept):
    rows, _ = swept
    by = {(r["model"], r["alpha"]): r for r in rows}
    oracle = {a: by["oracle_trained", a] for a in ALPHAS}
    # Margins at these sizes: NLL_oracle 3.6 -> 2.1 nats; NLL_test 2.9 (alpha 1) vs 4.7 (alpha 3).
    assert oracle[3.0]["nll_oracle"] < oracle[1.0]["nll_oracle"] - 0.3 < oracle[0.5]["nll_oracle"] - 0.6
    assert oracle[1.0]["nll_test"] < oracle[3.0]["nll_test"] - 0.5
    text = {a: by["text/model", a] for a in ALPHAS}
    assert text[3.0]["bleu5_texygen"] > text[0.5]["bleu5_texygen"] + 0.1
    assert text[3.0]["self_bleu5"] > text[0.5]["self_bleu5"] + 0.1
    assert text[1.0]["nll_test"] < min(text[0.5]["nll_test"], text[3.0]["nll_test"])


def test_nll_test_at_alpha_one_is_the_plain_held_out_nll(swept, runs):
    rows, _ = swept
    row = next(r for r in rows if r["model"] == "text/model" and r["alpha"] == 1.0)
    result, _ = evaluate_model(runs / "text", split="test")
    assert row["nll_test"] == pytest.approx(result.metrics["eval/nll"], rel=1e-6)


def test_tempered_nll_is_the_nll_of_the_scaled_softmax(runs):
    model, *_ = load_generator(runs / "text" / "model")
    tokenizer, _ = load_tokenizer(runs / "text" / "model" / "tokenizer.json")
    cfg = load_config(runs / "text" / "recipe.yaml")
    batches = list(load_data(cfg, tokenizer, splits=("test",)).splits["test"].loader(cfg.data, shuffle=False,
                                                                                       seed=0))
    plain = nll_metrics(torch.cat([sequence_nll(model, b) for b in batches]),
                        torch.cat([b.target_mask.sum(1) for b in batches]))
    total, tokens = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            log_q = (2.0 * model(batch.inputs)).double().log_softmax(-1)
            picked = log_q.gather(-1, batch.targets[..., None]).squeeze(-1)
            total -= picked[batch.target_mask].sum().item()
            tokens += int(batch.target_mask.sum())
    one, two = tempered_nll(model, batches, [1.0, 2.0])
    assert one == pytest.approx(plain["nll"], rel=1e-6)
    assert two == pytest.approx(total / tokens, rel=1e-6)


def test_a_row_does_not_depend_on_the_other_models_or_alphas(swept, runs):
    rows, _ = swept
    alone = sweep([runs / "oracle_trained"], [3.0], runs / "alone", num_samples=200, seed=0)
    assert alone == [r for r in rows if r["model"] == "oracle_trained" and r["alpha"] == 3.0]
    # a folder that holds a sweep is only replaced on request, refused before any work
    before = (runs / "alone" / "sweep.csv").read_bytes()
    with pytest.raises(UserError, match="already holds a sweep; pass --overwrite"):
        sweep([runs / "oracle_trained"], [2.0], runs / "alone", num_samples=200, seed=0)
    assert (runs / "alone" / "sweep.csv").read_bytes() == before
    again = sweep([runs / "oracle_trained"], [3.0], runs / "alone", num_samples=200, seed=0, overwrite=True)
    assert again == alone


@pytest.mark.parametrize("alphas, num_samples, match", [([0.0, 1.0], 10, "> 0"), ([], 10, "> 0"),
                                                        ([1.0], 1, "num_samples")])
def test_bad_settings_are_user_errors(runs, alphas, num_samples, match):
    with pytest.raises(UserError, match=match):
        sweep([runs / "oracle_trained"], alphas, runs / "bad", num_samples=num_samples)
