"""`seqgen reproduce`: a benchmark's tiny size through the command line, a user's row, resuming, the
published numbers beside seqgen's, and the refusals before any work."""

import json

import pytest

from seqgen.config import from_dict
from seqgen.objectives.scheduled_sampling import ScheduledSamplingConfig
from seqgen.reproduce.benchmark import Column
from seqgen.reproduce.catalogue import BENCHMARKS, benchmark
from seqgen.reproduce.report import _published_cells
from seqgen.reproduce.rows import inverse_sigmoid_k
from seqgen.schedules import epsilon

ROWS = "teacher_forcing,adversarial_pi0.5,mixce"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The seqgan-oracle reproduction at its tiny size, three rows and a user's row, through the CLI."""
    from seqgen.cli import main

    out = tmp_path_factory.mktemp("reproduce") / "seqgan"
    mine = out.parent / "mine.yaml"
    mine.write_text("objective: {name: weighted_likelihood, preset: tailr, gamma: 0.2}\n", encoding="utf-8")
    main(["reproduce", "seqgan-oracle", "--size", "tiny", "--out", str(out), "--rows", ROWS,
          "--row", f"mine={mine}"])
    return out, json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_tiny_reproduction_writes_every_row_beside_the_published_numbers(tiny):
    out, results = tiny
    assert [r["name"] for r in results["rows"]] == [*ROWS.split(","), "mine"]
    assert results["benchmark"] == "seqgan-oracle" and results["size"] == "tiny"
    assert results["hardware"]["torch"] and results["wall_seconds"] > 0
    for row in results["rows"]:
        assert row["metrics"]["nll_oracle"] > 0 and row["metrics"]["nll_test"] > 0
        assert row["scored"]["split"] == "test" and row["scored"]["oracle_samples"]["num"] == 64
        assert row["checkpoint"]["step"] == row["recipe"]["train"]["max_steps"]  # the last model, as SeqGAN
        assert [c["alpha"] for c in row["curve"]] == list(benchmark("seqgan-oracle").sizes["tiny"].alphas)
        (own,) = [c for c in row["curve"] if c["alpha"] == 1.0]
        assert own["nll_test"] == pytest.approx(row["metrics"]["nll_test"], rel=1e-4)  # one test split
        assert (out / "recipes" / f"{row['name']}.yaml").is_file()
    baseline, *others = results["rows"]
    assert baseline["distance"] == 0.0 and baseline["below_baseline_curve"] is None
    for row in others:  # every other row starts from the baseline's model
        assert row["recipe"]["train"]["init_from"] == str(out / "runs" / "teacher_forcing")
        assert row["below_baseline_curve"] == (row["distance"] is None or row["distance"] < 0)
    assert results["rows"][-1]["recipe"]["objective"]["gamma"] == 0.2  # the user's row, as written
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| teacher forcing (MLE) | MLE |" in report and "9.038" in report and "NLL_oracle published" in report
    assert "| RankGAN | 8.247 |" in report  # published rows without a seqgen row, for context
    assert "the oracle's own samples" in report and (out / "frontier.png").stat().st_size > 0


def test_resume_reuses_measured_rows_and_trains_only_what_changed(tiny, seqgen):
    out, before = tiny
    again = seqgen("reproduce", "seqgan-oracle", "--size", "tiny", "--out", out, "--resume", "--rows", ROWS,
                   "mixce.objective.eta=0.3")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("measured before, reused") == 2  # teacher forcing and the adversarial row
    after = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = {r["name"]: r for r in after["rows"]}
    assert set(rows) == {*ROWS.split(","), "mine"}  # the user's row, not asked for this time, is kept
    assert rows["mixce"]["recipe"]["objective"]["eta"] == 0.3
    trained = (out / "runs" / "mixce" / "recipe.yaml").read_text(encoding="utf-8")
    assert "eta: 0.3" in trained  # trained again with the new recipe, not only measured again
    assert rows["mixce"]["metrics"] != before["rows"][2]["metrics"]
    assert rows["teacher_forcing"]["metrics"] == before["rows"][0]["metrics"]


def test_resume_continues_a_row_stopped_during_training(tmp_path, seqgen, monkeypatch):
    from seqgen.reproduce import run

    out = tmp_path / "seqgan"
    calls = []
    real = run._train_and_measure

    def stop_at_mixce(bench, spec, row, cfg, recipe, resume):
        calls.append((row.name, resume, run._run_state(run.Path(cfg.output_dir), cfg) if resume else None))
        if row.name == "mixce" and len(calls) == 2:
            raise KeyboardInterrupt
        return real(bench, spec, row, cfg, recipe, resume)

    monkeypatch.setattr(run, "_train_and_measure", stop_at_mixce)
    first = seqgen("reproduce", "seqgan-oracle", "--size", "tiny", "--out", out, "--rows", "teacher_forcing,mixce")
    assert first.returncode == 130
    assert [r["name"] for r in json.loads((out / "results.json").read_text())["rows"]] == ["teacher_forcing"]
    again = seqgen("reproduce", "seqgan-oracle", "--size", "tiny", "--out", out, "--rows", "teacher_forcing,mixce",
                   "--resume")
    assert again.returncode == 0 and "teacher_forcing: measured before, reused" in again.stdout
    assert calls[-1] == ("mixce", True, "other")  # nothing of mixce on disk: trained, the baseline kept
    assert (out / "report.md").is_file()


def test_a_row_folder_is_continued_only_when_started_with_the_same_recipe(tiny, tmp_path):
    import dataclasses
    import shutil

    from seqgen.inference import run_config
    from seqgen.reproduce.run import _run_state

    out, _ = tiny
    folder = tmp_path / "teacher_forcing"
    shutil.copytree(out / "runs" / "teacher_forcing", folder)
    cfg, _ = run_config(folder)
    cfg = dataclasses.replace(cfg, output_dir=str(out / "runs" / "teacher_forcing"))  # as recorded
    assert _run_state(folder, cfg) == "finished"
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=cfg.train.lr / 2))
    assert _run_state(folder, other) == "other"
    shutil.rmtree(folder / "model")  # stopped after a checkpoint, before its export
    assert _run_state(folder, cfg) == "started"
    shutil.rmtree(folder / "checkpoints")
    assert _run_state(folder, cfg) == "other"


def test_published_difference_is_signed_and_marks_a_worse_row():
    lower = Column("nll_oracle", "NLL_oracle", higher_is_better=False)
    higher = Column("bleu", "BLEU", higher_is_better=True, digits=2)
    assert _published_cells(lower, 9.2, 9.038) == ["9.038", "+0.162 (worse)"]
    assert _published_cells(lower, 8.9, 9.038) == ["9.038", "-0.138"]
    assert _published_cells(higher, 30.0, 35.5) == ["35.50", "-5.50 (worse)"]
    assert _published_cells(higher, 30.0, None) == ["—", "—"]


def test_annealed_scheduled_sampling_passes_one_half_half_way():
    for steps in (6, 500, 2000):
        k = inverse_sigmoid_k(steps)
        cfg = from_dict(ScheduledSamplingConfig, {"schedule": "inverse_sigmoid", "k": k})
        assert epsilon(cfg, steps / 2) == pytest.approx(0.5, abs=0.01)
        assert epsilon(cfg, 0) > 0.5 > epsilon(cfg, steps)


@pytest.mark.parametrize("args, message", [
    (("seqgan-oracle", "--size", "paper"), "seqgan-oracle needs seqgan_oracle/oracle_lstm.npz: pass --data-dir"),
    (("seqgan-oracle", "--size", "paper", "--data-dir", "nowhere"), ("nowhere/seqgan_oracle/oracle_lstm.npz, which "
                                                                     "does not exist")),
    (("seqgan-oracle", "--size", "tiny", "--rows", "seqgan"), "has no row seqgan; its rows: teacher_forcing"),
    (("seqgan-oracle", "--size", "tiny", "--row", "mixce=x.yaml"), "a row of that name exists"),
    (("seqgan-oracle", "--size", "tiny", "--row", "mine"), "--row takes NAME=RECIPE.yaml"),
    (("seqgan-oracle", "--size", "tiny", "train.init_from=elsewhere"), "train.init_from is set by the study"),
    (("seqgan-oracle", "--size", "tiny", "--resume", "--overwrite"), "exclude each other"),
])
def test_mistakes_are_one_line_before_any_work(tmp_path, monkeypatch, seqgen, args, message):
    monkeypatch.delenv("SEQGEN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    result = seqgen("reproduce", *args, "--out", tmp_path / "out")
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_another_reproduction_is_not_resumed(tmp_path, seqgen):
    (tmp_path / "results.json").write_text(json.dumps({"benchmark": "coco-text", "size": "cpu"}), encoding="utf-8")
    result = seqgen("reproduce", "seqgan-oracle", "--size", "tiny", "--out", tmp_path, "--resume")
    assert result.returncode == 2 and "holds coco-text at size cpu" in result.stderr


def test_every_benchmark_has_every_size_and_a_baseline_first():
    for name in BENCHMARKS:
        bench = benchmark(name)
        assert set(bench.sizes) == {"paper", "cpu", "tiny"}, name
        assert bench.rows[0].name == "teacher_forcing" and bench.rows[0].published, name
        assert all(r.published is None or r.published in bench.published for r in bench.rows), name


def test_a_parallel_corpus_is_checked_side_by_side(tmp_path, seqgen):
    raw = tmp_path / "data" / "multi30k" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            (raw / f"{split}.{lang}.gz").write_bytes(b"")
    (raw / "val.en.gz").unlink()
    result = seqgen("reproduce", "multi30k", "--size", "cpu", "--data-dir", tmp_path / "data", "--out", tmp_path / "out")
    assert result.returncode == 2 and f"but {raw / 'val.en.gz'} does not exist" in result.stderr
