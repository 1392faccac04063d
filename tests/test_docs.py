"""The repository's own docs stay true: the recipe reference matches the config classes, the worked
example of adding an objective trains as written, and docstrings cite only files in the repository."""

import json
import re
import sys
from pathlib import Path

import pytest

from seqgen.cli import main
from seqgen.objectives import OBJECTIVES
from seqgen.recipe_reference import render

ROOT = Path(__file__).resolve().parents[1]


def test_recipe_reference_is_generated_from_the_config_classes():
    written = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert written == render(), "docs/recipes.md is stale: python -m seqgen.recipe_reference > docs/recipes.md"
    assert "`objective.critic.window_sizes`" in written and "`model.patch_size`" in written


def test_the_worked_objective_trains_from_the_command_line(tmp_path, monkeypatch, capsys):
    page = (ROOT / "docs" / "adding_an_objective.md").read_text(encoding="utf-8")
    module = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    (tmp_path / "length_normalised.py").write_text(module, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "length_normalised", raising=False)
    import length_normalised as ln

    monkeypatch.setitem(OBJECTIVES, "length_normalised", (ln.LengthNormalised, ln.LengthNormalisedConfig))
    out = tmp_path / "run"
    main(["train", str(ROOT / "recipes/debug/lm.yaml"), "objective.name=length_normalised",
          "objective.power=0.5", f"output_dir={out}", "train.max_steps=3", "train.log_every=1",
          "train.eval_every=3", "train.save_every=3", "train.num_samples=0"])
    logs = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in logs if "train/loss" in r]
    assert len(losses) == 3 and all(0 < x < 100 for x in losses)
    assert any("train/nll_per_token" in r for r in logs)
    assert (out / "model" / "model.safetensors").is_file()

    capsys.readouterr()
    bad = tmp_path / "bad"
    with pytest.raises(SystemExit) as exit:
        main(["train", str(ROOT / "recipes/debug/lm.yaml"), "objective.name=length_normalised",
              "objective.power=-1", f"output_dir={bad}"])
    assert exit.value.code == 2
    assert "objective.power must be >= 0, got -1" in capsys.readouterr().err
    assert not bad.exists()


def test_docstrings_cite_only_files_in_the_repository():
    cited = []
    for path in (ROOT / "seqgen").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        cited += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"SCIENCE\.md|DESIGN\.md|\.\./shared", text)]
        for ref in re.findall(r"docs/[\w/.-]+\.md", text):
            if not (ROOT / ref).is_file():
                cited.append(f"{path.relative_to(ROOT)}: {ref} (missing)")
    assert not cited, cited
