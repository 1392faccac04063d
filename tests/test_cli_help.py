"""The command line explains itself: every command has a description and shows its defaults."""

import pytest

from seqgen.cli import _parser, main

COMMANDS = [["train"], ["eval"], ["generate"], ["sweep"], ["check"], ["demo"], ["experiment", "inconsistency"],
            ["experiment", "js-pi"], ["experiment", "estimators"], ["experiment", "objectives"], ["reproduce"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_describes_itself_and_takes_verbose_after_it(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 3, text  # a sentence, not just the usage line
    assert "-v, --verbose" in text


def test_defaults_are_shown_and_overrides_explained(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    assert "(default: 1.0)" in text and "(default: 10)" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "key=value" in top and "docs/recipes.md" in top


def test_verbose_is_accepted_before_or_after_the_command():
    parser = _parser()
    assert parser.parse_known_args(["check", "recipes", "-v"])[0].verbose
    assert parser.parse_known_args(["-v", "check", "recipes"])[0].verbose
    assert not parser.parse_known_args(["check", "recipes"])[0].verbose
