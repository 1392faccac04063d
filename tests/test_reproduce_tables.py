"""The conditional benchmarks of `seqgen reproduce`: Multi30k German→English and the captioning table of
scheduled sampling on the shapes set, each at its tiny size through the command line; their paper sizes
are the shipped recipes."""

import json
from pathlib import Path

import pytest
import yaml

from seqgen.reproduce.benchmark import lookup
from seqgen.reproduce.catalogue import benchmark
from seqgen.reproduce.rows import inverse_sigmoid_k

ROOT = Path(__file__).resolve().parents[1]
DEBUG_DATA = ROOT / "recipes" / "debug" / "data"


def _results(out: Path) -> tuple[dict, str]:
    return (json.loads((out / "results.json").read_text(encoding="utf-8")),
            (out / "report.md").read_text(encoding="utf-8"))


def test_shapes_captioning_tiny_trains_every_row_from_scratch(tmp_path, seqgen):
    out = tmp_path / "shapes"
    run = seqgen("reproduce", "shapes-captioning", "--size", "tiny", "--out", out)
    assert run.returncode == 0, run.stderr
    results, report = _results(out)
    rows = {r["name"]: r for r in results["rows"]}
    assert list(rows) == ["teacher_forcing", "always_sampling", "scheduled_sampling", "uniform_scheduled_sampling"]
    for row in rows.values():
        assert row["scored"]["split"] == "test" and row["scored"]["num_decoded"] == 32
        assert 0 <= row["metrics"]["sacrebleu_bleu"] <= 100 and row["metrics"]["cider_d"] >= 0
        assert lookup(row["recipe"], "train.init_from") is None  # from scratch, as Bengio et al.
        assert row["recipe"]["train"]["max_steps"] == rows["teacher_forcing"]["recipe"]["train"]["max_steps"]
    assert rows["always_sampling"]["recipe"]["objective"] == {
        "name": "scheduled_sampling", "schedule": "constant", "epsilon": 0.0, "mode": "sequential", "feed": "sample"}
    scheduled, uniform = rows["scheduled_sampling"]["recipe"]["objective"], rows["uniform_scheduled_sampling"]["recipe"]["objective"]
    assert scheduled["schedule"] == "inverse_sigmoid" and scheduled["k"] == inverse_sigmoid_k(30)
    assert uniform == {**scheduled, "replacement": "uniform"} and scheduled["replacement"] == "model"
    assert "BLEU-4 published" in report and "CIDEr-D published" in report
    assert "| always sampling (ε = 0) | Always sampling |" in report and "11.2" in report and "0.921" in report
    assert "only the ORDERING" in report


def test_multi30k_tiny_scores_sacrebleu_for_every_row(tmp_path, seqgen):
    out = tmp_path / "multi30k"
    files = [f"data.{split}={DEBUG_DATA / name}.{{lang}}" for split, name in
             (("train", "train"), ("validation", "val"), ("test", "test"))]
    run = seqgen("reproduce", "multi30k", "--size", "tiny", "--out", out, *files)
    assert run.returncode == 0, run.stderr
    results, report = _results(out)
    rows = {r["name"]: r for r in results["rows"]}
    assert list(rows) == ["teacher_forcing", "teacher_forcing_continued", "scheduled_sampling", "adversarial_pi0.25",
                          "adversarial_pi0.5", "adversarial_pi0.75", "mixce", "tailr"]
    for name, row in rows.items():
        assert row["scored"]["split"] == "test" and row["scored"]["num_decoded"] == 40
        assert {"sacrebleu_bleu", "sacrebleu_chrf", "sacrebleu_ter", "context_gain"} <= set(row["metrics"])
        if name != "teacher_forcing":  # every method continues the baseline's model
            assert row["recipe"]["train"]["init_from"] == str(out / "runs" / "teacher_forcing")
    assert rows["teacher_forcing"]["metrics"]["sacrebleu_bleu"] > 5  # it learnt something
    assert rows["teacher_forcing"]["metrics"]["context_gain"] > 0.1  # from its sources
    objective = rows["scheduled_sampling"]["recipe"]["objective"]
    assert objective["mode"] == "parallel" and objective["k"] == inverse_sigmoid_k(4)
    assert rows["adversarial_pi0.25"]["recipe"]["objective"]["pi"] == 0.25
    assert "BLEU published" in report and "35.00" in report and "nrefs:1|case:mixed|eff:no|tok:13a" in report
    assert "source gain (nats)" in report


@pytest.mark.parametrize("name, recipe", [("multi30k", "translation/multi30k_transformer.yaml"),
                                          ("shapes-captioning", "captioning/shapes_lstm.yaml")])
def test_the_paper_size_is_the_shipped_recipe(name, recipe):
    shipped = yaml.safe_load((ROOT / "recipes" / recipe).read_text(encoding="utf-8"))
    paper = benchmark(name).sizes["paper"].recipe
    for section in ("model", "tokenizer", "decode"):
        assert paper[section] == shipped[section], section
    assert {k: v for k, v in paper["train"].items() if k in shipped["train"]} == shipped["train"]
    assert {k: v for k, v in paper["data"].items() if k in shipped["data"]} == {
        k: v for k, v in shipped["data"].items() if k not in ("train", "validation", "test")}


def test_multi30k_names_its_files_in_the_data_folder():
    bench = benchmark("multi30k")
    assert bench.data == {"data.train": "multi30k/raw/train.{lang}.gz", "data.validation": "multi30k/raw/val.{lang}.gz",
                          "data.test": "multi30k/raw/test_2016_flickr.{lang}.gz"}
    assert bench.sizes["paper"].uses_data and bench.sizes["cpu"].uses_data and not bench.sizes["tiny"].uses_data
    # the warm-up shrinks with the steps: the rate peaks within the first tenth of the run, not after it
    paper, cpu = (bench.sizes[size].recipe["train"] for size in ("paper", "cpu"))
    assert cpu["warmup_steps"] < paper["warmup_steps"] and cpu["warmup_steps"] <= cpu["max_steps"] / 10
