"""What --resume finds in a run folder stopped at an awkward moment."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqgen.cli import main

RECIPE = str(Path(__file__).resolve().parents[1] / "recipes" / "debug" / "lm.yaml")


def _train(out: Path, *extra: str) -> None:
    main(["train", RECIPE, f"output_dir={out}", "train.max_steps=4", "train.save_every=2", "train.eval_every=2",
          "train.log_every=1", "train.num_samples=0", *extra])


def _steps(out: Path) -> list[tuple[int, bool]]:
    """(step, is an evaluation record) of every line of the run's log."""
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], "eval/nll" in r) for r in records]


def test_a_run_stopped_before_its_export_is_finished_by_resume(tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _train(whole)
    shutil.copytree(whole, cut)
    # stopped after the last checkpoint, before the export: no model/, no metrics.json
    shutil.rmtree(cut / "model")
    (cut / "metrics.json").unlink()
    _train(cut, "--resume")
    assert "stopped before its export; finishing it" in capsys.readouterr().out
    for name, tensor in load_file(whole / "model" / "model.safetensors").items():
        torch.testing.assert_close(load_file(cut / "model" / "model.safetensors")[name], tensor, rtol=0, atol=0)
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())
    with pytest.raises(SystemExit) as stopped:  # now it is finished
        _train(cut, "--resume")
    assert stopped.value.code == 2
    assert "already reached step 4" in capsys.readouterr().err


def test_a_resumed_run_logs_each_step_once(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _train(whole)
    shutil.copytree(whole, cut)
    # killed after logging steps 3 and 4 but before the step-4 checkpoint: resumed from step 2
    shutil.rmtree(cut / "checkpoints" / "step-0000004")
    (cut / "checkpoints" / "latest").write_text("step-0000002")
    shutil.rmtree(cut / "model")
    (cut / "metrics.json").unlink()
    _train(cut, "--resume")
    assert _steps(cut) == _steps(whole) == [(1, False), (2, False), (2, True), (3, False), (4, False), (4, True)]


def test_weights_get_the_permissions_of_the_other_files(tmp_path):
    out = tmp_path / "run"
    _train(out)
    for folder in (out / "model", out / "checkpoints" / "step-0000004"):
        modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if p.is_file()}
        assert len(set(modes.values())) == 1, modes
        assert modes["model.safetensors"] == (out / "recipe.yaml").stat().st_mode & 0o777


def test_resume_says_what_changed_and_records_what_is_used(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out)
    (tmp_path / "more.txt").write_text("the cat sat\nthe dog ran\n")
    main(["train", RECIPE, f"output_dir={out}", "train.max_steps=6", "train.save_every=2", "train.eval_every=2",
          "train.log_every=1", "train.num_samples=0", "train.lr=0.5", "data.shuffle=false", "--resume"])
    printed = capsys.readouterr().out
    assert "warning: train.lr changed" in printed and "ignored" in printed
    assert "warning: data.shuffle changed (True -> False); the run uses the new value from step 4" in printed
    assert "warning: train.max_steps changed (4 -> 6)" in printed
    recipe = (out / "recipe.yaml").read_text()
    assert "shuffle: false" in recipe and "max_steps: 6" in recipe and "lr: 0.5" not in recipe


def test_resume_without_a_latest_pointer_uses_the_newest_complete_checkpoint(tmp_path, caplog):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _train(whole)
    shutil.copytree(whole, cut)
    (cut / "checkpoints" / "latest").unlink()
    shutil.rmtree(cut / "model")
    (cut / "metrics.json").unlink()
    _train(cut, "--resume")
    assert [r.message for r in caplog.records if "newest complete one" in r.message] == [
        f"{cut / 'checkpoints' / 'latest'} is missing or names no complete checkpoint; using step-0000004, the "
        "newest complete one"]
    assert (cut / "model" / "model.safetensors").is_file()


def test_a_checkpoint_missing_its_weights_is_named_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out)
    (out / "checkpoints" / "step-0000004" / "model.safetensors").unlink()
    with pytest.raises(SystemExit) as stopped:
        main(["train", RECIPE, f"output_dir={out}", "train.max_steps=6", "--resume"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"seqgen: error: cannot resume from checkpoint "
                                            f"{out / 'checkpoints' / 'step-0000004'}: model.safetensors is missing")
    assert "Traceback" not in err


def test_a_run_folder_in_use_is_refused_and_left_alone(tmp_path, capsys):
    import fcntl
    import os

    out = tmp_path / "run"
    _train(out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fd = os.open(out, os.O_RDONLY)  # another process holding the run
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        for extra in (["--overwrite"], ["--resume", "train.max_steps=6"]):
            with pytest.raises(SystemExit) as stopped:
                _train(out, *extra)
            assert stopped.value.code == 2
            assert f"output_dir {out} is in use by another seqgen process" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    _train(out, "--resume", "train.max_steps=6")  # free again
    assert json.loads((out / "metrics.json").read_text())["step"] == 6
