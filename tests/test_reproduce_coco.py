"""`seqgen reproduce coco-text`: the tiny size end to end through the command line on small caption
files that the test writes, NLL_gen as `seqgen.metrics.likelihood.nll_gen` defines it, and a missing
data folder refused in one line."""

import dataclasses
import json
import random

import pytest

from seqgen.reproduce.catalogue import benchmark

SUBJECTS = ("a man", "a woman", "a dog", "two cats", "a small child", "a red bus")
VERBS = ("sits on", "stands near", "looks at", "walks past", "is next to")
OBJECTS = ("a bench.", "the table", "a parked car.", "the street,", "a white sink", "the kitchen.")


def _captions(rng: random.Random, n: int) -> str:
    # like the benchmark's files: lowercase, split on spaces, a final period or comma stuck to its word,
    # and no newline at the end
    return "\n".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(n))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The coco-text reproduction at its tiny size, every row, on ~100 captions per file."""
    from seqgen.cli import main

    root = tmp_path_factory.mktemp("coco")
    data = root / "data"
    (data / "coco_captions").mkdir(parents=True)
    rng = random.Random(0)
    (data / "coco_captions" / "image_coco.txt").write_text(_captions(rng, 100), encoding="utf-8")
    (data / "coco_captions" / "test_coco.txt").write_text(_captions(rng, 100), encoding="utf-8")
    out = root / "out"
    main(["reproduce", "coco-text", "--size", "tiny", "--data-dir", str(data), "--out", str(out)])
    return out, data, json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_tiny_reproduction_writes_every_row_beside_the_published_numbers(tiny):
    out, data, results = tiny
    bench = benchmark("coco-text")
    assert [r["name"] for r in results["rows"]] == [r.name for r in bench.rows]
    assert results["benchmark"] == "coco-text" and results["size"] == "tiny"
    for row in results["rows"]:
        metrics = row["metrics"]
        for n in (2, 3, 4, 5):
            assert 0 <= metrics[f"bleu{n}_texygen"] <= 1 and 0 <= metrics[f"self_bleu{n}"] <= 1
        assert metrics["nll_gen"] > 0 and metrics["nll_gen_whole_file"] > 0
        assert row["scored"]["split"] == "test" and row["scored"]["samples"]["num"] == 64
        assert row["scored"]["data"] == str(data / "coco_captions" / "test_coco.txt")
        assert row["recipe"]["data"]["train"] == str(data / "coco_captions" / "image_coco.txt")
        assert row["recipe"]["data"]["validation_fraction"] == 0.1  # validation from train, never test
        assert row["checkpoint"]["step"] == row["recipe"]["train"]["max_steps"]  # the last model
        assert [c["alpha"] for c in row["curve"]] == list(bench.sizes["tiny"].alphas)
        (own,) = [c for c in row["curve"] if c["alpha"] == 1.0]
        assert set(own) == {"alpha", "bleu5_texygen", "self_bleu5"}
    anchor = results["anchors"]["the training captions, scored as samples"]
    assert 0 < anchor["bleu5_texygen"] <= 1 and 0 < anchor["self_bleu5"] <= 1
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| teacher forcing (MLE) | MLE |" in report
    for heading in ("BLEU-2 published", "BLEU-5 published", "NLL_gen published", "Self-BLEU-5"):
        assert heading in report
    assert "0.731" in report and "0.189" in report and "0.718" in report  # MLE's published numbers
    assert "| RelGAN(100) | 0.849 | 0.687 | 0.502 | 0.331 | 0.756 |" in report  # published context
    assert "the training captions, scored as samples" in report
    assert (out / "frontier.png").stat().st_size > 0


def test_nll_gen_is_the_metric_on_the_whole_training_file_and_on_the_captions_trained_on(tiny):
    from seqgen.data.sources import hold_out, load_raw
    from seqgen.data.tokenizer import load_tokenizer
    from seqgen.inference import run_config
    from seqgen.metrics.likelihood import nll_gen
    from seqgen.models import load_generator

    out, data, results = tiny
    lines = (data / "coco_captions" / "image_coco.txt").read_text(encoding="utf-8").split("\n")
    for row in (results["rows"][0], results["rows"][-1]):
        model_dir = out / "runs" / row["name"] / "model"
        model, _, _, _ = load_generator(model_dir)
        tokenizer, _ = load_tokenizer(model_dir)
        sentences = [tokenizer(line, add_special_tokens=False)["input_ids"] for line in lines]
        assert len(sentences) == 100
        assert row["metrics"]["nll_gen_whole_file"] == pytest.approx(nll_gen(model, sentences, 37), rel=1e-9)
        # the captions trained on: the file less the tenth that validation holds out
        cfg, _ = run_config(out / "runs" / row["name"])
        raw = load_raw(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, validation_fraction=None)),
                       ("train",))["train"]
        trained, held = hold_out(raw, 0.1, cfg.seed)
        assert len(trained.rows) == 90 and len(held.rows) == 10
        kept = [sentences[lines.index(text)] for text in trained.rows["text"]]
        assert row["metrics"]["nll_gen"] == pytest.approx(nll_gen(model, kept, 37), rel=1e-9)


@pytest.mark.parametrize("args, message", [
    ((), "coco-text needs coco_captions/image_coco.txt: pass --data-dir"),
    (("--data-dir", "nowhere"), "nowhere/coco_captions/image_coco.txt, which does not exist"),
])
def test_a_missing_data_folder_is_one_line_before_any_work(tmp_path, monkeypatch, seqgen, args, message):
    monkeypatch.delenv("SEQGEN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    result = seqgen("reproduce", "coco-text", "--size", "tiny", *args, "--out", tmp_path / "out")
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
