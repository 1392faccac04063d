"""Progress off a terminal is plain lines: no carriage returns in files and pipes."""

import subprocess
import sys
from pathlib import Path

from seqgen.progress import PlainProgress, progress

ROOT = Path(__file__).resolve().parents[1]


def test_plain_progress_writes_whole_lines_at_its_interval_and_at_the_end(capsys):
    reporter = PlainProgress(desc="train", total=4, initial=1, interval=3600)
    reporter.update()
    reporter.set_postfix(loss="0.5000")
    assert capsys.readouterr().err == ""  # within the interval: nothing yet
    reporter.update(2)
    reporter.close()
    reporter.close()
    err = capsys.readouterr().err
    assert err.startswith("train: 4/4 (100%), ") and err.endswith(", loss=0.5000\n") and err.count("\n") == 1

    every = PlainProgress(range(3), desc="eval nll", interval=0, last_line=False)
    assert list(every) == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["eval nll: 1", "eval nll: 2", "eval nll: 3"]


def test_progress_off_a_terminal_is_plain(capsys):
    reporter = progress(range(2), desc="x")  # pytest's captured stderr is not a terminal
    assert isinstance(reporter, PlainProgress) and reporter.total == 2
    assert not isinstance(progress(desc="x", show=False), PlainProgress)  # hidden: tqdm, disabled


def test_training_into_a_pipe_writes_no_carriage_return(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seqgen", "train", "recipes/debug/lm.yaml", f"output_dir={tmp_path}",
                           "train.max_steps=3", "train.eval_every=3", "train.num_samples=0",
                           "train.tensorboard=false"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr and "\r" not in proc.stdout
    assert any(line.startswith("train: 3/3 (100%)") for line in proc.stderr.splitlines()), proc.stderr
