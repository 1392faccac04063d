"""Every class of user mistake, many cases each, through the real command line: exit status 2, one line
naming the problem, no traceback, and nothing already on disk changed.

The CLI runs in-process (the `seqgen` fixture), so an exception other than the user error fails the test
with its traceback.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LM = str(ROOT / "recipes" / "debug" / "lm.yaml")
ADV = str(ROOT / "recipes" / "debug" / "lm_adv.yaml")
TRANSLATION = str(ROOT / "recipes" / "debug" / "translation.yaml")
FAST = ["train.max_steps=2", "train.eval_every=2", "train.save_every=2", "train.num_samples=0"]


def one_line(proc, fragment: str) -> None:
    assert proc.returncode == 2, (proc.stdout[-1500:], proc.stderr[-1500:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqgen: error: "), proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert fragment in lines[0], lines[0]


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished debug run and a sweep, made once; each test works on its own copy."""
    from seqgen.cli import main

    root = tmp_path_factory.mktemp("made")
    main(["train", LM, f"output_dir={root / 'run'}", *FAST])
    main(["sweep", str(root / "run"), "--alphas", "1", "--num-samples", "20", "--out", str(root / "sweep")])
    return root


# --- 1. nothing on disk is lost or changed by a refused command

LOSS_CASES = {
    "overwrite with a missing data file": (["train", TRANSLATION, "output_dir={run}", "--overwrite",
                                            "data.train=nowhere/train.{{lang}}"], "data file not found"),
    "overwrite with a bad size": (["train", LM, "output_dir={run}", "--overwrite", "model.hidden_dim=-1"],
                                  "model.hidden_dim must be >= 1"),
    "overwrite with an unknown objective": (["train", LM, "output_dir={run}", "--overwrite",
                                             "objective.name=gan"], "objective.name: 'gan' is not one of"),
    "resume with another model": (["train", LM, "output_dir={run}", "--resume", "model.hidden_dim=8"],
                                  "model.hidden_dim"),
    "resume a finished run": (["train", LM, "output_dir={run}", "--resume", *FAST], "already reached step 2"),
    "a second run on a folder that holds one": (["train", LM, "output_dir={run}", *FAST], "already holds a run"),
    "resume and overwrite at once": (["train", LM, "output_dir={run}", "--resume", "--overwrite"],
                                     "not allowed with argument"),
    "eval on a missing data file": (["eval", "{run}", "--data", "nowhere.txt"], "nowhere.txt"),
    "eval with a bad decoding setting": (["eval", "{run}", "decode.top_p=0"], "decode.top_p must be in (0, 1]"),
    "eval into an existing different measurement": (["eval", "{run}", "--out", "{run}/recipe.yaml"], "recipe.yaml"),
    "generate nothing": (["generate", "{run}", "--n", "0"], "--n must be >= 1"),
    "sweep over an existing sweep": (["sweep", "{run}", "--alphas", "1", "--num-samples", "20", "--out", "{sweep}"],
                                     "--overwrite"),
    "sweep with a bad alpha": (["sweep", "{run}", "--alphas", "-1", "--out", "{sweep}", "--overwrite"],
                             "inverse temperatures must be finite and > 0"),
    "check a missing recipe": (["check", "{run}/nothing.yaml"], "no such recipe"),
}


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_a_refused_command_changes_nothing_on_disk(case, finished_run, tmp_path, seqgen):
    import shutil

    shutil.copytree(finished_run, tmp_path / "made")
    run, sweep = tmp_path / "made" / "run", tmp_path / "made" / "sweep"
    before = snapshot(tmp_path / "made")
    args, fragment = LOSS_CASES[case]
    proc = seqgen(*[a.format(run=run, sweep=sweep) for a in args])
    if case == "resume and overwrite at once":  # argparse's own usage error: two lines, status 2
        assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr
    else:
        one_line(proc, fragment)
    assert snapshot(tmp_path / "made") == before


# --- 2. every value a recipe or flag accepts is range-checked before any work, in one line

RANGE_CASES = {
    "model.hidden_dim=-1": "model.hidden_dim must be >= 1",
    "model.embedding_dim=0": "model.embedding_dim must be >= 1",
    "model.dropout=1.5": "model.dropout must be in [0, 1)",
    "model.num_layers=0": "model.num_layers must be >= 1",
    "tokenizer.vocab_size=3": "tokenizer.vocab_size must be at least 5",
    "tokenizer.min_frequency=0": "tokenizer.min_frequency must be positive",
    "data.batch_size=0": "data.batch_size must be positive",
    "data.max_length=0": "data.max_length must be positive",
    "data.max_tokens=3": "data.max_tokens (3) must hold one full sentence",
    "train.lr=-1": "train.lr must be positive",
    "train.betas=[0.9]": "train.betas must be two values in [0, 1)",
    "train.betas=[0.9, 1.0]": "train.betas must be two values in [0, 1)",
    "train.weight_decay=-0.1": "train.weight_decay must be >= 0",
    "train.warmup_steps=-5": "train.warmup_steps must be >= 0",
    "train.warmup_steps=500": "train.warmup_steps (500) must be below train.max_steps",
    "train.max_grad_norm=0": "train.max_grad_norm must be positive",
    "train.keep_last=0": "train.keep_last must be positive",
    "train.gradient_accumulation_steps=0": "train.gradient_accumulation_steps must be positive",
    "decode.beam_size=0": "decode.beam_size must be positive",
    "decode.temperature=0": "decode.temperature must be positive",
    "decode.top_k=-1": "decode.top_k must be >= 0",
    "objective.label_smoothing=1.0": "objective.label_smoothing must be in [0, 1)",
    "train.lr=fast": "train.lr: expected float",
    "model.cell=rnn": "model.cell: 'rnn' is not one of lstm, gru",
}
ADVERSARIAL_RANGE_CASES = {
    "objective.pi=0": "objective.pi must be in (0, 1)",
    "objective.pi=1": "objective.pi must be in (0, 1)",
    "objective.critic.dropout=1.5": "objective.critic.dropout must be in [0, 1)",
    "objective.critic.hidden_dim=0": "objective.critic.hidden_dim must be >= 1",
    "objective.critic.window_sizes=[]": "objective.critic.window_sizes must be widths >= 1",
    "objective.critic_steps=0": "objective.critic_steps must be >= 1",
    "objective.critic_lr=0": "objective.critic_lr must be positive",
    "objective.gradient_penalty=-1": "objective.gradient_penalty must be >= 0",
    "objective.discount=0": "objective.discount must be in (0, 1]",
    "objective.beta_max=0.5": "objective.beta_max must be >= 1",
    "objective.baseline=rloo": "objective.baseline=rloo needs objective.rollouts_per_context >= 2",
    "objective.critic.kind=oracle": "objective.critic.kind=oracle needs data.source=toy",
}


@pytest.mark.parametrize("override", [*RANGE_CASES, *ADVERSARIAL_RANGE_CASES])
def test_an_out_of_range_setting_is_one_line_before_any_work(override, tmp_path, seqgen):
    recipe, message = (ADV, ADVERSARIAL_RANGE_CASES[override]) if override in ADVERSARIAL_RANGE_CASES else (
        LM, RANGE_CASES[override])
    out = tmp_path / "run"
    one_line(seqgen("train", recipe, f"output_dir={out}", override, *FAST), message)
    assert not out.exists()  # refused before anything was written


def test_broken_files_in_a_run_are_named_in_one_line(finished_run, tmp_path, seqgen):
    import shutil

    shutil.copytree(finished_run / "run", tmp_path / "run")
    run = tmp_path / "run"
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    one_line(seqgen("eval", str(run)), "model.safetensors")
    one_line(seqgen("generate", str(run), "--n", "2"), "model.safetensors")
    state = run / "checkpoints" / "step-0000002" / "trainer_state.json"
    state.write_text("{not json")
    one_line(seqgen("train", LM, f"output_dir={run}", "train.max_steps=4", "--resume"), "cannot resume")
    (run / "recipe.yaml").write_text("model: [1, 2\n")
    one_line(seqgen("eval", str(run)), "recipe")


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, seqgen):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line(seqgen("train", LM, f"output_dir={blocker}", *FAST), "is a file, not a folder")
    one_line(seqgen("train", LM, f"output_dir={blocker / 'sub'}", *FAST), str(blocker))


def test_generate_any_number_of_samples_a_chunk_at_a_time(finished_run, seqgen):
    from seqgen.inference import GENERATE_CHUNK

    args = ("generate", str(finished_run / "run"), "--n", str(2 * GENERATE_CHUNK + 3), "--seed", "1")
    many, again = seqgen(*args), seqgen(*args)
    assert many.returncode == again.returncode == 0
    lines = many.stdout.splitlines()
    assert len(lines) == 2 * GENERATE_CHUNK + 3 and len(set(lines)) > GENERATE_CHUNK  # chunks differ
    assert again.stdout == many.stdout  # the same seed gives the same samples


def test_a_full_disk_is_one_line(tmp_path, seqgen, monkeypatch):
    import errno
    import os

    import seqgen.run_folder as run_folder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "recipe.yaml"))

    monkeypatch.setattr(run_folder, "save_config", full)
    one_line(seqgen("train", LM, f"output_dir={tmp_path / 'run'}", *FAST), "no space left on the device writing")


@pytest.mark.parametrize("override, warning", [
    ("data.max_length=2", "data.max_length=2 truncates 400 of the 400 train sentences"),
    ("tokenizer.vocab_size=5", "of the train tokens are unknown to the vocabulary of 5 (<unk>)"),
])
def test_data_that_would_teach_little_is_warned_about(override, warning, caplog, monkeypatch):
    from seqgen.config import load_config
    from seqgen.data import load_data

    monkeypatch.chdir(ROOT)  # the recipe's data paths are relative to the repository
    with caplog.at_level("WARNING", logger="seqgen.data"):
        load_data(load_config(TRANSLATION, [override]))
    assert any(warning in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    caplog.clear()
    with caplog.at_level("WARNING", logger="seqgen.data"):
        load_data(load_config(TRANSLATION))
    assert not caplog.records  # the recipe as shipped keeps its sentences and words
