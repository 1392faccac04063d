"""Bad input: one line naming the problem, exit status 2, no traceback, nothing on disk lost.

The CLI's `main` runs in-process (the same code path as the `seqgen` script, without paying for a fresh
interpreter per case); an exception other than the user error would fail the test with its traceback.
"""

import gzip
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.embedding_dim=8", "model.hidden_dim=8", "train.max_steps=2", "train.eval_every=2",
        "train.save_every=2", "train.num_samples=0", "data.batch_size=4"]


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqgen: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def text_recipe(tmp_path):
    (tmp_path / "train.txt").write_text("a b c\nb c d\nc d e\nd e f\n" * 3)
    recipe = tmp_path / "lm.yaml"
    recipe.write_text(f"task: lm\noutput_dir: {tmp_path / 'run'}\n"
                      f"data: {{source: text, train: {tmp_path / 'train.txt'}, validation: {tmp_path / 'train.txt'}}}\n")
    return recipe


def test_missing_data_file(seqgen, text_recipe, tmp_path):
    assert_user_error(seqgen("train", text_recipe, f"data.train={tmp_path / 'nope.txt'}", *TINY), "nope.txt")
    assert_user_error(seqgen("train", text_recipe, f"data.train={tmp_path}", *TINY), "is a folder; data.train")


def test_empty_data_file(seqgen, text_recipe, tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert_user_error(seqgen("train", text_recipe, f"data.train={tmp_path / 'empty.txt'}", *TINY), "empty.txt")


def test_non_utf8_line(seqgen, text_recipe, tmp_path):
    with gzip.open(tmp_path / "bad.txt.gz", "wb") as f:
        f.write(b"a b c\nd \xff e\n")
    assert_user_error(seqgen("train", text_recipe, f"data.train={tmp_path / 'bad.txt.gz'}", *TINY),
                      "bad.txt.gz", "UTF-8", "line 2")


def test_parallel_files_of_different_lengths(seqgen, tmp_path):
    (tmp_path / "t.de").write_text("a b\nc d\ne f\n")
    (tmp_path / "t.en").write_text("x y\nz w\n")
    proc = seqgen("train", "recipes/debug/translation.yaml", f"output_dir={tmp_path / 'run'}",
                  f"data.train={tmp_path}/t.{{lang}}", *TINY)
    assert_user_error(proc, "3", "2")


def test_image_that_does_not_decode(seqgen, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8), "red").save(images / "good.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (tmp_path / "captions.jsonl").write_text('{"image": "good.png", "captions": ["a red square"]}\n'
                                             '{"image": "broken.png", "captions": ["nothing"]}\n')
    proc = seqgen("train", "recipes/debug/captioning.yaml", f"output_dir={tmp_path / 'run'}", "data.source=images",
                  f"data.train={tmp_path / 'captions.jsonl'}", f"data.image_dir={images}", "tokenizer.kind=word", *TINY)
    assert_user_error(proc, "broken.png")


def test_unknown_key_and_wrong_type(seqgen, text_recipe):
    assert_user_error(seqgen("train", text_recipe, "model.hiden_dim=4"), "model.hiden_dim", "model.hidden_dim")
    assert_user_error(seqgen("train", text_recipe, "train.lr=fast"), "train.lr", "float")
    # a key of another objective (or model family) names the tag that picked the section
    assert_user_error(seqgen("train", text_recipe, "objective.pi=0.3"), "objective.pi",
                      "objective.name=teacher_forcing")
    assert_user_error(seqgen("train", text_recipe, "model.arch=gpt2"), "model.arch", "model.family=rnn")
    # a value out of range is named when the recipe is read
    assert_user_error(seqgen("train", text_recipe, "objective.name=adversarial", "objective.pi=1.5"),
                      "pi must be in (0, 1)")


def test_existing_run_is_kept_and_resume_checks_the_model(seqgen, text_recipe, tmp_path):
    assert seqgen("train", text_recipe, *TINY).returncode == 0
    weights = (tmp_path / "run" / "model" / "model.safetensors").read_bytes()
    assert_user_error(seqgen("train", text_recipe, *TINY), "already holds a run", "--resume")
    assert_user_error(seqgen("train", text_recipe, *TINY, "model.hidden_dim=16", "--resume"),
                      "model.hidden_dim", "differs")
    assert_user_error(seqgen("train", text_recipe, *TINY, "tokenizer.kind=bpe", "--resume"),
                      "tokenizer.kind", "differs")
    assert (tmp_path / "run" / "model" / "model.safetensors").read_bytes() == weights


def test_eval_and_generate_on_missing_folders(seqgen, tmp_path):
    assert_user_error(seqgen("eval", tmp_path / "nothing"), "nothing")
    assert_user_error(seqgen("generate", tmp_path / "nothing"), "nothing")


def recipe_for(recipe: str, sections: dict, tmp_path: Path) -> Path:
    """`recipe` with whole top-level sections replaced (a model of another family cannot be reached by
    overrides: the recipe's own model keys would not fit it)."""
    raw = {**yaml.safe_load((ROOT / recipe).read_text(encoding="utf-8")), **sections}
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def snapshot_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bad, message", [
    (["data.train=recipes/debug/data/tain.{lang}"], "tain."),  # a data file that is not there
    # a model that cannot hold the data (a model section of another family: see `recipe_for`)
    ({"model": {"family": "transformer", "arch": "bart", "max_positions": 4}}, "model.max_positions (4)"),
    # an objective the data cannot have
    (["objective.name=adversarial", "objective.critic.kind=oracle"], "objective.critic.kind=oracle needs data.source=toy"),
    (["train.init_from=nowhere"], "nowhere"),  # initial weights that are not there
    # a tokenizer path that is not there
    (["tokenizer.kind=pretrained", "tokenizer.name_or_path=./no/such-tokenizer"], "such-tokenizer"),
])
def test_overwrite_with_a_bad_recipe_leaves_the_old_run_as_it_was(seqgen, tmp_path, bad, message):
    run = tmp_path / "run"
    recipe = "recipes/debug/translation.yaml"
    first = seqgen("train", recipe, f"output_dir={run}", *TINY)
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot_files(run)
    assert {"recipe.yaml", "tokenizer.json", "model/model.safetensors"} <= set(before)
    if isinstance(bad, dict):  # whole sections replaced: a recipe file of its own, without TINY's model keys
        proc = seqgen("train", recipe_for(recipe, bad, tmp_path), f"output_dir={run}",
                      *(o for o in TINY if not o.startswith("model.")), "--overwrite")
    else:
        proc = seqgen("train", recipe, f"output_dir={run}", *TINY, *bad, "--overwrite")
    assert_user_error(proc, message)
    assert "hub" not in proc.stderr  # a local path that is missing is not looked up on the hub
    assert snapshot_files(run) == before


def test_a_failed_first_start_leaves_nothing_so_the_retry_starts(seqgen, tmp_path):
    run = tmp_path / "run"
    recipe = "recipes/debug/translation.yaml"
    assert_user_error(seqgen("train", recipe, f"output_dir={run}", *TINY, "data.train=recipes/debug/data/tain.{lang}"))
    assert not run.exists() or not any(run.iterdir())
    retry = seqgen("train", recipe, f"output_dir={run}", *TINY)
    assert retry.returncode == 0, retry.stderr[-2000:]


@pytest.mark.parametrize("flags, message", [
    (["--beam", "0"], "--beam must be >= 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    (["--n", "0"], "--n must be >= 1"),
])
def test_generate_refuses_empty_decoding_settings(seqgen, tmp_path, flags, message):
    run = tmp_path / "run"
    assert seqgen("train", "recipes/debug/lm.yaml", f"output_dir={run}", *TINY).returncode == 0
    assert_user_error(seqgen("generate", run, *flags), message)


def test_version(seqgen):
    from importlib.metadata import version

    proc = seqgen("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"seqgen {version('seqgen')}"


def test_eval_files_name_what_they_measured_and_never_replace_another(seqgen, tmp_path):
    run = tmp_path / "run"
    assert seqgen("train", "recipes/debug/translation.yaml", f"output_dir={run}", *TINY).returncode == 0
    assert seqgen("eval", run, "--split", "test", "--no-quality").returncode == 0
    test_file = run / "metrics-test.json"
    saved = json.loads(test_file.read_text())
    assert saved["measured"]["split"] == "test" and saved["measured"]["data"] is None and saved["metrics"]
    # which checkpoint, on which data, how much of it, decoded how
    assert saved["checkpoint"] == {"path": str(run / "model"), "step": 2}
    scored = saved["scored"]
    assert scored["split"] == "test" and scored["data"] == "recipes/debug/data/test.{lang}"
    test_lines = sum(1 for line in Path("recipes/debug/data/test.en").read_text().splitlines() if line.strip())
    assert scored["num_sequences"] == scored["num_decoded"] == test_lines
    assert scored["decoding"]["strategy"] == "greedy" and scored["decoding"]["max_new_tokens"] > 0
    before = test_file.read_bytes()
    # other data: its own file, named for it
    assert seqgen("eval", run, "--data", "recipes/debug/data/val.{lang}", "--no-quality").returncode == 0
    other = json.loads((run / "metrics-data-val._lang_.json").read_text())["measured"]
    assert other["data"] == "recipes/debug/data/val.{lang}" and other["split"] is None
    # another decoding of the same split would replace the file: refused before any work, file unchanged
    proc = seqgen("eval", run, "--split", "test", "--no-quality", "decode.strategy=beam")
    assert_user_error(proc, "metrics-test.json holds another measurement (split test)", "--out")
    assert test_file.read_bytes() == before
    # the same measurement again replaces it; an --out that cannot be written is refused up front
    assert seqgen("eval", run, "--split", "test", "--no-quality").returncode == 0
    assert_user_error(seqgen("eval", run, "--out", tmp_path / "no" / "m.json"), "no folder")
