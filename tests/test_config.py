"""Recipes: YAML + overrides onto typed dataclasses, strict keys and types, every shipped recipe valid."""

from pathlib import Path

import pytest

from seqgen.config import RunConfig, load_config, save_config
from seqgen.errors import UserError
from seqgen.models.configs import RNNConfig, TransformerConfig
from seqgen.models.critics import CriticConfig
from seqgen.objectives import (
    OBJECTIVES,
    AdversarialConfig,
    ScheduledSamplingConfig,
    TeacherForcingConfig,
    TeacherJsPiConfig,
    WeightedLikelihoodConfig,
)
from seqgen.recipes import check_paths, check_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: translation\nmodel: {hidden_dim: 64}\ntrain: {lr: 1}\n")
    cfg = load_config(recipe, ["model.hidden_dim=12", "data.synthetic.length=3", "train.max_grad_norm=null",
                               "train.betas=[0.9, 0.98]"])
    assert cfg.task == "translation"
    assert isinstance(cfg.model, RNNConfig) and cfg.model.hidden_dim == 12
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # int widened to float
    assert cfg.data.synthetic.length == 3
    assert cfg.train.max_grad_norm is None
    assert cfg.train.betas == [0.9, 0.98]
    # a dict-valued key of the family the tag picks takes sub-keys
    cfg = load_config(None, ["model.family=transformer", "model.hidden_size=64", "model.config_overrides.n_inner=64"])
    assert isinstance(cfg.model, TransformerConfig) and cfg.model.config_overrides == {"n_inner": 64}


def test_numbers_in_exponent_notation_are_floats_as_in_python(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {lr: 3e-4, max_grad_norm: 1E2}\nobjective: {name: adversarial, critic_lr: .5e-3}\n")
    cfg = load_config(recipe, ["train.weight_decay=1e-2", "objective.tau=2.5e+0"])
    assert (cfg.train.lr, cfg.train.max_grad_norm, cfg.objective.critic_lr) == (3e-4, 100.0, 5e-4)
    assert (cfg.train.weight_decay, cfg.objective.tau) == (0.01, 2.5)
    # a negative mantissa is read as a number too (and then fails the range check as that number)
    with pytest.raises(UserError, match="objective.tau must be positive, got -2.5$"):
        load_config(recipe, ["objective.tau=-2.5e+0"])
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
    ("model.hiden_dim=3", "unknown config key model.hiden_dim (with model.family=rnn); did you mean model.hidden_dim?"),
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
    with pytest.raises(UserError, match=r"unknown config key model.hidden_dimm \(with model.family=rnn\); did you mean model.hidden_dim"):
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
    (["data.source=text", "data.train=x", "objective.name=adversarial", "objective.critic.kind=oracle"],
     "objective.critic.kind=oracle needs data.source=toy"),
    (["data.source=toy", "train.sharding=fsdp", "train.mixed_precision=fp16"],
     "train.sharding=fsdp does not support train.mixed_precision=fp16"),
])
def test_inconsistent_recipes(overrides, message):
    with pytest.raises(UserError, match=message):
        check_recipe(load_config(None, overrides))


@pytest.mark.parametrize("overrides, message", [
    (["data.source=text", "data.train=t.txt", "data.validation=./d/test.txt", "data.test=d/test.txt"],
     "data.validation is the test data"),
    (["data.source=toy", "eval.split=test"], "eval.split=test would choose the exported checkpoint"),
    (["data.source=toy", "eval.split=test", "train.export=last", "train.early_stopping_patience=3"],
     "eval.split=test would choose"),
    (["data.source=toy", "train.early_stopping_patience=0"], "must be at least 1"),
])
def test_selection_on_the_test_data_is_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        check_recipe(load_config(None, overrides))
    check_recipe(load_config(None, ["data.source=toy", "eval.split=test", "train.export=last"]))  # measures only


def _data_paths(recipe: Path, split: str) -> list[Path]:
    """The files a recipe's split reads (both sides of parallel text), resolved from the repository root."""
    cfg = load_config(recipe)
    where = getattr(cfg.data, split)
    langs = (cfg.data.source_lang, cfg.data.target_lang) if "{lang}" in (where or "") else ("",)
    return [(ROOT / where.replace("{lang}", lang)).resolve() for lang in langs] if where else []


@pytest.mark.parametrize("recipe", sorted(p.relative_to(ROOT) for p in (ROOT / "recipes").rglob("*.y*ml")),
                         ids=str)
def test_no_shipped_recipe_chooses_its_model_on_its_test_data(recipe):
    """The validation data (early stopping, best/, the exported model/) is never the test data: not the
    same path, nor a file with the same content; and training never evaluates on the test split."""
    cfg = load_config(ROOT / recipe)
    assert cfg.eval.split == "validation", f"{recipe} evaluates on {cfg.eval.split} during training"
    if cfg.data.validation is None or cfg.data.test is None:
        return
    assert cfg.data.validation != cfg.data.test, f"{recipe}: data.validation is data.test ({cfg.data.test})"
    for valid, test in zip(_data_paths(ROOT / recipe, "validation"), _data_paths(ROOT / recipe, "test")):
        assert valid != test, f"{recipe}: validation and test are the same file {test}"
        if valid.is_file() and test.is_file():
            assert valid.read_bytes() != test.read_bytes(), f"{recipe}: {valid} holds the test data {test}"


def test_every_shipped_recipe_checks(capsys):
    assert check_paths([str(ROOT / "recipes")]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") >= 11 and "error" not in out


def test_defaults_are_a_valid_config():
    cfg = RunConfig()
    assert isinstance(cfg.model, RNNConfig) and isinstance(cfg.objective, TeacherForcingConfig)
    assert load_config(None) == cfg


def test_each_tag_value_picks_its_section_class_and_round_trips(tmp_path):
    assert {name: config for name, (_, config) in OBJECTIVES.items()} == {
        "teacher_forcing": TeacherForcingConfig, "scheduled_sampling": ScheduledSamplingConfig,
        "adversarial": AdversarialConfig, "weighted_likelihood": WeightedLikelihoodConfig,
        "teacher_js_pi": TeacherJsPiConfig}
    for name, (_, config) in OBJECTIVES.items():
        assert config().name == name and isinstance(load_config(None, [f"objective.name={name}"]).objective, config)
    cfg = load_config(None, ["objective.name=adversarial", "objective.critic.kind=rnn", "objective.critic.cell=lstm",
                             "objective.critic.window_sizes=[2, 3]", "objective.tau_schedule=linear",
                             "objective.estimator=straight_through", "objective.feed=gumbel",
                             "model.family=transformer"])
    assert cfg.objective.critic == CriticConfig(kind="rnn", cell="lstm", window_sizes=[2, 3])
    assert (cfg.objective.tau_schedule, cfg.objective.feed) == ("linear", "gumbel")
    save_config(cfg, tmp_path / "r.yaml")
    again = load_config(tmp_path / "r.yaml")
    assert again == cfg and isinstance(again.objective, AdversarialConfig) and isinstance(again.model, TransformerConfig)


@pytest.mark.parametrize("overrides, message", [
    (["objective.pi=0.3"], r"unknown config key objective.pi \(with objective.name=teacher_forcing\)"),
    (["objective.name=scheduled_sampling", "objective.critic_lr=0.1"],
     r"unknown config key objective.critic_lr \(with objective.name=scheduled_sampling\)"),
    (["objective.name=adversarial", "objective.epsilon=0.5"],
     r"unknown config key objective.epsilon \(with objective.name=adversarial\)"),
    (["objective.name=adversarial", "objective.adversarial.pi=0.3"],  # the old nested form
     r"objective.adversarial: the keys of objective.name=adversarial go directly under objective"),
    (["model.arch=gpt2"], r"unknown config key model.arch \(with model.family=rnn\)"),
    (["model.family=transformer", "model.cell=gru"], r"unknown config key model.cell \(with model.family=transformer\)"),
    (["objective.name=adversrial"], ("config key objective.name: 'adversrial' is not one of teacher_forcing, "
                                     "scheduled_sampling, adversarial, weighted_likelihood, teacher_js_pi; did "
                                     "you mean adversarial?")),
    (["objective.name=adversarial", "objective.critic=cnn"], "objective.critic must be a mapping, got 'cnn'"),
    (["objective.name=adversarial", "objective.critic.kind=lstm"],
     "config key objective.critic.kind: 'lstm' is not one of cnn, rnn, transformer, oracle"),
    (["objective.name=adversarial", "objective.feed=hard"], "config key objective.feed: 'hard' is not one of sample, gumbel"),
])
def test_a_key_of_another_section_class_is_refused_naming_the_tag(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


def test_a_key_of_another_objective_in_a_recipe_file_names_objective_name(tmp_path):
    (tmp_path / "r.yaml").write_text("objective:\n  label_smoothing: 0.1\n  mode: parallel\n")
    with pytest.raises(UserError, match=r"unknown config key objective.mode \(with objective.name=teacher_forcing\)"):
        load_config(tmp_path / "r.yaml")
    # the same keys are fine once the recipe names the objective they belong to
    cfg = load_config(tmp_path / "r.yaml", ["objective.name=scheduled_sampling"])
    assert (cfg.objective.mode, cfg.objective.label_smoothing) == ("parallel", 0.1)


def test_overrides_may_set_an_objective_key_before_objective_name():
    cfg = load_config(None, ["objective.pi=0.3", "objective.critic.hidden_dim=16", "objective.name=adversarial"])
    assert isinstance(cfg.objective, AdversarialConfig)
    assert (cfg.objective.pi, cfg.objective.critic.hidden_dim) == (0.3, 16)
    cfg = load_config(None, ["model.hidden_size=32", "model.family=transformer"])
    assert isinstance(cfg.model, TransformerConfig) and cfg.model.hidden_size == 32


@pytest.mark.parametrize("make, message", [
    (lambda: ScheduledSamplingConfig(epsilon=2.0), r"objective.epsilon must be in \[0, 1\], got 2.0"),
    (lambda: ScheduledSamplingConfig(schedule="exponential", k=1.5), r"objective.k must be in \(0, 1\]"),
    (lambda: ScheduledSamplingConfig(schedule="inverse_sigmoid", k=0.5), "objective.k must be >= 1"),
    (lambda: ScheduledSamplingConfig(schedule="linear", c=-1.0), "objective.c must be >= 0"),
    (lambda: ScheduledSamplingConfig(feed="softmax"), "objective.feed=softmax needs objective.mode=parallel"),
    (lambda: ScheduledSamplingConfig(tau=0.0), "objective.tau must be positive"),
    (lambda: TeacherForcingConfig(label_smoothing=1.0), r"objective.label_smoothing must be in \[0, 1\)"),
    (lambda: AdversarialConfig(pi=1.0), r"pi must be in \(0, 1\), got 1.0"),
    (lambda: AdversarialConfig(critic_steps=0), "objective.critic_steps must be >= 1"),
    (lambda: AdversarialConfig(baseline="rloo"), "objective.baseline=rloo needs objective.rollouts_per_context >= 2"),
    (lambda: AdversarialConfig(estimator="rebar", reward="prefix"), "objective.reward=prefix works with"),
    (lambda: CriticConfig(dropout=1.0), r"objective.critic.dropout must be in \[0, 1\)"),
    (lambda: CriticConfig(kind="transformer", hidden_dim=10, num_attention_heads=4), "not a multiple of"),
    (lambda: RNNConfig(dropout=1.0), r"model.dropout must be in \[0, 1\)"),
    (lambda: TransformerConfig(hidden_size=10, num_attention_heads=4), "not divisible"),
])
def test_range_checks_fail_when_a_config_is_made(make, message):
    with pytest.raises(UserError, match=message):
        make()


@pytest.mark.parametrize("overrides, message", [
    (["objective.name=scheduled_sampling", "objective.epsilon=2"], r"objective.epsilon must be in \[0, 1\], got 2.0"),
    (["objective.name=adversarial", "objective.critic.num_layers=0"], "objective.critic.num_layers must be >= 1"),
    (["objective.label_smoothing=-0.1"], r"objective.label_smoothing must be in \[0, 1\)"),
    (["model.num_layers=0"], "model.num_layers must be >= 1"),
])
def test_range_checks_fail_when_a_recipe_is_loaded(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


def test_an_objectives_keys_nested_under_its_name_are_pointed_to_their_place(tmp_path):
    recipe = tmp_path / "nested.yaml"
    recipe.write_text("objective:\n  name: adversarial\n  adversarial: {pi: 0.3}\n")
    with pytest.raises(UserError, match=r"objective.adversarial: the keys of objective.name=adversarial go directly "
                                        r"under objective \(e.g. objective.pi, not objective.adversarial.pi\)"):
        load_config(recipe)
