"""The studies' shared report pieces."""

from seqgen.experiments.report import checks_summary


def test_the_checks_line_says_what_a_miss_means():
    assert checks_summary([True, True]) == "2 of 2 checks pass."
    line = checks_summary([True, False, True])
    assert line.startswith("2 of 3 checks pass; a miss is a measured result that differs from the prediction")
    assert "ran to completion" in line
