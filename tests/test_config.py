"""Recipes: YAML + overrides onto typed dataclasses, strict keys and types, every shipped recipe valid."""

from pathlib import Path

import pytest

from seqgen.config import RunConfig, load_config, save_config
from seqgen.errors import UserError
from seqgen.recipes import check_paths, check_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: translation\nmodel: {hidden_dim: 64}\ntrain: {lr: 1}\n")
    cfg = load_config(recipe, ["model.hidden_dim=12", "data.synthetic.length=3", "train.max_grad_norm=null",
                               "model.config_overrides.n_inner=64", "train.betas=[0.9, 0.98]"])
    assert cfg.task == "translation"
    assert cfg.model.hidden_dim == 12
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # int widened to float
    assert cfg.data.synthetic.length == 3
    assert cfg.train.max_grad_norm is None
    assert cfg.model.config_overrides == {"n_inner": 64}
    assert cfg.train.betas == [0.9, 0.98]


def test_numbers_in_exponent_notation_are_floats_as_in_python(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {lr: 3e-4, max_grad_norm: 1E2}\nobjective: {adversarial: {critic_lr: .5e-3}}\n")
    cfg = load_config(recipe, ["train.weight_decay=1e-2", "objective.adversarial.tau=-2.5e+0"])
    assert (cfg.train.lr, cfg.train.max_grad_norm, cfg.objective.adversarial.critic_lr) == (3e-4, 100.0, 5e-4)
    assert (cfg.train.weight_decay, cfg.objective.adversarial.tau) == (0.01, -2.5)
    # what is not a number stays text, and an integer stays an integer
    assert load_config(None, ["output_dir=1e5x", "seed=7"]).output_dir == "1e5x"
    with pytest.raises(UserError, match="config key model.hidden_dim: expected int, got 100000.0"):
        load_config(None, ["model.hidden_dim=1e5"])


def test_a_key_given_twice_is_an_error_and_a_byte_order_mark_is_ignored(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: lm\ntrain: {lr: 0.1}\nmodel: {hidden_dim: 4}\ntrain: {max_steps: 3}\n")
    with pytest.raises(UserError, match=r"r\.yaml: the key 'train' is given twice in one mapping \(line 4\)"):
        load_config(recipe)
    recipe.write_text("train: {lr: 0.1, lr: 0.2}\n")
    with pytest.raises(UserError, match="the key 'lr' is given twice"):
        load_config(recipe)
    recipe.write_bytes("\ufefftask: translation\n".encode("utf-8"))
    assert load_config(recipe).task == "translation"


def test_round_trip(tmp_path):
    cfg = load_config(None, ["model.family=transformer", "data.max_tokens=512"])
    save_config(cfg, tmp_path / "r.yaml")
    assert load_config(tmp_path / "r.yaml") == cfg


@pytest.mark.parametrize("override, message", [
    ("model.hiden_dim=3", "unknown config key model.hiden_dim; did you mean model.hidden_dim?"),
    ("trian.lr=3", "unknown config key trian; did you mean train?"),
    ("model.hidden_dim=abc", "config key model.hidden_dim: expected int, got 'abc' (str)"),
    ("model.hidden_dim=2.5", "config key model.hidden_dim: expected int, got 2.5 (float)"),
    ("model.tie_embeddings=3", "config key model.tie_embeddings: expected bool, got 3 (int)"),
    ("model.family=rnm", "config key model.family: 'rnm' is not one of rnn, transformer; did you mean rnn?"),
    ("data.source.x=1", "config key data.source has no sub-keys"),
    ("lr", "override 'lr' is not of the form key=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert str(e.value).startswith(message)


def test_bad_recipe_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  hidden_dimm: 3\n")
    with pytest.raises(UserError, match="unknown config key model.hidden_dimm; did you mean model.hidden_dim"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(UserError, match="recipe not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("overrides, message", [
    (["task=translation", "data.source=text", "data.train=x"], "data.source=text does not fit task=translation"),
    (["data.source=text"], "data.train is required"),
    (["task=translation", "data.source=parallel", "data.train=x.gz"], "must contain {lang}"),
    (["data.source=toy", "model.family=transformer", "model.arch=bart"], "model.arch bart does not fit task lm"),
    (["data.source=toy", "data.batch_size=0"], "data.batch_size must be positive"),
    (["data.source=toy", "model.family=transformer", "model.max_positions=10"], "max_positions"),
])
def test_inconsistent_recipes(overrides, message):
    with pytest.raises(UserError, match=message):
        check_recipe(load_config(None, overrides))


def test_every_shipped_recipe_checks(capsys):
    assert check_paths([str(ROOT / "recipes")]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") >= 11 and "error" not in out


def test_defaults_are_a_valid_config():
    assert isinstance(RunConfig(), RunConfig)
